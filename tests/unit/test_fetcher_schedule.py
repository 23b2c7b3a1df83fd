"""The polling policy (schedule.py): pure functions, fixed clock, seeded jitter."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from newsmon.fetcher.schedule import (
    SERVER_DELAY_CAP_S,
    Bounds,
    adaptive_interval,
    backoff_delay,
    next_delay,
    parse_max_age,
)
from newsmon.fetcher.state import FeedState, SeenIds
from newsmon.shared.http_headers import parse_retry_after

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
B = Bounds(min_s=300, max_s=3600, backoff_max_s=7200)


def test_healthy_feed_polls_at_its_interval_with_jitter() -> None:
    rng = random.Random(1)
    delays = [next_delay(interval_s=600, error_streak=0, bounds=B, rng=rng) for _ in range(200)]
    assert all(540 <= d <= 660 for d in delays)
    assert len({round(d) for d in delays}) > 1, "jitter spreads polls"


def test_busy_feed_polls_at_the_minimum() -> None:
    every_minute = [NOW - timedelta(minutes=i) for i in range(60)]
    assert adaptive_interval(every_minute, NOW, B) == 300


def test_interval_follows_the_item_frequency() -> None:
    hourly = [NOW - timedelta(hours=i) for i in range(1, 25)]
    assert adaptive_interval(hourly, NOW, B) == pytest.approx(1800)  # half the mean gap


def test_quiet_feed_polls_at_the_maximum() -> None:
    assert adaptive_interval([NOW - timedelta(days=30)], NOW, B) == 3600
    assert adaptive_interval([], NOW, B) == 3600
    future_only = [NOW + timedelta(days=1)]  # a bogus date says nothing about frequency
    assert adaptive_interval(future_only, NOW, B) == 3600


def test_errors_back_off_exponentially_up_to_a_cap() -> None:
    assert [backoff_delay(n, B) for n in range(1, 7)] == [300, 600, 1200, 2400, 4800, 7200]
    assert backoff_delay(1000, B) == 7200


def test_backoff_is_jittered_and_never_under_retry_after() -> None:
    rng = random.Random(2)
    d = next_delay(interval_s=300, error_streak=2, bounds=B, rng=rng)
    assert 540 <= d <= 660
    assert next_delay(interval_s=300, error_streak=1, bounds=B, retry_after_s=5000) == 5000


def test_server_delays_are_capped_so_polling_never_stops() -> None:
    d = next_delay(interval_s=300, error_streak=1, bounds=B, retry_after_s=10**9)
    assert d == SERVER_DELAY_CAP_S


def test_max_age_postpones_up_to_the_max_interval() -> None:
    rng = random.Random(3)
    assert next_delay(interval_s=300, error_streak=0, bounds=B, max_age_s=1200, rng=rng) == 1200
    assert next_delay(interval_s=300, error_streak=0, bounds=B, max_age_s=10**6) == 3600


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("1.5", 1.5),  # a fraction, as Slack's sender always read it
        ("Sun, 01 Mar 2026 12:10:00 GMT", 600.0),  # RFC 9110 IMF-fixdate
        ("Sunday, 01-Mar-26 12:10:00 GMT", 600.0),  # obsolete RFC 850 form
        ("Sun Mar  1 12:10:00 2026", 600.0),  # asctime form, GMT implied
        ("Sun, 01 Mar 2026 11:00:00 GMT", 0.0),  # in the past: now
        ("-5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_forms(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("max-age=600", 600.0),
        ("public, max-age=60, must-revalidate", 60.0),
        ('max-age="90"', 90.0),
        ("s-maxage=5", None),
        ("no-cache, max-age=600", None),
        ("no-store", None),
        (None, None),
    ],
)
def test_cache_control_max_age(value: str | None, expected: float | None) -> None:
    assert parse_max_age(value) == expected


def test_seen_ids_forget_the_oldest_first() -> None:
    seen = SeenIds(capacity=2)
    for article_id in ("a", "b", "c"):
        seen.add(article_id)
    assert "a" not in seen
    assert "b" in seen
    assert "c" in seen
    assert len(seen) == 2


def test_seen_ids_a_key_added_again_is_forgotten_last() -> None:
    seen = SeenIds(capacity=3)
    for key, feed in (("a", "f1"), ("b", "f1"), ("c", "f2"), ("a", "f3"), ("d", "f2")):
        seen.add(key, feed)
    assert "b" not in seen
    assert [seen.feed_of(k) for k in ("a", "c", "d")] == ["f3", "f2", "f2"]
    seen.add("e")  # recency now b, c, a, d: c goes, a (added again) stays
    assert "c" not in seen
    assert all(k in seen for k in ("a", "d", "e"))
    assert len(seen) == 3
    seen.add("f")
    assert "a" not in seen
    assert 42 not in seen


def test_seen_ids_stay_bounded_when_the_same_keys_come_again_and_again() -> None:
    seen = SeenIds(capacity=4)
    for _ in range(1000):
        for key in ("a", "b", "c"):
            seen.add(key, "f")
    assert len(seen._order) <= 2 * 4
    for key in ("x", "y"):
        seen.add(key)
    assert "a" not in seen  # the least recently added went first
    assert all(k in seen for k in ("b", "c", "x", "y"))


def test_feed_state_round_trips_and_resets_when_the_url_changes() -> None:
    state = FeedState(url="https://a.example/rss", etag='"x"', body_hash="h", error_streak=3)
    state.next_poll_at = 123.0
    again = FeedState.from_json(state.to_json())
    assert again == state
    moved = again.for_url("https://b.example/rss")
    assert (moved.etag, moved.body_hash, moved.next_poll_at) == (None, None, 123.0)
    with pytest.raises(ValueError, match="not a fetcher state"):
        FeedState.from_json(b'{"schema": "other"}')
