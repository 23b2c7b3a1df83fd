"""Operator commands' pure parts: time windows, tail filters, replay diffs, --pretty, --help."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest
from newsmon.cli import build_parser
from newsmon.operator import TailFilter, diff_verdict, parse_time, pretty_alert
from newsmon.shared.messages import Article, Classified

from tests.support.web import make_alert

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", NOW - timedelta(hours=1)),
        ("30m", NOW - timedelta(minutes=30)),
        ("2d", NOW - timedelta(days=2)),
        ("1w", NOW - timedelta(days=7)),
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01T08:00+09:00", datetime(2026, 11, 30, 23, 0, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    assert parse_time(text, NOW) == expected


def test_parse_time_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_time("yesterday", NOW)


def test_tail_filter_on_alerts_and_verdicts() -> None:
    alert = make_alert(1, lang="ru", feed="tass", categories=("weapons",)).model_dump(mode="json")
    assert TailFilter(categories=frozenset({"weapons"})).matches(alert)
    assert not TailFilter(categories=frozenset({"troops"})).matches(alert)
    assert TailFilter(langs=frozenset({"ru"}), feeds=frozenset({"tass"})).matches(alert)
    assert not TailFilter(feeds=frozenset({"kcna"})).matches(alert)
    verdict = {"article": {"feed": "kcna", "lang": "ko"}, "categories": ["troops"]}
    assert TailFilter(feeds=frozenset({"kcna"}), langs=frozenset({"ko"})).matches(verdict)
    assert not TailFilter(langs=frozenset({"ko"})).matches("not json")


def _verdict(article: Article, match: bool, score: float) -> Classified:
    return Classified(
        article=article, match=match, score=score, classifier_version="t", classified=NOW
    )


def test_replay_diff_new_lost_and_same() -> None:
    article = Article(id="a", feed="f", source="S", url="https://x/a", title="t", fetched=NOW)
    new = diff_verdict(article, _verdict(article, False, 0.2), _verdict(article, True, 0.9))
    assert new is not None
    assert (new.kind, new.score_before, new.score_now) == ("new", 0.2, 0.9)
    lost = diff_verdict(article, _verdict(article, True, 0.9), _verdict(article, False, 0.1))
    assert lost is not None
    assert lost.kind == "lost"
    assert diff_verdict(article, None, _verdict(article, False, 0.1)) is None
    never = diff_verdict(article, None, _verdict(article, True, 0.8))
    assert never is not None
    assert never.score_before is None


def test_pretty_alert_highlights_terms_and_keeps_markup_as_text() -> None:
    alert = make_alert(1, title="[bold]Kursk[/bold] <script>").model_dump(mode="json")
    lines = pretty_alert(alert)
    assert lines[0].plain == "[bold]Kursk[/bold] <script>", "rich markup is not interpreted"
    evidence = next(line for line in lines if "Pyongyang" in line.plain)
    styled = {evidence.plain[s.start : s.end] for s in evidence.spans if "yellow" in str(s.style)}
    assert {"Pyongyang", "troops", "Kursk"} <= styled


def _parsers(
    parser: argparse.ArgumentParser, path: str = "newsmon"
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _parsers(child, f"{path} {name}")
    return found


def test_every_command_help_has_examples() -> None:
    parsers = _parsers(build_parser())
    top = [(p, parser) for p, parser in parsers if p.count(" ") == 1]
    assert len(top) > 15
    missing = [p for p, parser in top if "Examples:" not in parser.format_help()]
    assert missing == []
