"""Consume-transform-produce: the loop the classifier and the alerter share.

A batch of records is transformed off the event loop (the transform is pure and may be CPU
bound); the outputs, dead letters for records the transform refused, and the consumer offsets
then go out together:
- with transactions (default): in one Kafka transaction, so a read_committed reader sees each
  output exactly once even if the process dies mid-batch;
- without: every send acknowledged (acks=all) before the offsets are committed: at-least-once,
  made harmless by stable message ids.
If the produce or the commit fails (broker restarting), the batch is retried from its first
offset after a backoff: nothing is lost and nothing is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import (
    IllegalStateError,
    KafkaError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownProducerId,
)
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import OffsetAndMetadata

from .deadletter import DeadLetters, OutputTooLargeError
from .failover import ActiveLease, SingleActiveAssignor, group_generation, still_member
from .kafka import (
    MAX_REQUEST_BYTES,
    Headers,
    ensure_topics,
    make_consumer,
    make_producer,
    max_message_bytes,
    wait_for_leaders,
)
from .lifecycle import (
    CLOSE_SHARE,
    IN_FLIGHT_SHARE,
    Abandoned,
    close_within,
    finish_or_abandon,
)
from .metrics import Metrics
from .rewind import Rewind
from .services import consumer_group
from .settings import Settings

# An idle stage checks this often that its topics still exist (a deleted one is re-created).
_TOPIC_CHECK_INTERVAL_S = 30.0

# Errors that leave an idempotent/transactional producer unusable (KIP-98): replace it.
_PRODUCER_STATE_ERRORS = (OutOfOrderSequenceNumber, UnknownProducerId, ProducerFenced)

__all__ = [
    "BatchState",
    "EndOfBatch",
    "Output",
    "OutputTooLargeError",
    "Processor",
    "StartOfBatch",
    "Transform",
    "observe_lag",
    "quiet_fenced_orphans",
]

log = logging.getLogger("newsmon.pipeline")

T = TypeVar("T")

# aiokafka ships no type information, so records are typed loosely here.
Record = Any


@dataclass(frozen=True)
class Output:
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers = field(default_factory=list)
    # Given a byte budget, the value shortened to fit it (flagged as trimmed in the message),
    # or None when it cannot be made to fit. None here: the value is sent whole or not at all.
    fit: Callable[[int], bytes | None] | None = None
    trimmed: bool = False


# Takes one record, returns what to publish for it (maybe nothing). Raising refuses the record:
# it goes to the DLQ with the error, and the stream moves on.
Transform = Callable[[Record], Sequence[Output]]

# Called once with a batch's records before the transform sees them one by one: work that is
# cheaper done for the whole batch at once (the alerter fingerprints a batch's articles in one
# numpy pass). It must not raise for a bad record: the transform meets that record and refuses it.
StartOfBatch = Callable[[Sequence[Record]], None]

# Called once after the transform saw every record of a batch: what to publish for the batch as
# a whole (the alerter's state records, one per story the batch changed, not one per record),
# in the same transaction as the records' outputs and offsets.
EndOfBatch = Callable[[], Sequence[Output]]


class BatchState(Protocol):
    """State a transform keeps between records (the alerter's story groups). The transform
    stages its changes; they become real only once the batch's outputs are committed."""

    async def load(self) -> None:
        """Rebuild the state; called after the producer started (zombies fenced, their open
        transactions aborted) and before the first record is consumed."""

    def committed(self) -> None:
        """The batch's outputs and offsets are committed: apply the staged changes."""

    def aborted(self) -> None:
        """The batch will be replayed from its first offsets: drop the staged changes."""


class _Result(NamedTuple):
    """One record's transform: its outputs, or the error that refused it. A tuple: one is
    made per record (twice when sent), and a frozen dataclass's __init__ costs several times
    a tuple's."""

    record: Record
    outputs: Sequence[Output]
    error: Exception | None


def _key_text(record: Record) -> str | None:
    return record.key.decode("utf-8", "replace") if record.key else None


def _apply(
    transform: Transform,
    records: Sequence[Record],
    end_of_batch: EndOfBatch | None = None,
    start_of_batch: StartOfBatch | None = None,
) -> tuple[list[_Result], Sequence[Output]]:
    """Each record's result, then the batch's own outputs (`end_of_batch`)."""
    if start_of_batch is not None:
        start_of_batch(records)
    results = []
    for record in records:
        try:
            results.append(_Result(record, transform(record), None))
        except Exception as exc:
            results.append(_Result(record, (), exc))
    return results, (end_of_batch() if end_of_batch is not None else ())


def _next_offsets(records: Sequence[Record]) -> dict[TopicPartition, int]:
    offsets: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
    return offsets


def _usable(producer: AIOKafkaProducer | None) -> bool:
    """False once aiokafka's sender task has ended: it is never restarted, later sends fail at
    once and a transactional producer is left in FATAL_ERROR (its next begin_transaction fails
    an assertion). The task ends on errors aiokafka does not expect, not only on the
    `_PRODUCER_STATE_ERRORS` seen in a batch."""
    if producer is None:
        return False
    sender = getattr(producer, "_sender", None)
    task = getattr(sender, "sender_task", None)
    if task is not None and task.done():
        return False
    txn = getattr(producer, "_txn_manager", None)
    return not (txn is not None and txn.is_fatal_error())


def quiet_fenced_orphans(loop: asyncio.AbstractEventLoop) -> None:
    """A fenced transactional producer fails futures nothing awaits any more: aiokafka's
    per-batch drain waiters and the transaction's own (its context manager does not await it
    once the error is fatal). asyncio logs each one when it is collected, as an ERROR with a
    traceback ("Future exception was never retrieved": 4 for a batch of 3 topics, seen on
    every resumed zombie alerter). The batch already said it in one WARNING line: those go to
    DEBUG; any other orphaned failure is still logged by the loop's handler as before."""
    previous = loop.get_exception_handler()
    if getattr(previous, "quiets_fenced_orphans", False):
        return  # `newsmon run`: several stages, one loop

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if "future" in context and isinstance(exc, _PRODUCER_STATE_ERRORS):
            log.debug("a replaced producer's unawaited future failed: %r", exc)
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    handler.quiets_fenced_orphans = True  # type: ignore[attr-defined]
    loop.set_exception_handler(handler)


async def observe_lag(
    metrics: Metrics, service: str, group: str, consumer: AIOKafkaConsumer
) -> None:
    """Publish the consumer's lag per assigned partition: high watermark (from the last fetch
    response) minus the position (the next offset this consumer will read). Unknown until the
    first fetch of a partition answered."""
    lags: dict[tuple[str, int], int | None] = {}
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        lag: int | None = None
        if highwater is not None:
            # Revoked by a rebalance between assignment() and here: skip it this time.
            with contextlib.suppress(IllegalStateError):
                lag = highwater - await consumer.position(tp)
        lags[(tp.topic, tp.partition)] = lag
    metrics.observe_consumer(service, group, lags)


class Processor:
    """One consume-transform-produce stage. `run()` returns when `stop` is set."""

    def __init__(
        self,
        *,
        settings: Settings,
        service: str,
        source_topic: str,
        transform: Transform,
        metrics: Metrics,
        stop: asyncio.Event,
        outputs: Sequence[str] = (),
        create_topics: Callable[[Sequence[str]], Awaitable[object]] | None = None,
        on_ready: Callable[[], None] | None = None,
        state: BatchState | None = None,
        end_of_batch: EndOfBatch | None = None,
        start_of_batch: StartOfBatch | None = None,
        single_active: bool = False,
        first_retry_s: float = 1.0,
    ) -> None:
        self.settings = settings
        self.service = service
        self.source_topic = source_topic
        self.transform = transform
        self.metrics = metrics
        self.stop = stop
        self.group_id = consumer_group(settings.topic_prefix, service)
        self._on_ready = on_ready
        self.state = state
        self.end_of_batch = end_of_batch
        self.start_of_batch = start_of_batch
        # Every topic the transform may write to, and the DLQ: tracked by the producer from
        # its start (see wait_for_leaders). The source is watched too (re-created if deleted).
        self.outputs = tuple(dict.fromkeys([*outputs, settings.topics.dlq]))
        self._create_topics = create_topics or self._create_plain_topics
        self._check_topics_at = 0.0
        self.topic_check_interval_s = _TOPIC_CHECK_INTERVAL_S
        # Largest record each output topic takes (max.message.bytes): read at start and after
        # a failed publish (an operator may have changed it).
        self._max_bytes: dict[str, int] = {}
        self._max_bytes_stale = True
        # The first pause after a failed batch; it doubles to the cap while failures last.
        self._rewinder = Rewind(stop, first_s=first_retry_s)
        self._dead_letters = DeadLetters(
            topic=settings.topics.dlq, service=service, metrics=metrics
        )
        self._producer: AIOKafkaProducer | None = None
        self._producer_broken = False
        # Single active replica (shared/failover.py): the group gives one replica every
        # partition; it activates (fence, restore, seek) before it consumes.
        self._busy = asyncio.Lock()
        self._lease = ActiveLease(self._busy) if single_active else None
        self._active_generation: int | None = None
        # After ProducerFenced: (the lease's generation then, monotonic deadline) until which
        # this replica does not activate again (see `_waiting_after_fence`).
        self._fenced: tuple[int, float] | None = None

    def _transactional_id(self) -> str | None:
        if not self.settings.kafka_transactions:
            return None
        if self._lease is not None:
            # One id for every replica: the one that activates fences the one before it.
            return self.group_id
        # Stable across restarts of this replica, so a restart fences its own zombie and
        # aborts the transaction it left open instead of waiting for it to time out.
        return f"{self.group_id}.{self.settings.instance_id}"

    def _client_id(self) -> str:
        return f"{self.group_id}.{self.settings.instance_id}"

    async def _start_producer(self) -> AIOKafkaProducer:
        producer = make_producer(
            self.settings, client_id=self._client_id(), transactional_id=self._transactional_id()
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer
        await self._await_topics(producer)
        return producer

    async def _create_plain_topics(self, topics: Sequence[str]) -> None:
        await ensure_topics(self.settings, topics)

    async def _await_topics(self, producer: AIOKafkaProducer) -> None:
        """Consume only once every output topic (and the source) has a leader in the
        producer's metadata; re-create any that went missing."""
        await wait_for_leaders(
            producer,
            [*self.outputs, self.source_topic],
            stop=self.stop,
            create_missing=self._create_topics,
            service=self.service,
        )
        self._check_topics_at = time.monotonic() + self.topic_check_interval_s
        if self._max_bytes_stale and not self.stop.is_set():
            try:
                self._max_bytes = await max_message_bytes(self.settings, self.outputs)
                self._max_bytes_stale = False
            except KafkaError as exc:
                log.warning(
                    "cannot read the output topics' max.message.bytes yet: %s",
                    exc,
                    extra={"service": self.service},
                )

    async def _renew_producer(self) -> bool:
        """Replace a producer whose idempotence/transaction state is lost. The new one, with
        the same transactional id, bumps the epoch and aborts what the old one left open."""
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None
        try:
            await self._start_producer()
        except KafkaError as exc:
            log.warning(
                "cannot start a new Kafka producer yet: %s", exc, extra={"service": self.service}
            )
            await self._pause()
            return False
        log.info("started a new Kafka producer", extra={"service": self.service})
        self._producer_broken = False
        return True

    def _make_consumer(self) -> AIOKafkaConsumer:
        if self._lease is None:
            return make_consumer(
                self.settings,
                self.source_topic,
                group_id=self.group_id,
                client_id=self._client_id(),
            )
        assignor = SingleActiveAssignor()
        consumer = make_consumer(
            self.settings,
            group_id=self.group_id,
            client_id=self._client_id(),
            assignors=(assignor,),
        )
        assignor.generation = functools.partial(group_generation, consumer)
        consumer.subscribe([self.source_topic], listener=self._lease)
        return consumer

    async def run(self) -> None:
        quiet_fenced_orphans(asyncio.get_running_loop())
        consumer = self._make_consumer()
        budget = self.settings.shutdown_timeout_s
        try:
            if self._lease is None:
                await self._unless_stopped(self._start_producer())
                if self.state is not None:
                    await self._unless_stopped(self.state.load())
            await consumer.start()
            try:
                if self._on_ready:
                    self._on_ready()
                log.info(
                    "consuming",
                    extra={
                        "service": self.service,
                        "topic": self.source_topic,
                        "group": self.group_id,
                        "transactions": self.settings.kafka_transactions,
                    },
                )
                await self._loop(consumer)
            finally:
                self.metrics.consumer_stopped(self.service, self.group_id)
                await close_within(consumer.stop(), CLOSE_SHARE * budget, "the Kafka consumer")
        except Abandoned:
            log.warning(
                "stopping: gave up the step in progress after %.1fs (it is redone after the "
                "restart: nothing of it was committed)",
                IN_FLIGHT_SHARE * budget,
                extra={"service": self.service},
            )
        finally:
            if self._producer is not None:
                await close_within(
                    self._producer.stop(), CLOSE_SHARE * budget, "the Kafka producer"
                )

    async def _unless_stopped(self, work: Coroutine[Any, Any, T]) -> T:
        """Run a step that may wait on the broker; after a SIGTERM it gets part of the shutdown
        budget, then it is abandoned (raises Abandoned)."""
        return await finish_or_abandon(
            work, self.stop, IN_FLIGHT_SHARE * self.settings.shutdown_timeout_s
        )

    async def _loop(self, consumer: AIOKafkaConsumer) -> None:
        while not self.stop.is_set():
            if self._lease is not None and not await self._hold_active(consumer):
                continue
            if self._producer_broken and not await self._unless_stopped(self._renew_producer()):
                continue
            assert self._producer is not None
            producer = self._producer
            if self._check_topics_at == 0.0:
                await self._await_topics(producer)
            batch = await consumer.getmany(timeout_ms=500, max_records=self.settings.batch_size)
            await observe_lag(self.metrics, self.service, self.group_id, consumer)
            records = [r for part in batch.values() for r in part]
            if not records:
                if time.monotonic() >= self._check_topics_at:
                    await self._await_topics(producer)
                continue
            async with self._busy:
                if self._lease is not None and not self._lease.current(self._active_generation):
                    # Revoked or rebalanced since the fetch: the records are dropped, and
                    # whoever holds the partitions now reads them again from the committed
                    # offsets (this replica too, if it kept them: `_hold_active`).
                    continue
                failed = await self._process(consumer, producer, records)
            if failed is not None:
                # Outside the lock: a rebalance need not wait for the retry pause.
                await self._rewind(consumer, records, failed)

    async def _hold_active(self, consumer: AIOKafkaConsumer) -> bool:
        """Single-active mode: True once this replica is the active one and may consume;
        False on standby (after a short poll that keeps its group membership alive)."""
        assert self._lease is not None
        if not self._lease.held or self._waiting_after_fence():
            if self._active_generation is not None or self._producer is not None:
                await self._step_down()
            self.metrics.set_active(self.service, False)
            # Keeps the member polling (max.poll.interval.ms); holds no partitions, so it
            # returns nothing, or records fetched just as partitions came: dropped, the
            # activation seeks to the committed offsets.
            await consumer.getmany(timeout_ms=500)
            await observe_lag(self.metrics, self.service, self.group_id, consumer)
            return False
        if self._active_generation is None:
            return await self._activate(consumer)
        if self._active_generation != self._lease.generation:
            return await self._keep_after_rebalance(consumer)
        return True

    def _waiting_after_fence(self) -> bool:
        """True for a while after ProducerFenced: another replica activated (this one was
        frozen or cut off long enough to be evicted from the group), or a transaction timed
        out. The group tells which within a session timeout (the evicted member's next
        heartbeat fails, it is revoked and rejoins: a new generation). Activating again before
        that would fence the rightful active with the shared transactional id; a resumed
        "zombie" so steps down instead of taking the stream back."""
        assert self._lease is not None
        if self._fenced is None:
            return False
        generation, until = self._fenced
        if self._lease.generation != generation or time.monotonic() >= until:
            self._fenced = None
            return False
        return True

    async def _keep_after_rebalance(self, consumer: AIOKafkaConsumer) -> bool:
        """Kept the partitions through a rebalance (sticky). Records fetched across it were
        dropped by `_loop` with the consumer's position already past them: read again from
        the committed offsets, which are this replica's own (its revocation waited for the
        batch in flight). Had another replica been active meanwhile, it fenced our producer,
        and the first transaction tells (ProducerFenced: activate again)."""
        assert self._lease is not None
        generation = self._lease.generation
        try:
            await self._unless_stopped(self._seek_to_committed(consumer))
        except KafkaError as exc:
            log.warning(
                "cannot read the committed offsets after a rebalance yet: %s",
                exc,
                extra=self._log_extra(),
            )
            await self._pause()
            return False
        self._active_generation = generation
        return True

    async def _activate(self, consumer: AIOKafkaConsumer) -> bool:
        """Become the active replica: a fresh producer with the shared transactional id
        (fences the previous active, aborts or completes its open transaction), then the
        state and the committed offsets, which now include exactly its committed batches."""
        assert self._lease is not None
        generation, started = self._lease.generation, time.monotonic()
        if not await self._unless_stopped(still_member(consumer)):
            log.info(
                "partitions assigned, but the group no longer knows this member (frozen or cut "
                "off past its session timeout): rejoining instead of activating",
                extra=self._log_extra(),
            )
            await self._pause()
            return False
        log.info("partitions assigned: becoming the active replica", extra=self._log_extra())
        try:
            # Bounded like any step that waits on the broker: a SIGTERM while it hangs (a
            # frozen broker, a long state restore) abandons it within the shutdown budget.
            await self._unless_stopped(self._take_over(consumer))
        except KafkaError as exc:
            log.warning("cannot become active yet: %s", exc, extra=self._log_extra())
            await self._pause()
            return False
        took = time.monotonic() - started
        self._active_generation = generation
        self._rewinder.reset()
        self.metrics.set_active(self.service, True)
        self.metrics.activations.labels(self.service).inc()
        self.metrics.activation_seconds.labels(self.service).set(took)
        log.info(
            "active: took over in %.1fs (producer fenced its predecessor, state restored)",
            took,
            extra={**self._log_extra(), "activation_s": round(took, 3)},
        )
        return True

    async def _take_over(self, consumer: AIOKafkaConsumer) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None
        await self._start_producer()
        if self.state is not None:
            await self.state.load()
        await self._seek_to_committed(consumer)

    async def _seek_to_committed(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            committed = await consumer.committed(tp)
            # Revoked meanwhile: the generation check before the next batch notices.
            with contextlib.suppress(IllegalStateError):
                if committed is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, committed)

    async def _step_down(self) -> None:
        log.info("standby: another replica holds the partitions", extra=self._log_extra())
        self._active_generation = None
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None

    def _log_extra(self) -> dict[str, Any]:
        return {"service": self.service, "group": self.group_id}

    async def _process(
        self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, records: list[Record]
    ) -> KafkaError | None:
        """Transform and publish one batch; the error when it failed (to be rewound)."""
        self.metrics.items_in.labels(self.service, self.source_topic).inc(len(records))
        self.metrics.batch_records.labels(self.service).observe(len(records))
        started = time.monotonic()
        results, batch_outputs = await asyncio.to_thread(
            _apply, self.transform, records, self.end_of_batch, self.start_of_batch
        )
        transformed = time.monotonic()
        self.metrics.batch_step_seconds.labels(self.service, "transform").observe(
            transformed - started
        )
        try:
            if not _usable(producer):
                raise KafkaError("the Kafka producer stopped working (its sender ended)")
            await self._unless_stopped(
                self._publish(consumer, producer, records, results, batch_outputs)
            )
            if self.state is not None:
                self.state.committed()
            self._rewinder.reset()
            done = time.monotonic()
            self.metrics.batch_step_seconds.labels(self.service, "publish").observe(
                done - transformed
            )
            self.metrics.batch_seconds.labels(self.service).observe(done - started)
        except KafkaError as exc:
            if isinstance(exc, ProducerFenced):
                log.warning(
                    "producer fenced: a transaction timed out, or another replica uses the "
                    "transactional id %r%s",
                    self._transactional_id(),
                    " (another replica became active: this one steps back)"
                    if self._lease is not None
                    else " (give each replica its own NEWSMON_INSTANCE_ID)",
                    extra={"service": self.service},
                )
            if self.state is not None:
                self.state.aborted()
            # After these the producer's sequence/epoch bookkeeping cannot be trusted, or
            # its sender is gone: every later send would fail the same way, so start a
            # fresh producer. A failed transaction may have spent sequence numbers on
            # batches that never reached the broker (expired in the client): its retry
            # would get a certain OutOfOrderSequenceNumber, so replace the producer at
            # once (the new one bumps the epoch and aborts what is left open).
            self._producer_broken = (
                self.settings.kafka_transactions
                or isinstance(exc, _PRODUCER_STATE_ERRORS)
                or not _usable(producer)
            )
            # A topic may have gone (deleted) or changed its size limit: checked before
            # the retry.
            self._check_topics_at = 0.0
            self._max_bytes_stale = True
            if self._lease is not None and self._producer_broken:
                # Whether the transaction committed in the end is known only once a new
                # producer fenced it: activate again (fence, restore, seek to committed).
                self._active_generation = None
                self._producer_broken = False
                if isinstance(exc, ProducerFenced):
                    self._fenced = (
                        self._lease.generation,
                        time.monotonic() + self.settings.kafka_session_timeout_s,
                    )
            return exc
        return None

    async def _publish(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        records: Sequence[Record],
        results: Sequence[_Result],
        batch_outputs: Sequence[Output] = (),
    ) -> None:
        offsets = _next_offsets(records)
        if self.settings.kafka_transactions:
            async with producer.transaction():
                sent = await self._send_all(producer, results, batch_outputs)
                await producer.send_offsets_to_transaction(
                    {tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()}, self.group_id
                )
        else:
            sent = await self._send_all(producer, results, batch_outputs)
            await consumer.commit(offsets)
        self._count(sent, batch_outputs)

    async def _send_all(
        self,
        producer: AIOKafkaProducer,
        results: Sequence[_Result],
        batch_outputs: Sequence[Output] = (),
    ) -> list[_Result]:
        """Send every output and dead letter, then the batch's own outputs; returns the
        results as sent (a record whose output is too large for the producer became a dead
        letter). A batch output too large for its topic even trimmed has no record to
        dead-letter: it is left out with an ERROR line (as a record's whole output was before
        the batch outputs existed), so one oversized story cannot stall the stream."""
        pending: list[asyncio.Future[Any]] = []
        sent: list[_Result] = []
        for result in results:
            if result.error is None:
                try:
                    result = _Result(result.record, self._fitted(result), None)
                    pending.extend(await self._send_outputs(producer, result.outputs))
                except (MessageSizeTooLargeError, OutputTooLargeError) as exc:
                    # A bad record must not stall its partition: the size checks come before
                    # anything of the record is queued, so nothing of it was sent.
                    result = _Result(result.record, (), exc)
            if result.error is not None:
                pending.append(
                    await self._dead_letters.send(
                        producer,
                        result.record,
                        result.error,
                        max_bytes=self._max_bytes.get(self.settings.topics.dlq, MAX_REQUEST_BYTES),
                    )
                )
            sent.append(result)
        pending.extend(await self._send_outputs(producer, self._fitted_batch(batch_outputs)))
        # Every send acknowledged (acks=all) before offsets move on. Each one awaited even when
        # one failed: a fenced producer fails them all, and an unawaited failed future logs
        # "Future exception was never retrieved" (one ERROR per send) when collected.
        outcomes = await asyncio.gather(*pending, return_exceptions=True)
        failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
        if failure is not None:
            raise failure
        return sent

    def _fitted_batch(self, outputs: Sequence[Output]) -> list[Output]:
        fitted = []
        for out in outputs:
            try:
                fitted.append(self._fit(out))
            except OutputTooLargeError as exc:
                self.metrics.errors.labels(self.service, "output_too_large").inc()
                log.error("left out a batch output: %s", exc, extra=self._where(out))
        return fitted

    def _fitted(self, result: _Result) -> list[Output]:
        """The record's outputs, each made to fit its topic's size limit (text trimmed and
        flagged); OutputTooLargeError when one cannot be, so none of them is sent."""
        return [self._fit(out, result.record) for out in result.outputs]

    def _where(self, out: Output, record: Record | None = None) -> dict[str, Any]:
        """Log fields naming an output: its record's key and offset, or its own key. Built
        only for a line actually logged (not per record: a few µs each at thousands/s)."""
        if record is None:
            return {"service": self.service, "message_key": _key_text(out)}
        return {
            "service": self.service,
            "message_key": _key_text(record),
            "offset": record.offset,
        }

    def _fit(self, out: Output, record: Record | None = None) -> Output:
        limit = self._max_bytes.get(out.topic, MAX_REQUEST_BYTES)
        # What the record costs besides its value (record batch and record headers), as
        # aiokafka itself estimates it before a send.
        overhead = DefaultRecordBatchBuilder.estimate_size_in_bytes(out.key, b"", out.headers)
        if overhead + len(out.value) <= limit:
            return out
        value = out.fit(limit - overhead) if out.fit is not None else None
        if value is None:
            raise OutputTooLargeError(out.topic, overhead + len(out.value), limit)
        log.warning(
            "trimmed an output's text to fit %s (%d -> %d bytes, max.message.bytes %d)",
            out.topic,
            overhead + len(out.value),
            overhead + len(value),
            limit,
            extra=self._where(out, record),
        )
        return replace(out, value=value, fit=None, trimmed=True)

    @staticmethod
    async def _send_outputs(
        producer: AIOKafkaProducer, outputs: Sequence[Output]
    ) -> list[asyncio.Future[Any]]:
        return [
            await producer.send(out.topic, out.value, key=out.key, headers=out.headers)
            for out in outputs
        ]

    def _count(self, results: Sequence[_Result], batch_outputs: Sequence[Output] = ()) -> None:
        published: Counter[str] = Counter()  # one counter update per topic and batch
        for out in batch_outputs:
            published[out.topic] += 1
        for result in results:
            if result.error is not None:
                self._dead_letters.counted(result.error)
            for out in result.outputs:
                published[out.topic] += 1
                if out.trimmed:
                    self.metrics.outputs_trimmed.labels(self.service, out.topic).inc()
        for topic, count in published.items():
            self.metrics.items_out.labels(self.service, topic).inc(count)

    async def _rewind(
        self, consumer: AIOKafkaConsumer, records: Sequence[Record], exc: KafkaError
    ) -> None:
        """Output not acknowledged: replay the batch from its first offsets after a pause."""
        self.metrics.errors.labels(self.service, "kafka").inc()
        log.warning(
            "could not publish a batch, will retry it in %.0fs: %s",
            self._rewinder.delay_s,
            exc,
            extra={"service": self.service, "records": len(records)},
        )
        await self._rewinder.replay_later(consumer, records)

    async def _pause(self) -> None:
        """The retry pause (capped exponential), cut short by `stop`: a SIGTERM during a
        broker outage drains at once instead of outliving the shutdown budget."""
        await self._rewinder.pause()
