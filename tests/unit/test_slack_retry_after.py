"""The Slack sender reads Retry-After with the one shared parser: seconds and HTTP-dates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
from newsmon.notifier.slack import _retry_after


def _response(value: str) -> httpx.Response:
    return httpx.Response(429, headers={"Retry-After": value})


def test_seconds() -> None:
    assert _retry_after(_response("30")) == 30.0


def test_http_date_is_read_not_ignored() -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    seconds = _retry_after(_response(format_datetime(later, usegmt=True)))
    assert seconds is not None
    assert 0.0 < seconds <= 3600.0


def test_garbage_leaves_it_to_our_backoff() -> None:
    assert _retry_after(_response("soon")) is None
    assert _retry_after(_response("-5")) is None
