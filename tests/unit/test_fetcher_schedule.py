from __future__ import annotations

from newsmon.fetcher.app import MAX_BACKOFF_S, SeenIds, next_delay


def test_healthy_feed_polls_at_its_interval_with_jitter() -> None:
    delays = [next_delay(300, 0) for _ in range(200)]
    assert all(270 <= d <= 330 for d in delays)
    assert len({round(d) for d in delays}) > 1, "jitter spreads polls"


def test_errors_back_off_exponentially_up_to_a_cap() -> None:
    assert 540 <= next_delay(300, 1) <= 660
    assert next_delay(300, 30) <= MAX_BACKOFF_S * 1.1


def test_retry_after_is_never_undercut() -> None:
    assert next_delay(60, 0, retry_after_s=900) == 900


def test_seen_ids_forget_the_oldest_first() -> None:
    seen = SeenIds(capacity=2)
    for article_id in ("a", "b", "c"):
        seen.add(article_id)
    assert "a" not in seen
    assert "b" in seen
    assert "c" in seen
    assert len(seen) == 2
