"""The local broker module against a real JVM: start, readiness, stop, nothing left behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from newsmon.shared.broker import (
    LocalKafka,
    _alive,
    broker_ready,
    cluster_id,
    first_server,
    free_port,
    server_properties,
)

pytestmark = pytest.mark.kafka

KAFKA_HOME = Path(__file__).resolve().parents[2] / ".cache" / "kafka"


def test_config_is_single_node_kraft_on_loopback(tmp_path: Path) -> None:
    props = server_properties(tmp_path, 19092, 19093)
    assert "process.roles=broker,controller" in props
    assert "listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093" in props
    assert "offsets.topic.replication.factor=1" in props


async def test_nothing_answers_on_a_closed_port() -> None:
    assert not await broker_ready(f"127.0.0.1:{free_port()}", timeout_s=1.0)


async def test_start_ready_stop_leaves_no_process() -> None:
    port = free_port()
    broker = LocalKafka(KAFKA_HOME, port=port, name=f"test-lifecycle-{port}", heap="256m")
    try:
        broker.start()
        took = await broker.wait_ready(timeout_s=120)
        assert took > 0
        pid = broker.running_pid()
        assert pid is not None
        assert await broker_ready(broker.bootstrap)
        broker.stop()
        assert not _alive(pid)
        assert not broker.pid_file.exists()
        assert not await broker_ready(broker.bootstrap, timeout_s=1.0)
    finally:
        broker.stop()
        shutil.rmtree(broker.run_dir, ignore_errors=True)


def test_cluster_ids_never_start_with_a_dash() -> None:
    draws = iter([b"\xfb" + bytes(15), bytes(16)])  # the first encodes to "-w..."
    assert cluster_id(lambda: next(draws)) == "AAAAAAAAAAAAAAAAAAAAAA"


@pytest.mark.parametrize(
    ("bootstrap", "expected"),
    [
        ("127.0.0.1:19092", ("127.0.0.1", 19092)),
        ("kafka-1:9093,kafka-2:9093", ("kafka-1", 9093)),
        ("kafka-1", ("kafka-1", 9092)),
        ("[::1]:9094", ("::1", 9094)),
        ("[::1]", ("::1", 9092)),
    ],
)
def test_first_server_of_a_bootstrap_list(bootstrap: str, expected: tuple[str, int]) -> None:
    assert first_server(bootstrap) == expected
