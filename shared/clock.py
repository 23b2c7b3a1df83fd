"""The one clock type of newsmon, injected wherever code reads the time so tests can drive it.

A `Clock` returns seconds as a float: `time.time` where the instant is stored or shown (a
feed's next poll, a WebSub lease), `time.monotonic` where only durations count (rate limits,
log windows). Datetimes for messages come from shared/messages.py `utc_now`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

__all__ = ["Clock"]

Clock: TypeAlias = Callable[[], float]
