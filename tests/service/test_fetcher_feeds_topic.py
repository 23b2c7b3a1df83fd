"""`newsmon feeds` on the feeds topic (NEWSMON_KAFKA_BOOTSTRAP set), on the real broker."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from newsmon.fetcher.commands import (
    topic_feeds_add,
    topic_feeds_import,
    topic_feeds_list,
    topic_feeds_remove,
)
from newsmon.fetcher.feeds import FeedConfig, dump_feeds, feeds_from_opml, load_feeds
from newsmon.shared.broker import free_port
from newsmon.shared.settings import Settings

pytestmark = pytest.mark.kafka

OPML = Path(__file__).resolve().parents[1] / "fixtures" / "feeds" / "subscriptions.opml"
EXTRA = FeedConfig(name="extra", url="https://extra.example.org/rss", interval_min_s=60.0)


def listed(settings: Settings) -> str:
    out, err = io.StringIO(), io.StringIO()
    assert topic_feeds_list(settings, out, err) == 0, err.getvalue()
    return out.getvalue()


def test_add_import_list_export_remove_on_the_topic(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    settings = kafka_settings
    out, err = io.StringIO(), io.StringIO()
    assert topic_feeds_import(settings, OPML, out, err) == 0, err.getvalue()
    incoming = feeds_from_opml(OPML.read_bytes())
    assert f"imported {len(incoming)} feeds" in out.getvalue()
    assert topic_feeds_import(settings, OPML, out, err) == 0
    assert "imported 0 feeds" in out.getvalue(), "a second import adds nothing"

    assert topic_feeds_add(settings, EXTRA, out, err) == 0, err.getvalue()
    assert topic_feeds_add(settings, EXTRA, out, err) == 1
    assert "remove it first" in err.getvalue()
    assert "extra" in listed(settings)
    assert len(listed(settings).splitlines()) == len(incoming) + 1

    export = io.StringIO()
    assert topic_feeds_list(settings, export, err, opml=True) == 0
    assert {f.url for f in feeds_from_opml(export.getvalue().encode())} == {
        *(f.url for f in incoming),
        EXTRA.url,
    }

    feeds_file = tmp_path / "feeds.toml"  # the file lists it too: removed there as well
    feeds_file.write_text(dump_feeds([EXTRA]))
    assert topic_feeds_remove(settings, "extra", feeds_file, out, err) == 0, err.getvalue()
    assert load_feeds(feeds_file) == []
    assert "extra" not in listed(settings)
    assert topic_feeds_remove(settings, "extra", feeds_file, out, err) == 1


def test_an_unreachable_broker_is_one_line_and_exit_1() -> None:
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    out, err = io.StringIO(), io.StringIO()
    assert topic_feeds_list(settings, out, err) == 1
    assert len(err.getvalue().splitlines()) == 1, err.getvalue()
    assert "Kafka at 127.0.0.1" in err.getvalue()
