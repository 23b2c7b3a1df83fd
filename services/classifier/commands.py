"""`newsmon classify` and `newsmon eval`: JSON lines in, verdicts / figures out.

The functions take paths and text streams and return exit codes, so tests call them directly;
`add_subcommands` wires them into the `newsmon` CLI.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from newsmon.classifier.engine import Classifier, Verdict
from newsmon.classifier.lexicon import TOPICAL_CATEGORIES

__all__ = ["add_subcommands", "classify_command", "eval_command"]

_LABELS = ("positive", "negative", "ambiguous")
_WORST = 5


class _BadLineError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class _Item:
    id: str
    title: str
    summary: str
    text: str
    lang: str | None
    label: str | None


def _optional_str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _BadLineError(f'"{key}" must be a string, got {type(value).__name__}')
    return value


def _parse_item(line: str, *, need_label: bool) -> _Item:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _BadLineError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise _BadLineError(f"expected a JSON object, got {type(obj).__name__}")
    raw_id = obj.get("id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or raw_id == "":
        raise _BadLineError('"id" is required (a non-empty string)')
    if not isinstance(obj.get("title"), str):
        raise _BadLineError('"title" is required (a string)')
    lang = obj.get("lang")
    if lang is not None and not isinstance(lang, str):
        raise _BadLineError('"lang" must be a string or null')
    label = obj.get("label")
    if need_label and label not in _LABELS:
        raise _BadLineError(f'"label" must be one of {", ".join(_LABELS)}, got {label!r}')
    return _Item(
        id=str(raw_id),
        title=obj["title"],
        summary=_optional_str(obj, "summary"),
        text=_optional_str(obj, "text"),
        lang=lang or None,
        label=label if isinstance(label, str) else None,
    )


@contextmanager
def _open_input(path: str) -> Iterator[TextIO]:
    if path == "-":
        yield sys.stdin
    else:
        with Path(path).open(encoding="utf-8") as handle:
            yield handle


def _read_items(
    lines: Iterable[str], err: TextIO, source: str, *, need_label: bool
) -> tuple[list[_Item], int]:
    items: list[_Item] = []
    bad = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            items.append(_parse_item(line, need_label=need_label))
        except _BadLineError as exc:
            bad += 1
            print(f"{source}:{number}: skipped: {exc}", file=err)
    return items, bad


def _verdict_json(item_id: str, verdict: Verdict) -> str:
    return json.dumps(
        {
            "id": item_id,
            "match": verdict.match,
            "score": verdict.score,
            "categories": list(verdict.categories),
            "evidence": [e.model_dump(mode="json") for e in verdict.evidence],
            "version": verdict.version,
        },
        ensure_ascii=False,
    )


def classify_command(
    input_path: str, out: TextIO, err: TextIO, *, classifier: Classifier | None = None
) -> int:
    """Classify JSON lines from a file or "-" (stdin); 1 if any line was bad, else 0."""
    clf = classifier or Classifier.default()
    source = "<stdin>" if input_path == "-" else input_path
    bad = 0
    try:
        with _open_input(input_path) as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    item = _parse_item(line, need_label=False)
                except _BadLineError as exc:
                    bad += 1
                    print(f"{source}:{number}: skipped: {exc}", file=err)
                    continue
                verdict = clf.classify(
                    title=item.title, summary=item.summary, text=item.text, lang=item.lang
                )
                out.write(_verdict_json(item.id, verdict) + "\n")
    except OSError as exc:
        print(f"{source}: cannot read: {exc.strerror or exc}", file=err)
        return 2
    except UnicodeDecodeError as exc:
        print(f"{source}: not UTF-8 text: {exc.reason}", file=err)
        return 2
    return 1 if bad else 0


# ---- evaluation ----------------------------------------------------------------------------


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return round(p, 4), round(r, 4), round(f, 4)


@dataclass(frozen=True, slots=True)
class _Scored:
    item: _Item
    gold: bool
    verdict: Verdict


def _summary(scored: list[_Scored]) -> dict[str, Any]:
    tp = sum(1 for s in scored if s.gold and s.verdict.match)
    fp = sum(1 for s in scored if not s.gold and s.verdict.match)
    fn = sum(1 for s in scored if s.gold and not s.verdict.match)
    tn = len(scored) - tp - fp - fn
    p, r, f = _prf(tp, fp, fn)
    by_lang: dict[str, dict[str, Any]] = {}
    groups: defaultdict[str, list[_Scored]] = defaultdict(list)
    for s in scored:
        groups[s.item.lang or "und"].append(s)
    for lang in sorted(groups):
        group = groups[lang]
        ltp = sum(1 for s in group if s.gold and s.verdict.match)
        lfp = sum(1 for s in group if not s.gold and s.verdict.match)
        lfn = sum(1 for s in group if s.gold and not s.verdict.match)
        lp, lr, lf = _prf(ltp, lfp, lfn)
        by_lang[lang] = {"precision": lp, "recall": lr, "f1": lf, "n": len(group)}
    return {
        "precision": p,
        "recall": r,
        "f1": f,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "n": len(scored),
        "by_lang": by_lang,
    }


def _category_lines(scored: list[_Scored]) -> list[str]:
    """Per category: how often it fires on flagged items, and how often those are right."""
    flagged: Counter[str] = Counter()
    right: Counter[str] = Counter()
    on_positives: Counter[str] = Counter()
    positives = sum(1 for s in scored if s.gold)
    for s in scored:
        for c in s.verdict.categories:
            if s.verdict.match:
                flagged[c] += 1
                right[c] += s.gold
            if s.gold:
                on_positives[c] += 1
    lines = [f"  {'category':<17} {'flagged':>8} {'precision':>10} {'on positives':>13}"]
    for c in TOPICAL_CATEGORIES:
        precision = right[c] / flagged[c] if flagged[c] else 0.0
        share = on_positives[c] / positives if positives else 0.0
        lines.append(f"  {c:<17} {flagged[c]:>8} {precision:>10.3f} {share:>12.1%}")
    return lines


def _mistake_lines(scored: list[_Scored]) -> list[str]:
    fps = sorted(
        (s for s in scored if s.verdict.match and not s.gold), key=lambda s: -s.verdict.score
    )
    fns = sorted(
        (s for s in scored if s.gold and not s.verdict.match), key=lambda s: s.verdict.score
    )
    lines: list[str] = []
    for name, group in (("false positives", fps), ("false negatives", fns)):
        lines.append(f"worst {name} ({len(group)} in all):")
        for s in group[:_WORST]:
            title = " ".join(s.item.title.split())
            title = title if len(title) <= 90 else title[:89] + "…"
            cats = ",".join(s.verdict.categories) or "-"
            lines.append(
                f"  {s.item.id} [{s.item.lang or 'und'}] {s.verdict.score:.3f} {cats}  {title}"
            )
    return lines


def _report(summary: dict[str, Any], scored: list[_Scored], excluded: int, threshold: float) -> str:
    lines = [
        f"items scored: {summary['n']} (ambiguous excluded: {excluded}); threshold {threshold:.2f}",
        f"precision {summary['precision']:.3f}  recall {summary['recall']:.3f}  "
        f"F1 {summary['f1']:.3f}",
        f"confusion: tp {summary['tp']}  fp {summary['fp']}  "
        f"fn {summary['fn']}  tn {summary['tn']}",
        "",
        "by language:",
        f"  {'lang':<5} {'n':>5} {'precision':>10} {'recall':>8} {'F1':>7}",
    ]
    for lang, m in summary["by_lang"].items():
        lines.append(
            f"  {lang:<5} {m['n']:>5} {m['precision']:>10.3f} {m['recall']:>8.3f} {m['f1']:>7.3f}"
        )
    lines += ["", "by category (evidence of flagged items):", *_category_lines(scored), ""]
    lines += _mistake_lines(scored)
    return "\n".join(lines) + "\n"


def eval_command(
    path: str,
    as_json: bool,
    out: TextIO,
    *,
    threshold: float | None = None,
    err: TextIO | None = None,
    classifier: Classifier | None = None,
) -> int:
    """Score a labelled JSON-lines file; 2 if unreadable, 1 if some lines were bad, else 0."""
    err = err or sys.stderr
    clf = classifier or Classifier.default(threshold)
    source = "<stdin>" if path == "-" else path
    try:
        with _open_input(path) as handle:
            items, bad = _read_items(handle, err, source, need_label=True)
    except OSError as exc:
        print(f"{source}: cannot read: {exc.strerror or exc}", file=err)
        return 2
    except UnicodeDecodeError as exc:
        print(f"{source}: not UTF-8 text: {exc.reason}", file=err)
        return 2
    labelled = [i for i in items if i.label != "ambiguous"]
    verdicts = clf.classify_many(
        {"title": i.title, "summary": i.summary, "text": i.text, "lang": i.lang} for i in labelled
    )
    scored = [_Scored(i, i.label == "positive", v) for i, v in zip(labelled, verdicts, strict=True)]
    summary = _summary(scored)
    if as_json:
        out.write(json.dumps(summary) + "\n")
    else:
        out.write(_report(summary, scored, len(items) - len(labelled), clf.threshold))
    return 1 if bad else 0


# ---- CLI wiring ----------------------------------------------------------------------------


def _threshold(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError("the threshold is a score in [0, 1]")
    return number


def _run_classify(args: argparse.Namespace) -> int:
    return classify_command(
        args.file, sys.stdout, sys.stderr, classifier=Classifier.default(args.threshold)
    )


def _run_eval(args: argparse.Namespace) -> int:
    return eval_command(args.file, args.json, sys.stdout, threshold=args.threshold)


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `classify` and `eval` on the `newsmon` CLI's subparsers."""
    classify = subparsers.add_parser(
        "classify",
        help="classify news items (JSON lines) for NK–Russia military cooperation",
        description=(
            "Read JSON lines with id, title, summary and optional text and lang; write one JSON "
            'line per item: {"id", "match", "score", "categories", "evidence", "version"}. '
            "Bad lines are reported on stderr with their line number and skipped; the exit "
            "code is 1 if any line was bad, else 0."
        ),
    )
    classify.add_argument(
        "file", nargs="?", default="-", metavar="FILE|-", help="input (default: stdin)"
    )
    classify.add_argument(
        "--threshold",
        type=_threshold,
        default=None,
        metavar="X",
        help="score needed to match (default: fitted)",
    )
    classify.set_defaults(func=_run_classify)

    evaluate = subparsers.add_parser(
        "eval",
        help="measure the classifier on a labelled JSON-lines file",
        description=(
            'FILE holds JSON lines like classify\'s input plus "label" (positive, negative or '
            "ambiguous; ambiguous items are excluded). Prints precision, recall, F1, confusion "
            "counts, per-language and per-category figures and the worst mistakes."
        ),
    )
    evaluate.add_argument("file", metavar="FILE", help="labelled JSON lines")
    evaluate.add_argument(
        "--json",
        action="store_true",
        help='print one JSON object: {"precision","recall","f1","tp","fp","fn","tn","n","by_lang"}',
    )
    evaluate.add_argument(
        "--threshold",
        type=_threshold,
        default=None,
        metavar="X",
        help="score needed to match (default: fitted)",
    )
    evaluate.set_defaults(func=_run_eval)
