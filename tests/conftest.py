"""Shared fixtures: one real Apache Kafka broker for the whole session, fresh topics per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis  # noqa: F401 - see below
import pytest
from newsmon.shared.broker import LocalKafka, free_port
from newsmon.shared.settings import Settings

from tests.support.kafka_broker import running_broker

# hypothesis' pytest plugin imports hypothesis at the terminal summary when no test did; on
# CPython 3.11.7 that late import, deep in pluggy's stack, fails in pytest's assertion
# rewriter ("AST constructor recursion depth mismatch"). Importing it here avoids that.

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
KAFKA_HOME = REPO / ".cache" / "kafka"


FAULT_SUITE = "tests/faults/"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`make test` runs two pytest-xdist workers. The fault suite is one unit, given to one
    worker first: its modules share one table (and are ~5 min, mostly waiting on processes
    and brokers); the other worker takes the rest module by module, so module fixtures are set
    up once. (xdist's own --dist loadgroup does not group under pytest 9.2: the "@group" it
    appends to item._nodeid no longer changes item.nodeid.)"""
    from xdist.scheduler import LoadScopeScheduling

    class FaultSuiteFirst(LoadScopeScheduling):  # type: ignore[misc]  # xdist is untyped
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith(FAULT_SUITE):
                return FAULT_SUITE
            return str(super()._split_scope(nodeid))  # the module (or class)

    config.option.loadscopereorder = False  # collection order: the fault suite first
    return FaultSuiteFirst(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In an xdist worker: the fault suite first (see pytest_xdist_make_scheduler)."""
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: not item.nodeid.startswith(FAULT_SUITE))  # stable


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[LocalKafka]:
    """A real single-node Kafka 4.x on a free port, data in a throw-away folder."""
    port = free_port()
    broker = LocalKafka(
        KAFKA_HOME, port=port, name=f"test-{port}", pom=REPO / "deploy/kafka/pom.xml"
    )
    with running_broker(broker) as took:
        print(f"\nKafka broker ready on {broker.bootstrap} in {took:.1f}s")
        yield broker


@pytest.fixture
def own_kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A broker for one test alone, for tests that freeze, stop or kill it: doing that to the
    session broker left it fenced for a moment (metadata listing no broker) and failed the
    next test."""
    home = tmp_path_factory.mktemp("own-broker")
    (home / "lib").symlink_to((KAFKA_HOME / "lib").resolve())
    broker = LocalKafka(home, port=free_port(), name="own")
    with running_broker(broker):
        yield broker


@pytest.fixture
def kafka_settings(kafka_broker: LocalKafka) -> Settings:
    """Settings for a pipeline on the test broker, with topics of its own (unique prefix)."""
    return Settings(
        kafka_bootstrap=kafka_broker.bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}",
        topic_partitions=2,
        instance_id=uuid.uuid4().hex[:8],
        metrics_port=0,
        web_port=0,
        poll_interval_s=3600,
        fetch_allow_hosts="127.0.0.1",  # local feed servers; the SSRF guard refuses loopback
        shutdown_timeout_s=10,
    )
