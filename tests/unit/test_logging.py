from __future__ import annotations

import io
import json
import logging

from newsmon.shared.logging import configure_logging


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
