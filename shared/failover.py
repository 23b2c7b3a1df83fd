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
cost a state restore. Each hand-over starts a new *term* (the group generation it happened in,
read by the leader), given to every member in its assignment; a holder claims the partitions
with the term it was given them in.
A replica that was frozen (SIGSTOP, a long GC or VM pause) past its session timeout comes back
still claiming them, beside the new active: the claim of the latest term wins, so the zombie
stays on standby instead of taking the stream back (Kafka's StickyAssignor settles the same
conflict with the generation in its user data: KIP-341, "Update Sticky Assignor's User Data
Protocol"). A replica that lost the partitions to another member and got them back finds out
on its first transaction (ProducerFenced: the other one initialised the shared id) and
activates again from the committed state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

__all__ = [
    "ActiveLease",
    "Claim",
    "SingleActiveAssignor",
    "choose_active",
    "group_generation",
    "still_member",
]

# Join metadata's user data: b"holding <term>" from the member that holds the partitions,
# b"standby <term>" from the others (the latest term each knows). b"holding" alone, from a
# replica of an older newsmon, counts as term 0.
HOLDING = b"holding"
STANDBY = b"standby"


@dataclass(frozen=True)
class Claim:
    holding: bool
    term: int

    @classmethod
    def parse(cls, user_data: bytes) -> Claim:
        words = user_data.split()
        return cls(bool(words) and words[0] == HOLDING, _term(words[1] if len(words) > 1 else b""))

    def encode(self) -> bytes:
        return b"%s %d" % (HOLDING if self.holding else STANDBY, self.term)


def _term(text: bytes) -> int:
    return int(text) if text.isdigit() else 0


def choose_active(members: Mapping[str, bytes], generation: int = 0) -> tuple[str, int]:
    """The member (id -> join user data) that gets every partition, and the term it holds
    them in. One that holds them in the latest term any member knows keeps them (sticky); a
    holder of an older term is a zombie (another member was given the partitions since).
    Otherwise the first by id, in a new term: the group's `generation` (above every earlier
    one, even those no member present knows), or one past the latest known if unknown."""
    claims = {member: Claim.parse(data) for member, data in members.items()}
    latest = max(claim.term for claim in claims.values())
    holders = sorted(m for m, claim in claims.items() if claim.holding and claim.term == latest)
    return (holders[0], latest) if holders else (min(members), max(latest + 1, generation))


def group_generation(consumer: Any) -> int:
    """The consumer's group generation as its last join answered (aiokafka keeps it on its
    group coordinator, which it does not expose: 0 when it cannot be read)."""
    generation = getattr(getattr(consumer, "_coordinator", None), "generation", 0)
    return generation if isinstance(generation, int) and generation > 0 else 0


async def still_member(consumer: Any) -> bool:
    """Whether the group coordinator still knows this member in its current generation: one
    Heartbeat, answered by the broker (aiokafka's own heartbeat step; on "unknown member" or
    "illegal generation" it also resets the member, so the consumer rejoins and the
    partitions are revoked). A replica frozen past its session timeout can wake up with an
    assignment the group has since replaced (a SyncGroup answer read after the freeze); it
    must not activate on it and fence the rightful active. True when it cannot be asked."""
    heartbeat = getattr(getattr(consumer, "_coordinator", None), "_do_heartbeat", None)
    return True if heartbeat is None else bool(await heartbeat())


class SingleActiveAssignor(AbstractPartitionAssignor):  # type: ignore[misc]  # aiokafka is untyped
    """A partition assignor that gives every subscribed partition to one member.

    An instance, not the class, goes into `partition_assignment_strategy`: it remembers
    whether this member holds the partitions, for its next join's metadata."""

    name = "newsmon-single-active"
    version = 0

    def __init__(self, generation: Callable[[], int] = lambda: 0) -> None:
        self.holding = False
        self.term = 0
        self.generation = generation  # the group's, when this member leads the assignment

    def metadata(self, topics: Iterable[str]) -> Any:
        return ConsumerProtocolMemberMetadata(
            self.version, sorted(topics), Claim(self.holding, self.term).encode()
        )

    def assign(self, cluster: Any, members: Mapping[str, Any]) -> dict[str, Any]:
        active, term = choose_active(
            {m: bytes(meta.user_data or b"") for m, meta in members.items()}, self.generation()
        )
        topics = sorted({t for meta in members.values() for t in meta.subscription})
        partitions = [
            (topic, sorted(cluster.partitions_for_topic(topic) or ()))
            for topic in topics
            if cluster.partitions_for_topic(topic)
        ]
        # Every member learns the term, so that a standby given the partitions later starts
        # the next one even when the previous holder is gone from the group.
        return {
            member: ConsumerProtocolMemberAssignment(
                self.version, partitions if member == active else [], b"%d" % term
            )
            for member in members
        }

    def on_assignment(self, assignment: Any) -> None:
        self.holding = bool(assignment.partitions())
        # An assignment from a leader of an older newsmon carries no term: keep ours.
        self.term = max(self.term, _term(bytes(assignment.user_data or b"")))


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

    def current(self, generation: int | None) -> bool:
        """Whether the partitions are held now, in the assignment `generation` (records
        fetched in another one may have been read past by the consumer's reset position)."""
        return self.held and generation == self.generation

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.assigned = frozenset(assigned)
        self.held = bool(self.assigned)
        self.generation += 1
