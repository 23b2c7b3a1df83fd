from __future__ import annotations

import io
import json
import logging

from newsmon.shared.logging import (
    Outage,
    RepeatLimiter,
    configure_logging,
    count_kafka_connect_failures,
)


def test_json_logs_are_one_event_per_line_with_context() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    logging.getLogger("newsmon.test").info("published %d", 3, extra={"article_id": "a1"})
    event = json.loads(stream.getvalue().strip())
    assert event["msg"] == "published 3"
    assert event["article_id"] == "a1"
    assert event["level"] == "info"
    assert event["logger"] == "newsmon.test"


def test_text_logs_for_people() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "text", stream)
    logging.getLogger("newsmon.test").warning("feed down", extra={"feed": "nie"})
    line = stream.getvalue()
    assert "WARNING" in line
    assert "feed down" in line
    assert "feed=nie" in line


def _record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_repeat_limiter_summarises_a_flood_of_one_message() -> None:
    now = [0.0]
    limiter = RepeatLimiter(loggers=("aiokafka",), window_s=60.0, burst=3, clock=lambda: now[0])
    flood = [
        _record("aiokafka.client", "Unable connect to node with id %s: %s", 1, i) for i in range(10)
    ]
    assert [limiter.filter(r) for r in flood] == [True] * 3 + [False] * 7
    other = _record("aiokafka.client", "Unable to update metadata from %s", [1])
    assert limiter.filter(other), "another message has its own budget"
    assert limiter.filter(_record("newsmon.pipeline", "ours, never limited"))
    now[0] = 61.0
    summary = _record("aiokafka.client", "Unable connect to node with id %s: %s", 1, "x")
    assert limiter.filter(summary)
    assert summary.suppressed_similar == 7  # type: ignore[attr-defined]


def test_failed_kafka_connection_attempts_are_counted() -> None:
    counted: list[int] = []
    stop_counting = count_kafka_connect_failures(lambda: counted.append(1))
    try:
        client_log = logging.getLogger("aiokafka")
        client_log.error("Unable connect to node with id %s: %s", 1, "refused")
        client_log.error('Unable connect to "%s:%s": %s', "127.0.0.1", 1, "refused")
        client_log.error("Unable to update metadata from %s", [1])
    finally:
        stop_counting()
    client_log.error("Unable connect to node with id %s: %s", 1, "after stop")
    assert counted == [1, 1]


def test_an_outage_is_said_once_when_it_begins_and_once_when_it_ends() -> None:
    now = [100.0]
    outage = Outage(clock=lambda: now[0])
    assert outage.end() is None, "nothing was failing"
    assert outage.begin() is True
    assert outage.ongoing
    assert outage.started_at is not None
    now[0] = 130.0
    assert outage.begin() is False, "the same outage: no second line"
    now[0] = 160.0
    assert outage.end() == 60.0
    assert not outage.ongoing
    assert outage.started_at is None
    assert outage.end() is None
