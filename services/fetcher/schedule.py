"""When to poll a feed next. Pure functions of what we observed and the time; no I/O, no clock.

The plan, in the order the rules apply:

1. A healthy feed is polled at an *adaptive interval*: how often it published lately,
   bounded by the feed's (or the settings') min and max interval. Like miniflux's
   `entry_frequency` scheduler (internal/model/feed.go ScheduleNextCheck: interval =
   7 days / weekly entry count, clamped to [min, max]), but over a 7-day window of the
   items' own publication times and aiming at two polls per typical gap.
2. A failing feed backs off exponentially from the min interval, doubling per failure up to
   a cap, and is never given up on (miniflux disables a feed after POLLING_PARSING_ERROR_LIMIT
   errors; we do not). A permanent failure (failures.py: a 404 or 410, a body over the cap,
   not a feed) waits the cap at once: asking again soon gets the same answer.
3. The server's wishes are honoured: Retry-After on 429/503 (RFC 9110 §10.2.3: seconds or an
   HTTP-date; RFC 6585 §4) and Cache-Control max-age (RFC 9111 §5.2.2.1) postpone the next
   poll, up to a cap so a silly header cannot stop polling for good.
4. ±10% jitter so feeds configured together do not poll in lockstep.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from newsmon.shared.backoff import exponential_delay

__all__ = [
    "JITTER",
    "Bounds",
    "adaptive_interval",
    "backoff_delay",
    "jittered",
    "next_delay",
    "parse_max_age",
]

JITTER: Final = 0.1
WINDOW: Final = timedelta(days=7)
# Longest we let Retry-After / max-age postpone a poll (a day): a header saying "a year" is
# a server misconfiguration, not a reason to stop polling.
SERVER_DELAY_CAP_S: Final = 86_400.0


@dataclass(frozen=True, slots=True)
class Bounds:
    """Interval bounds of one feed, and the cap of its error back-off (seconds)."""

    min_s: float
    max_s: float
    backoff_max_s: float

    def clamp(self, seconds: float) -> float:
        return min(max(seconds, self.min_s), self.max_s)


def adaptive_interval(published: Iterable[datetime], now: datetime, bounds: Bounds) -> float:
    """Seconds between polls from the publication times of the feed's items.

    Items of the last 7 days (future dates ignored) give a mean gap; we poll twice per gap so
    a new item waits half a gap on average. No recent item: the max interval.
    """
    recent = sorted(t for t in published if now - WINDOW <= t <= now)
    if len(recent) < 2:
        return bounds.max_s if not recent else bounds.clamp((now - recent[0]).total_seconds())
    span = (now - recent[0]).total_seconds()
    mean_gap = span / len(recent)
    return bounds.clamp(mean_gap / 2)


def backoff_delay(error_streak: int, bounds: Bounds) -> float:
    """Delay after `error_streak` consecutive failures: min · 2^(streak-1), capped."""
    if error_streak <= 0:
        return bounds.min_s
    return exponential_delay(bounds.min_s, error_streak, max(bounds.backoff_max_s, bounds.min_s))


def jittered(seconds: float, rng: random.Random | None = None) -> float:
    return seconds * (rng or random).uniform(1 - JITTER, 1 + JITTER)


def next_delay(
    *,
    interval_s: float,
    error_streak: int,
    bounds: Bounds,
    retry_after_s: float | None = None,
    max_age_s: float | None = None,
    rng: random.Random | None = None,
    permanent: bool = False,
) -> float:
    """Seconds until the next poll of one feed (the whole policy; see the module doc).
    `permanent`: the last poll failed in a way retrying soon cannot mend."""
    if permanent:
        base = max(bounds.backoff_max_s, bounds.min_s)
    elif error_streak:
        base = backoff_delay(error_streak, bounds)
    else:
        base = bounds.clamp(interval_s)
    delay = jittered(base, rng)
    if max_age_s is not None and not error_streak:
        # A fresh copy would be served from caches anyway; no later than our max interval.
        delay = max(delay, min(max_age_s, bounds.max_s))
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, SERVER_DELAY_CAP_S))
    return delay


_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:[,=]|$)", re.IGNORECASE)


def parse_max_age(cache_control: str | None) -> float | None:
    """max-age seconds from a Cache-Control value (RFC 9111 §5.2.2.1), None when absent or
    when no-cache/no-store says the response must not be reused."""
    if not cache_control or _NO_CACHE.search(cache_control):
        return None
    match = _MAX_AGE.search(cache_control)
    return float(match.group(1)) if match else None
