"""A fenced producer's futures that nothing awaits are not logged as ERRORs when collected
(shared/pipeline.py quiet_fenced_orphans); other orphaned failures still are."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest
from aiokafka.errors import ProducerFenced
from newsmon.shared.pipeline import quiet_fenced_orphans


def _orphan(loop: asyncio.AbstractEventLoop, exc: BaseException) -> None:
    future = loop.create_future()
    future.set_exception(exc)
    del future
    gc.collect()


def test_fenced_orphans_go_to_debug_and_others_stay_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.new_event_loop()
    try:
        quiet_fenced_orphans(loop)
        quiet_fenced_orphans(loop)  # a second stage in the same loop: installed once
        with caplog.at_level(logging.DEBUG):
            _orphan(loop, ProducerFenced())
            fenced = [r for r in caplog.records if r.levelno >= logging.ERROR]
            _orphan(loop, ValueError("something else"))
            other = [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        loop.close()
    assert fenced == []
    assert any("unawaited future failed" in r.getMessage() for r in caplog.records)
    assert len(other) == 1
    assert "never retrieved" in other[0].getMessage()
