"""Logging: one event per line, JSON for machines, short text for people at a terminal.

Context such as article or alert ids goes in `extra={...}` so one story can be followed across
services: `log.info("published alert", extra={"alert_id": a.alert_id})`.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from newsmon.shared.clock import Clock

__all__ = [
    "JsonFormatter",
    "Outage",
    "RepeatLimiter",
    "TextFormatter",
    "configure_logging",
    "count_kafka_connect_failures",
]

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        event.update(_extras(record))
        if record.exc_info:
            event["exc"] = self.formatException(record.exc_info)
        return json.dumps(event, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if extras:
            line = f"{line}  [{extras}]"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    # A client library that logs every retry of an unreachable broker (aiokafka: one ERROR per
    # attempt and node, thousands a minute) is summarised, not echoed: our own services log
    # the state change once (broker unreachable since / reachable again after).
    handler.addFilter(RepeatLimiter(loggers=("aiokafka",)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka logs every reconnect attempt at ERROR with a traceback; our services log one
    # line of their own per failure, so keep the client's chatter at WARNING and above.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("aiokafka.consumer.group_coordinator").addFilter(_transient_coordinator)


class Outage:
    """Something newsmon depends on (the broker, Slack) failing, tracked so a loop says so in
    one line when it starts and one when it ends, not once per attempt. `begin()` is True only
    for the first failure of an outage; `end()` gives how long it lasted (None when nothing
    was failing)."""

    __slots__ = ("_clock", "_started", "started_at")

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._started: float | None = None
        self.started_at: datetime | None = None  # wall clock (UTC), for the log line

    @property
    def ongoing(self) -> bool:
        return self._started is not None

    def begin(self) -> bool:
        if self._started is not None:
            return False
        self._started, self.started_at = self._clock(), datetime.now(UTC)
        return True

    def end(self) -> float | None:
        if self._started is None:
            return None
        lasted = self._clock() - self._started
        self._started = self.started_at = None
        return lasted


def _transient_coordinator(record: logging.LogRecord) -> bool:
    """aiokafka logs "coordinator not available" at ERROR while a new group's coordinator is
    elected (the first seconds of every fresh broker); it retries by itself, so drop it."""
    return "GroupCoordinatorNotAvailable" not in record.getMessage()


class RepeatLimiter(logging.Filter):
    """Lets through at most `burst` records per `window_s` of each message template of the
    given loggers; the first record after a window in which some were held back carries
    `suppressed_similar` (how many), so a summary survives, not the flood."""

    def __init__(
        self,
        *,
        loggers: tuple[str, ...],
        window_s: float = 60.0,
        burst: int = 3,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__()
        self._prefixes = loggers
        self._window_s = window_s
        self._burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        # (logger, template) -> [window start, records let through, records held back]
        self._windows: dict[tuple[str, str], list[float]] = {}

    def _limited(self, name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in self._prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._limited(record.name):
            return True
        key = (record.name, str(record.msg))
        now = self._clock()
        with self._lock:
            window = self._windows.get(key)
            if window is None or now - window[0] >= self._window_s:
                held = int(window[2]) if window is not None else 0
                self._windows[key] = [now, 1, 0]
                if held:
                    record.suppressed_similar = held
                return True
            if window[1] < self._burst:
                window[1] += 1
                return True
            window[2] += 1
            return False


# aiokafka's messages for a failed connection attempt (aiokafka/client.py, 0.14): the bootstrap
# and the per-node reconnect.
_CONNECT_FAILURES = ('Unable connect to "%s:%s": %s', "Unable connect to node with id %s: %s")


def count_kafka_connect_failures(count: Callable[[], None]) -> Callable[[], None]:
    """Call `count` for every failed Kafka connection attempt aiokafka makes (it reconnects by
    itself and says so only in its log). Returns the function that stops counting."""

    def counting(record: logging.LogRecord) -> bool:
        if record.msg in _CONNECT_FAILURES:
            count()
        return True

    client_log = logging.getLogger("aiokafka")  # the logger of aiokafka/client.py
    client_log.addFilter(counting)
    return lambda: client_log.removeFilter(counting)
