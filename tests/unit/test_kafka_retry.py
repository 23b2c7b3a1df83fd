"""ensure_topics' retry of a broker that is not ready (shared/kafka.py retry_transient)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka.errors import (
    InvalidReplicationFactorError,
    KafkaConnectionError,
    NodeNotReadyError,
    TopicAuthorizationFailedError,
)
from newsmon.shared.kafka import is_transient, retry_transient


def test_transient_answers_are_those_of_a_broker_not_ready() -> None:
    assert is_transient(NodeNotReadyError("node id None"))  # no broker in the metadata
    assert is_transient(KafkaConnectionError("refused"))
    assert is_transient(TimeoutError())
    assert is_transient(InvalidReplicationFactorError("larger than available brokers: 0"))
    assert not is_transient(TopicAuthorizationFailedError())
    assert not is_transient(ValueError("a bug"))


def test_a_transient_failure_is_retried_with_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def attempt() -> list[str]:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise NodeNotReadyError("Attempt to send a request to node which is not ready")
        return ["created"]

    with caplog.at_level(logging.INFO, logger="newsmon.kafka"):
        result = asyncio.run(retry_transient(attempt, what="create topics", bound_s=60))
    assert result == ["created"]
    assert calls == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "one line for the whole wait, not one per attempt"
    assert "create topics" in warnings[0].getMessage()


def test_a_permanent_failure_or_the_bound_ends_the_retries() -> None:
    calls = 0

    async def refused() -> None:
        nonlocal calls
        calls += 1
        raise TopicAuthorizationFailedError()

    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(retry_transient(refused, what="create topics", bound_s=60))
    assert calls == 1

    async def not_ready() -> None:
        raise NodeNotReadyError("node id None")

    # The next pause (0.5 s) would end past the bound: the error is raised at once.
    with pytest.raises(NodeNotReadyError):
        asyncio.run(retry_transient(not_ready, what="create topics", bound_s=0.1))
