"""Per-feed health from the fetcher-state topic and the articles topic. Pure.

One row per feed, as the web page's Feeds tab and `newsmon feeds health` show it: last
success, last new item, error streak and its reason, current poll interval, items in the last
24 hours.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from newsmon.fetcher.state import FeedState

__all__ = ["DAY_S", "FeedHealth", "ItemCounter", "feed_health"]

DAY_S = 86_400.0
# A feed that gave nothing new for this long is flagged "quiet" (many outlets publish daily).
QUIET_AFTER_S = 3 * DAY_S


@dataclass(frozen=True)
class FeedHealth:
    name: str
    url: str
    status: str  # ok, failing, quiet, never-succeeded
    last_success_at: float | None
    last_new_item_at: float | None
    error_streak: int
    reason: str
    interval_s: float | None
    next_poll_at: float | None
    items_24h: int


def _status(state: FeedState, now: float) -> str:
    if state.error_streak:
        return "failing"
    if state.last_success_at is None:
        return "never-succeeded"
    if state.last_new_item_at is None or now - state.last_new_item_at > QUIET_AFTER_S:
        return "quiet"
    return "ok"


def feed_health(
    states: Mapping[str, FeedState], items_24h: Mapping[str, int], now: float
) -> list[FeedHealth]:
    """Failing feeds first, then quiet ones, then by name."""
    order = {"failing": 0, "never-succeeded": 1, "quiet": 2, "ok": 3}
    rows = [
        FeedHealth(
            name=name,
            url=state.url,
            status=_status(state, now),
            last_success_at=state.last_success_at,
            last_new_item_at=state.last_new_item_at,
            error_streak=state.error_streak,
            reason=str(state.extra.get("last_error", "")) if state.error_streak else "",
            interval_s=state.interval_s,
            next_poll_at=state.next_poll_at,
            items_24h=items_24h.get(name, 0),
        )
        for name, state in states.items()
    ]
    return sorted(rows, key=lambda r: (order[r.status], r.name))


class ItemCounter:
    """Articles per feed in the last 24 hours, in hourly buckets (bounded: 25 per feed)."""

    def __init__(self) -> None:
        self._buckets: Counter[tuple[str, int]] = Counter()

    def add(self, feed: str, at: float) -> None:
        self._buckets[(feed, int(at // 3600))] += 1

    def last_24h(self, now: float) -> dict[str, int]:
        oldest = int((now - DAY_S) // 3600) + 1
        for key in [k for k in self._buckets if k[1] < oldest]:
            del self._buckets[key]
        totals: Counter[str] = Counter()
        for (feed, _hour), n in self._buckets.items():
            totals[feed] += n
        return dict(totals)
