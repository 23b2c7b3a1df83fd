"""parse_feed over the shared corpus of real feeds and parser conformance suites.

Runs when ../shared/corpus/feeds exists (see its README.md), skips cleanly otherwise. Every
file must either yield articles or raise a clean FeedParseError; the per-file outcome table is
printed (see it with `pytest -rP -k corpus`).
"""

from __future__ import annotations

import gzip
import io
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
from newsmon.fetcher.feeds import FeedConfig
from newsmon.fetcher.parse import FeedParseError, ParsedFeed, parse_feed

pytestmark = pytest.mark.corpus

CORPUS = Path(__file__).resolve().parents[2].parent / "shared/corpus/feeds"
REAL = CORPUS / "real"
FEEDPARSER_TESTS = CORPUS / "conformance" / "feedparser" / "tests"
FETCHED = datetime(2026, 11, 25, tzinfo=UTC)  # the day the corpus was collected


def _bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data  # RFC 1952 magic


def _feed(path: Path) -> FeedConfig:
    return FeedConfig(name="corpus", url=f"https://corpus.invalid/{path.name}")


def _readme_counts() -> dict[str, int]:
    """items column of the real/ table in the corpus README."""
    counts: dict[str, int] = {}
    for line in (CORPUS / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.split("|")]
        # | file | outlet | format | encoding | items | bozo | bytes | ...
        if len(cells) > 6 and cells[1].endswith(".xml") and cells[5].isdigit():
            counts[cells[1]] = int(cells[5])
    return counts


def _real_files() -> list[Path]:
    return sorted(REAL.iterdir()) if REAL.is_dir() else []


def _require(path: Path) -> None:
    if not path.is_dir():
        pytest.skip(f"{path} not present (shared corpus is optional)")


@pytest.mark.parametrize("path", _real_files(), ids=lambda p: p.name)
def test_real_feed_item_counts_match_the_readme(path: Path) -> None:
    expected = _readme_counts()[path.name]
    body = _bytes(path)
    parsed = parse_feed(body, feed=_feed(path), fetched_at=FETCHED)
    assert len(feedparser.parse(io.BytesIO(body)).entries) == expected
    assert len(parsed.articles) + len(parsed.skipped) == expected
    for article in parsed.articles:
        assert article.url.startswith(("http://", "https://"))
        assert article.title
        assert article.title == article.title.strip()
        assert article.published is None or article.published <= FETCHED


def test_real_feeds_outcome_table() -> None:
    _require(REAL)
    rows = [
        "| file | articles | skipped | bozo | lang | parse ms (best of 3) |",
        "|---|---|---|---|---|---|",
    ]
    total_ms = 0.0
    for path in _real_files():
        body = _bytes(path)
        best = float("inf")
        parsed: ParsedFeed | None = None
        for _ in range(3):
            started = time.perf_counter()
            parsed = parse_feed(body, feed=_feed(path), fetched_at=FETCHED)
            best = min(best, time.perf_counter() - started)
        assert parsed is not None
        total_ms += best * 1000
        langs = ",".join(sorted({a.lang or "-" for a in parsed.articles}))
        rows.append(
            f"| {path.name} | {len(parsed.articles)} | {len(parsed.skipped)} | "
            f"{'yes' if parsed.bozo_reason else 'no'} | {langs} | {best * 1000:.1f} |"
        )
        assert parsed.articles, f"{path.name}: no articles"
    rows.append(f"| total | | | | | {total_ms:.1f} |")
    print("\n".join(rows))


def _http_headers(text: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for match in re.finditer(r"^Header:\s*([\w-]+):\s*(.*?)\s*$", text, re.MULTILINE):
        headers[match.group(1).lower()] = match.group(2)
    return headers


def _declares_entities(body: bytes) -> bool:
    head = body.split(b"<rss", 1)[0].split(b"<rdf:RDF", 1)[0].split(b"<feed", 1)[0]
    return b"<!ENTITY" in head


def _parse_conformance(path: Path) -> tuple[str, str]:
    """(outcome, detail) for one conformance file; raises on anything but FeedParseError."""
    body = path.read_bytes()
    headers = _http_headers(body.decode("utf-8", errors="replace"))
    # Upstream serves http/ files from http://127.0.0.1:8097/ with these headers.
    base = "http://127.0.0.1:8097/" + headers.get("content-location", "").lstrip("/")
    try:
        parsed = parse_feed(
            body,
            feed=_feed(path),
            fetched_at=FETCHED,
            content_type=headers.get("content-type"),
            base_url=base,
        )
    except FeedParseError as exc:
        return "error", str(exc)
    return ("articles" if parsed.articles else "no articles"), ""


def test_feedparser_wellformed_never_raises() -> None:
    """Every well-formed feed parses, except the two that declare entities (refused by design)."""
    root = FEEDPARSER_TESTS / "wellformed"
    _require(root)
    outcomes: dict[str, int] = {}
    unexpected: list[str] = []
    started = time.perf_counter()
    files = sorted(root.rglob("*.xml"))
    for path in files:
        outcome, detail = _parse_conformance(path)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        refused = _declares_entities(path.read_bytes())
        if refused and "declares XML entities" not in detail:
            unexpected.append(f"{path.relative_to(root)}: entity declaration not refused")
        elif not refused and outcome == "error":
            unexpected.append(f"{path.relative_to(root)}: {detail}")
    took = time.perf_counter() - started
    print(f"wellformed: {len(files)} files in {took:.1f} s: {outcomes}")
    assert len(files) > 1000
    assert unexpected == []
    assert outcomes.get("error") == 2  # rss/entity_in_doctype, rdf/doctype_contains_entity_decl


@pytest.mark.parametrize("folder", ["illformed", "encoding", "entities"])
def test_feedparser_hostile_files_end_cleanly(folder: str) -> None:
    """Ill-formed, oddly encoded and entity-laden files: articles, or a clean FeedParseError."""
    root = FEEDPARSER_TESTS / folder
    _require(root)
    outcomes: dict[str, int] = {}
    errors: dict[str, int] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        outcome, detail = _parse_conformance(path)  # any other exception fails the test
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if detail:
            kind = detail.split(":")[0]
            errors[kind] = errors.get(kind, 0) + 1
    print(f"{folder}: {outcomes}; errors by kind: {errors}")
    assert outcomes


@pytest.mark.parametrize("suite", ["gofeed", "feed-rs", "rss-parser", "node-feedparser"])
def test_other_conformance_suites_end_cleanly(suite: str) -> None:
    """Every input file of the other parsers' suites: articles, or a clean FeedParseError."""
    root = CORPUS / "conformance" / suite
    _require(root)
    outcomes: dict[str, int] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix != ".json"):
        try:
            parsed = parse_feed(_bytes(path), feed=_feed(path), fetched_at=FETCHED)
            outcome = "articles" if parsed.articles else "no articles"
        except FeedParseError as exc:
            outcome = "error: " + str(exc).split(";")[0].split(":")[0]
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    print(f"{suite}: {outcomes}")
    assert outcomes
