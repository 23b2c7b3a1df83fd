"""The single-active assignor (shared/failover.py): every partition to one member, sticky, and
a standby reads as ready with a note."""

from __future__ import annotations

from typing import Any

from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata
from newsmon.shared.failover import HOLDING, SingleActiveAssignor, choose_active
from newsmon.shared.metrics import Health


class Cluster:
    def __init__(self, partitions: dict[str, set[int]]) -> None:
        self.partitions = partitions

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return self.partitions.get(topic)


def member(user_data: bytes = b"") -> Any:
    return ConsumerProtocolMemberMetadata(0, ["classified"], user_data)


def test_choose_active_is_sticky_then_first_by_id() -> None:
    assert choose_active({"m-b": b"", "m-a": b""}) == "m-a"
    assert choose_active({"m-a": b"", "m-b": HOLDING, "m-c": b""}) == "m-b"
    # Two claim it (a zombie rejoined beside the new active): one of them, deterministically.
    assert choose_active({"m-c": HOLDING, "m-b": HOLDING, "m-a": b""}) == "m-b"


def test_assignor_gives_every_partition_to_one_member() -> None:
    assignor = SingleActiveAssignor()
    cluster = Cluster({"classified": {0, 1, 2}})
    out = assignor.assign(cluster, {"m-a": member(), "m-b": member(HOLDING), "m-c": member()})
    assert out["m-b"].partitions() == [("classified", 0), ("classified", 1), ("classified", 2)]
    assert out["m-a"].partitions() == []
    assert out["m-c"].partitions() == []
    # Encoded and decoded as the group protocol carries it.
    assert out["m-b"].encode()


def test_assignor_remembers_holding_for_its_next_join() -> None:
    assignor = SingleActiveAssignor()
    assert assignor.metadata({"classified"}).user_data == b""
    out = assignor.assign(Cluster({"classified": {0, 1}}), {"m-a": member()})
    assignor.on_assignment(out["m-a"])
    assert assignor.metadata({"classified"}).user_data == HOLDING
    assignor.on_assignment(assignor.assign(Cluster({}), {"m-a": member()})["m-a"])
    assert assignor.metadata({"classified"}).user_data == b""


def test_standby_is_ready_with_a_note() -> None:
    health = Health()
    health.set_broker_reachable(True)
    health.set_assigned("alerter", 0)
    assert health.problems(["alerter"]) == ["alerter: no partitions assigned"]
    health.set_standby("alerter", True)
    assert health.problems(["alerter"]) == []
    assert health.notes() == ["alerter: standby"]
    health.set_standby("alerter", False)
    assert health.notes() == []
