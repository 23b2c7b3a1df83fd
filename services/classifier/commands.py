"""`newsmon classify` and `newsmon eval`: JSON lines in, verdicts / figures out.

The functions take paths and text streams and return exit codes, so tests call them directly;
cli.py wires them into the `newsmon` command line.
"""

from __future__ import annotations

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
from newsmon.classifier.normalize import fold

__all__ = ["MISSES_SHOWN", "classify_command", "eval_command"]

_LABELS = ("positive", "negative", "ambiguous")
MISSES_SHOWN = 30  # per kind (false negatives, false positives) in the text report


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
    categories: tuple[str, ...] = ()  # gold topics of a positive (optional)
    kind: str | None = None  # what sort of negative it is (optional, reported as is)


def _gold_categories(obj: dict[str, Any]) -> tuple[str, ...]:
    value = obj.get("categories")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(c in TOPICAL_CATEGORIES for c in value):
        raise _BadLineError(
            f'"categories" must be a list of {", ".join(TOPICAL_CATEGORIES)}, got {value!r}'
        )
    return tuple(value)


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
        categories=_gold_categories(obj),
        kind=_optional_str(obj, "kind") or None,
    )


def _cannot_read(source: str, exc: OSError | UnicodeDecodeError, err: TextIO) -> int:
    """One line saying why `source` could not be read; the commands' exit status for it."""
    if isinstance(exc, UnicodeDecodeError):
        print(f"{source}: not UTF-8 text: {exc.reason}", file=err)
    else:
        print(f"{source}: cannot read: {exc.strerror or exc}", file=err)
    return 2


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
    except (OSError, UnicodeDecodeError) as exc:
        return _cannot_read(source, exc, err)
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


def _counts(group: list[_Scored]) -> tuple[int, int, int]:
    tp = sum(1 for s in group if s.gold and s.verdict.match)
    fp = sum(1 for s in group if not s.gold and s.verdict.match)
    fn = sum(1 for s in group if s.gold and not s.verdict.match)
    return tp, fp, fn


def _by_lang(scored: list[_Scored]) -> dict[str, dict[str, Any]]:
    groups: defaultdict[str, list[_Scored]] = defaultdict(list)
    for s in scored:
        groups[s.item.lang or "und"].append(s)
    by_lang: dict[str, dict[str, Any]] = {}
    for lang in sorted(groups):
        tp, fp, fn = _counts(groups[lang])
        p, r, f = _prf(tp, fp, fn)
        by_lang[lang] = {
            "precision": p,
            "recall": r,
            "f1": f,
            "n": len(groups[lang]),
            "tp": tp,
            "fp": fp,
            "fn": fn,
        }
    return by_lang


def _by_category(scored: list[_Scored]) -> dict[str, dict[str, Any]]:
    """P/R/F1 of each topic against the gold ``categories`` of the items that carry them.

    A topic counts as found when the item is flagged and its evidence names the topic; a
    flagged negative naming the topic is a false positive of that topic. Empty when no item
    carries gold categories (the development set has none).
    """
    if not any(s.item.categories for s in scored):
        return {}
    # Positives without gold categories cannot be judged per topic: left out.
    judged = [s for s in scored if s.item.categories or not s.gold]
    result: dict[str, dict[str, Any]] = {}
    for c in TOPICAL_CATEGORIES:
        found = [s.verdict.match and c in s.verdict.categories for s in judged]
        gold = [c in s.item.categories for s in judged]
        tp = sum(1 for f, g in zip(found, gold, strict=True) if f and g)
        fp = sum(1 for f, g in zip(found, gold, strict=True) if f and not g)
        fn = sum(1 for f, g in zip(found, gold, strict=True) if g and not f)
        p, r, f1 = _prf(tp, fp, fn)
        result[c] = {"precision": p, "recall": r, "f1": f1, "n": sum(gold)}
    return result


def _terms(clf: Classifier, item: _Item) -> list[dict[str, str]]:
    """Every lexicon term found in the item's fields: what the classifier saw."""
    found: list[dict[str, str]] = []
    for field, text in (("title", item.title), ("summary", item.summary), ("text", item.text)):
        folded = fold(text)
        for hit in clf.lexicon.scan(folded.text):
            start, end = folded.to_original(hit.start), folded.to_original(hit.end)
            found.append({"field": field, "term": text[start:end], "category": hit.category})
    return found


def _misses(clf: Classifier, scored: list[_Scored]) -> list[dict[str, Any]]:
    """False negatives (lowest score first), then false positives (highest first)."""
    fns = sorted(
        (s for s in scored if s.gold and not s.verdict.match), key=lambda s: s.verdict.score
    )
    fps = sorted(
        (s for s in scored if s.verdict.match and not s.gold), key=lambda s: -s.verdict.score
    )
    return [
        {
            "id": s.item.id,
            "lang": s.item.lang or "und",
            "label": "positive" if s.gold else "negative",
            "kind": s.item.kind,
            "score": s.verdict.score,
            "title": s.item.title,
            "categories": list(s.verdict.categories),
            "terms": _terms(clf, s.item),
        }
        for s in (*fns, *fps)
    ]


def _summary(clf: Classifier, scored: list[_Scored]) -> dict[str, Any]:
    tp, fp, fn = _counts(scored)
    tn = len(scored) - tp - fp - fn
    p, r, f = _prf(tp, fp, fn)
    return {
        "precision": p,
        "recall": r,
        "f1": f,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "n": len(scored),
        "by_lang": _by_lang(scored),
        "by_category": _by_category(scored),
        "misses": _misses(clf, scored),
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


def _kind_lines(scored: list[_Scored]) -> list[str]:
    """Negatives by kind (when the file names kinds): how many were flagged anyway."""
    kinds: defaultdict[str, list[_Scored]] = defaultdict(list)
    for s in scored:
        if not s.gold and s.item.kind:
            kinds[s.item.kind].append(s)
    if not kinds:
        return []
    lines = ["", "negatives by kind:", f"  {'kind':<17} {'n':>5} {'flagged':>8}"]
    for kind in sorted(kinds):
        flagged = sum(1 for s in kinds[kind] if s.verdict.match)
        lines.append(f"  {kind:<17} {len(kinds[kind]):>5} {flagged:>8}")
    return lines


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _miss_lines(misses: list[dict[str, Any]], limit: int) -> list[str]:
    fns = [m for m in misses if m["label"] == "positive"]
    fps = [m for m in misses if m["label"] == "negative"]
    lines: list[str] = []
    for name, group in (("false negatives", fns), ("false positives", fps)):
        shown = f", {limit} shown" if len(group) > limit else ""
        lines.append(f"{name} ({len(group)} in all{shown}), with the terms found per field:")
        for m in group[:limit]:
            cats = ",".join(m["categories"]) or "-"
            kind = f" {m['kind']}" if m["kind"] else ""
            title = _shorten(m["title"], 80)
            lines.append(f"  {m['id']} [{m['lang']}]{kind} {m['score']:.3f} {cats}  {title}")
            for field in ("title", "summary", "text"):
                terms = [f"{t['term']}/{t['category']}" for t in m["terms"] if t["field"] == field]
                if terms:
                    lines.append(f"      {field}: {_shorten(', '.join(terms), 110)}")
            if not m["terms"]:
                lines.append("      (no lexicon term found)")
    return lines


def _gold_category_lines(by_category: dict[str, dict[str, Any]]) -> list[str]:
    if not by_category:
        return []
    lines = [
        "",
        "by category (against the items' gold categories):",
        f"  {'category':<17} {'n':>5} {'precision':>10} {'recall':>8} {'F1':>7}",
    ]
    for c, m in by_category.items():
        lines.append(
            f"  {c:<17} {m['n']:>5} {m['precision']:>10.3f} {m['recall']:>8.3f} {m['f1']:>7.3f}"
        )
    return lines


def _report(
    summary: dict[str, Any], scored: list[_Scored], excluded: int, threshold: float, limit: int
) -> str:
    lines = [
        f"items scored: {summary['n']} (ambiguous excluded: {excluded}); threshold {threshold:.2f}",
        f"precision {summary['precision']:.3f}  recall {summary['recall']:.3f}  "
        f"F1 {summary['f1']:.3f}",
        f"confusion: tp {summary['tp']}  fp {summary['fp']}  "
        f"fn {summary['fn']}  tn {summary['tn']}",
        "",
        "by language:",
        f"  {'lang':<7} {'n':>5} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>10} {'recall':>8} "
        f"{'F1':>7}",
    ]
    for lang, m in summary["by_lang"].items():
        lines.append(
            f"  {lang:<7} {m['n']:>5} {m['tp']:>4} {m['fp']:>4} {m['fn']:>4} "
            f"{m['precision']:>10.3f} {m['recall']:>8.3f} {m['f1']:>7.3f}"
        )
    lines += _gold_category_lines(summary["by_category"])
    lines += ["", "by category (evidence of flagged items):", *_category_lines(scored)]
    lines += _kind_lines(scored)
    lines += ["", *_miss_lines(summary["misses"], limit)]
    return "\n".join(lines) + "\n"


def eval_command(
    path: str,
    as_json: bool,
    out: TextIO,
    *,
    threshold: float | None = None,
    err: TextIO | None = None,
    classifier: Classifier | None = None,
    misses: int = MISSES_SHOWN,
) -> int:
    """Score a labelled JSON-lines file; 2 if unreadable, 1 if some lines were bad, else 0.

    ``misses`` caps the misses listed in the text report (the JSON lists them all)."""
    err = err or sys.stderr
    clf = classifier or Classifier.default(threshold)
    source = "<stdin>" if path == "-" else path
    try:
        with _open_input(path) as handle:
            items, bad = _read_items(handle, err, source, need_label=True)
    except (OSError, UnicodeDecodeError) as exc:
        return _cannot_read(source, exc, err)
    labelled = [i for i in items if i.label != "ambiguous"]
    verdicts = clf.classify_many(
        {"title": i.title, "summary": i.summary, "text": i.text, "lang": i.lang} for i in labelled
    )
    scored = [_Scored(i, i.label == "positive", v) for i, v in zip(labelled, verdicts, strict=True)]
    summary = _summary(clf, scored)
    if as_json:
        out.write(json.dumps(summary, ensure_ascii=False) + "\n")
    else:
        out.write(_report(summary, scored, len(items) - len(labelled), clf.threshold, misses))
    return 1 if bad else 0
