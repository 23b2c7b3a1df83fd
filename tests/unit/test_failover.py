"""The single-active assignor (shared/failover.py): every partition to one member, sticky, and
a standby reads as ready with a note."""

from __future__ import annotations

from typing import Any

from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata
from newsmon.shared.failover import Claim, SingleActiveAssignor, choose_active
from newsmon.shared.metrics import Health


class Cluster:
    def __init__(self, partitions: dict[str, set[int]]) -> None:
        self.partitions = partitions

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return self.partitions.get(topic)


def member(user_data: bytes = b"") -> Any:
    return ConsumerProtocolMemberMetadata(0, ["classified"], user_data)


def test_choose_active_is_sticky_then_first_by_id_in_a_new_term() -> None:
    assert choose_active({"m-b": b"", "m-a": b""}) == ("m-a", 1)
    assert choose_active({"m-a": b"standby 3", "m-b": b"holding 3", "m-c": b""}) == ("m-b", 3)
    assert choose_active({"m-b": b"standby 3", "m-a": b"standby 3"}) == ("m-a", 4)


def test_a_zombie_holding_an_older_term_loses_to_the_new_active() -> None:
    # m-a was frozen past its session timeout; m-b was given the partitions in term 4 and
    # holds them when m-a comes back still claiming them.
    assert choose_active({"m-a": b"holding 3", "m-b": b"holding 4"}) == ("m-b", 4)
    # The new active is gone too: a standby that knows term 4 outranks the stale claim, and
    # the first by id (the old zombie, alive now) starts term 5 from the committed state.
    assert choose_active({"m-a": b"holding 3", "m-c": b"standby 4"}) == ("m-a", 5)


def test_claims_of_an_older_newsmon_count_as_term_0() -> None:
    assert Claim.parse(b"holding") == Claim(holding=True, term=0)
    assert Claim.parse(b"") == Claim(holding=False, term=0)
    assert Claim.parse(Claim(holding=True, term=12).encode()) == Claim(holding=True, term=12)
    assert choose_active({"m-b": b"holding", "m-a": b""}) == ("m-b", 0)


def test_assignor_gives_every_partition_to_one_member() -> None:
    assignor = SingleActiveAssignor()
    cluster = Cluster({"classified": {0, 1, 2}})
    out = assignor.assign(
        cluster, {"m-a": member(), "m-b": member(b"holding 2"), "m-c": member(b"standby 2")}
    )
    assert out["m-b"].partitions() == [("classified", 0), ("classified", 1), ("classified", 2)]
    assert out["m-a"].partitions() == []
    assert out["m-c"].partitions() == []
    # Encoded and decoded as the group protocol carries it.
    assert out["m-b"].encode()


def test_assignor_remembers_holding_and_the_term_for_its_next_join() -> None:
    assignor = SingleActiveAssignor()
    assert assignor.metadata({"classified"}).user_data == b"standby 0"
    out = assignor.assign(Cluster({"classified": {0, 1}}), {"m-a": member()})
    assignor.on_assignment(out["m-a"])
    assert assignor.metadata({"classified"}).user_data == b"holding 1"
    out = assignor.assign(Cluster({"classified": {0, 1}}), {"m-a": member(b"holding 1")})
    assignor.on_assignment(out["m-a"])
    assert assignor.metadata({"classified"}).user_data == b"holding 1"  # kept: same term
    assignor.on_assignment(assignor.assign(Cluster({}), {"m-a": member(b"standby 7")})["m-a"])
    assert assignor.metadata({"classified"}).user_data == b"standby 8"


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
