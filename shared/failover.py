"""One active replica, the others on standby: fail-over through a Kafka consumer group only.

The alerter's story grouping needs every matching article in one place (stories are found by
text similarity across article keys, so no key partitions them). Every alerter replica joins the
alerter's consumer group on the classified topic as usual, but with `SingleActiveAssignor`:
the group leader gives *all* partitions to one member, the others get none and wait. When the
active replica dies, the group coordinator evicts it after the session timeout
(NEWSMON_KAFKA_SESSION_TIMEOUT_S) and the next assignment hands every partition to a standby.
Kafka itself decides who is active (the consumer-group protocol and its custom-assignor plug
point, "partition.assignment.strategy"), nothing of ours coordinates.

Exactness comes from the transactional id, shared by every replica (`<prefix>-alerter`, not
per instance): the new active's producer initialisation bumps the id's epoch, which fences the
predecessor's producer (a zombie's next transaction fails with ProducerFenced) and aborts, or
completes, the transaction it left open (KIP-98, "Transactional Guarantees",
kafka.apache.org/documentation/#semantics). Only then does the new active rebuild its state
from the compacted state topic (read_committed) and read the committed offsets: both include
exactly the batches whose alerts were committed, so no alert is lost or raised twice.

The assignment is sticky: a member that held the partitions says so in its join metadata and
keeps them, so a standby joining (or a rolling restart of standbys) does not move the work and
cost a state restore. A replica that lost the partitions to another member and got them back
finds out on its first transaction (ProducerFenced: the other one initialised the shared id)
and activates again from the committed state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

__all__ = ["ActiveLease", "SingleActiveAssignor", "choose_active"]

# Join metadata's user data of a member that holds the partitions now.
HOLDING = b"holding"


def choose_active(members: Mapping[str, bytes]) -> str:
    """The member (id -> join user data) that gets every partition: one that says it holds
    them already (sticky; the first by id if two claim it, as after a zombie rejoins), else
    the first by id."""
    holding = sorted(member for member, data in members.items() if data == HOLDING)
    return holding[0] if holding else min(members)


class SingleActiveAssignor(AbstractPartitionAssignor):  # type: ignore[misc]  # aiokafka is untyped
    """A partition assignor that gives every subscribed partition to one member.

    An instance, not the class, goes into `partition_assignment_strategy`: it remembers
    whether this member holds the partitions, for its next join's metadata."""

    name = "newsmon-single-active"
    version = 0

    def __init__(self) -> None:
        self.holding = False

    def metadata(self, topics: Iterable[str]) -> Any:
        return ConsumerProtocolMemberMetadata(
            self.version, sorted(topics), HOLDING if self.holding else b""
        )

    def assign(self, cluster: Any, members: Mapping[str, Any]) -> dict[str, Any]:
        active = choose_active({m: bytes(meta.user_data or b"") for m, meta in members.items()})
        topics = sorted({t for meta in members.values() for t in meta.subscription})
        partitions = [
            (topic, sorted(cluster.partitions_for_topic(topic) or ()))
            for topic in topics
            if cluster.partitions_for_topic(topic)
        ]
        return {
            member: ConsumerProtocolMemberAssignment(
                self.version, partitions if member == active else [], b""
            )
            for member in members
        }

    def on_assignment(self, assignment: Any) -> None:
        self.holding = bool(assignment.partitions())


class ActiveLease(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """What the group gave this replica: `held` while it holds the partitions, `generation`
    counts the assignments (a changed number: the positions were reset by a rebalance).

    On revocation it waits for the batch in progress (`busy`) to be committed or aborted, so
    the next owner starts from offsets that no transaction of ours will still move."""

    def __init__(self, busy: asyncio.Lock) -> None:
        self.busy = busy
        self.held = False
        self.generation = 0
        self.assigned: frozenset[TopicPartition] = frozenset()

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        del revoked
        async with self.busy:
            self.held = False
            self.assigned = frozenset()

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.assigned = frozenset(assigned)
        self.held = bool(self.assigned)
        self.generation += 1
