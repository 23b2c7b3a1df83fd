"""A local broker for a test or a benchmark: started, ready, then stopped with its data removed."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Iterator

from newsmon.shared.broker import LocalKafka


@contextlib.contextmanager
def running_broker(broker: LocalKafka, *, ready_within_s: float = 120.0) -> Iterator[float]:
    """Start `broker` and wait until it answers; yields the seconds that took. At the end the
    broker is stopped (also when the body stopped it already) and its data folder removed."""
    broker.start()
    try:
        yield asyncio.run(broker.wait_ready(timeout_s=ready_within_s))
    finally:
        broker.stop()
        shutil.rmtree(broker.run_dir, ignore_errors=True)
