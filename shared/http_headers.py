"""HTTP response headers read the same way by every client of newsmon (fetcher, Slack)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

__all__ = ["parse_retry_after"]

# delay-seconds is 1*DIGIT (RFC 9110 §10.2.3); a fraction ("1.5") is read too, as the Slack
# sender always did: some servers send one and it means what it says.
_DELAY_SECONDS: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After value: delay-seconds or an HTTP-date (RFC 9110 §10.2.3:
    `Retry-After = HTTP-date / delay-seconds`), counted from `now`. A date in the past means
    "now" (0); garbage (negative, words, non-ASCII digits) means None."""
    if value is None:
        return None
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):  # re's [0-9], not str.isdigit: "²".isdigit() is True
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 §5.6.7: HTTP-dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
