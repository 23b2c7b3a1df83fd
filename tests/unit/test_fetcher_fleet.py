"""The feeds topic's records and the feeds-file import plan (pure parts of fleet.py)."""

from __future__ import annotations

import pytest
from newsmon.fetcher.feeds import FeedConfig, FeedRecord
from newsmon.fetcher.fleet import plan_import

ONE = FeedConfig(name="one", url="https://a.example/rss", interval_min_s=60.0, lang="en")
TWO = FeedConfig(name="two", url="https://b.example/rss", full_text=True, enabled=False)


def test_a_record_reads_back_as_written() -> None:
    for record in (FeedRecord(ONE, "file"), FeedRecord(TWO)):
        assert FeedRecord.from_json(record.to_json()) == record


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b'{"schema": "other", "name": "one", "url": "https://a.example/rss"}',
        b'{"schema": "newsmon.feed.v1", "name": "one", "url": "ftp://a.example/"}',
        b'{"schema": "newsmon.feed.v1", "name": "one", "url": "https://a/", "origin": "x"}',
    ],
)
def test_a_bad_record_is_refused_with_a_reason(payload: bytes) -> None:
    with pytest.raises(ValueError, match=r"."):
        FeedRecord.from_json(payload)


def test_unknown_fields_are_ignored_as_in_every_v1_schema() -> None:
    payload = b'{"schema": "newsmon.feed.v1", "name": "one", "url": "https://a/", "colour": 1}'
    assert FeedRecord.from_json(payload) == FeedRecord(FeedConfig(name="one", url="https://a/"))


def test_import_writes_only_what_differs_and_removes_only_former_file_feeds() -> None:
    changed = FeedConfig(name="one", url="https://a.example/rss", interval_min_s=120.0)
    topic = {
        "one": FeedRecord(ONE, "file"),
        "two": FeedRecord(TWO, "file"),  # the file no longer lists it: removed
        "cli": FeedRecord(FeedConfig(name="cli", url="https://c.example/rss")),  # kept
    }
    upserts, removals = plan_import([changed], topic)
    assert upserts == [FeedRecord(changed, "file")]
    assert removals == ["two"]
    assert plan_import([ONE], {"one": FeedRecord(ONE, "file")}) == ([], [])
