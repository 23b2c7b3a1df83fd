"""`newsmon fetch` and `newsmon feeds ...` called as functions (files only: no network)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from newsmon.cli import build_parser
from newsmon.fetcher.commands import (
    feeds_add,
    feeds_export,
    feeds_import,
    feeds_list,
    feeds_remove,
    fetch_command,
)
from newsmon.fetcher.feeds import FeedConfig, load_feeds
from newsmon.shared.settings import Settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"
SETTINGS = Settings(kafka_bootstrap="unused:9092")


def test_fetch_prints_articles_and_exits_0() -> None:
    out, err = io.StringIO(), io.StringIO()
    code = fetch_command(
        [str(FIXTURES / "rss2.xml"), str(FIXTURES / "atom.xml")], out, err, SETTINGS
    )
    assert code == 0
    assert err.getvalue() == ""
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines
    assert all(line["schema"] == "newsmon.article.v1" and line["id"] for line in lines)


def test_fetch_reports_each_failing_input_on_one_line() -> None:
    out, err = io.StringIO(), io.StringIO()
    inputs = [str(FIXTURES / "html-page.html"), "/no/such/file.xml", str(FIXTURES / "rss2.xml")]
    code = fetch_command(inputs, out, err, SETTINGS)
    assert code == 1
    problems = err.getvalue().splitlines()
    assert len(problems) == 2
    assert problems[0].startswith(f"newsmon fetch: {inputs[0]}: served HTML")
    assert problems[1].startswith("newsmon fetch: /no/such/file.xml: cannot read file")
    assert out.getvalue(), "the good input still printed its articles"


def test_fetch_refuses_a_loopback_url_without_the_allow_list() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert fetch_command(["http://127.0.0.1:9/feed"], out, err, SETTINGS) == 1
    assert "(blocked)" in err.getvalue()


def test_feeds_add_list_remove_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text('# my feeds\n[[feed]]\nname = "one"\nurl = "https://a.example/rss"\n')
    out, err = io.StringIO(), io.StringIO()
    feed = FeedConfig(name="two", url="https://b.example/rss", lang="ko", full_text=False)
    assert feeds_add(path, feed, out, err) == 0
    assert path.read_text().startswith("# my feeds"), "comments are kept"
    assert [f.name for f in load_feeds(path)] == ["one", "two"]
    assert feeds_add(path, feed, out, err) == 1, "a duplicate is refused"
    assert "duplicate" in err.getvalue()
    listing = io.StringIO()
    assert feeds_list(path, listing, err) == 0
    assert "two" in listing.getvalue()
    assert "full_text=off" in listing.getvalue()
    assert feeds_remove(path, "one", out, err) == 0
    assert [f.name for f in load_feeds(path)] == ["two"]
    assert feeds_remove(path, "nope", out, err) == 1


def test_opml_import_and_export(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    out, err = io.StringIO(), io.StringIO()
    assert feeds_import(path, FIXTURES / "subscriptions.opml", out, err) == 0, err.getvalue()
    first = load_feeds(path)
    assert first
    assert feeds_import(path, FIXTURES / "subscriptions.opml", out, err) == 0
    assert load_feeds(path) == first, "importing twice adds nothing"
    opml = io.StringIO()
    assert feeds_export(path, opml, err) == 0
    assert all(f.url.replace("&", "&amp;") in opml.getvalue() for f in first)


def test_cli_wiring() -> None:
    args = build_parser().parse_args(["feeds", "--file", "x.toml", "add", "https://a.example/rss"])
    assert args.action == "add"
    assert build_parser().parse_args(["fetch", "a", "b"]).inputs == ["a", "b"]
