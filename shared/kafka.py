"""Kafka clients configured the one way newsmon uses them, topic creation and headers."""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import struct
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.errors import (
    InvalidReplicationFactorError,
    KafkaError,
    NodeNotReadyError,
    TopicAlreadyExistsError,
    for_code,
)
from aiokafka.partitioner import DefaultPartitioner

from .backoff import Backoff
from .lifecycle import sleep_or_stop
from .settings import Settings

__all__ = [
    "Headers",
    "client_kwargs",
    "create_topics",
    "ensure_topics",
    "header",
    "key_partition",
    "make_admin",
    "make_consumer",
    "make_producer",
    "make_reader",
    "max_message_bytes",
    "new_topic",
    "retry_transient",
    "security_kwargs",
    "seek_to_time",
    "wait_for_leaders",
]

log = logging.getLogger("newsmon.kafka")

Headers = list[tuple[str, bytes]]

# The producer's own cap on one request (aiokafka's default max_request_size, set explicitly so
# the size checks in shared/pipeline.py know it).
MAX_REQUEST_BYTES = 1_048_576


def bootstrap_of(settings: Settings) -> str:
    if not settings.kafka_bootstrap:
        raise ValueError("no Kafka bootstrap servers configured (NEWSMON_KAFKA_BOOTSTRAP)")
    return settings.kafka_bootstrap


def tls_context(settings: Settings) -> ssl.SSLContext:
    """The TLS side of every connection: the broker's certificate verified against the CA file
    (or the system's CAs), its host name checked unless turned off, and the client certificate
    for brokers that require one (ssl.client.auth=required)."""
    cafile = settings.kafka_ssl_cafile
    context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    context.check_hostname = settings.kafka_ssl_check_hostname
    if settings.kafka_ssl_certfile is not None:
        password = settings.kafka_ssl_key_password
        context.load_cert_chain(
            settings.kafka_ssl_certfile,
            settings.kafka_ssl_keyfile,
            password=password.get_secret_value() if password else None,
        )
    return context


def security_kwargs(settings: Settings) -> dict[str, Any]:
    """aiokafka's security arguments, the same for every producer, consumer and admin client
    (aiokafka names the SASL password `sasl_plain_password` for SCRAM too)."""
    protocol = settings.kafka_security_protocol
    kwargs: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = tls_context(settings)
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        password = settings.kafka_sasl_password
        kwargs["sasl_mechanism"] = settings.kafka_sasl_mechanism
        kwargs["sasl_plain_username"] = settings.kafka_sasl_username
        kwargs["sasl_plain_password"] = password.get_secret_value() if password else None
    return kwargs


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """Where and how to connect: spread into every aiokafka client newsmon builds."""
    return {"bootstrap_servers": bootstrap_of(settings), **security_kwargs(settings)}


def make_admin(
    settings: Settings, *, client_id: str = "newsmon-admin", **options: Any
) -> AIOKafkaAdminClient:
    """The one way newsmon (and its tests) build an admin client. `options`: aiokafka's
    arguments where a caller differs (`request_timeout_ms` of a quick probe)."""
    return AIOKafkaAdminClient(**{**client_kwargs(settings), "client_id": client_id, **options})


def new_topic(
    settings: Settings, name: str, partitions: int, configs: dict[str, str] | None = None
) -> NewTopic:
    """A topic as newsmon creates it: replication and min.insync.replicas from the settings."""
    topic_configs = dict(configs or {})
    if settings.topic_min_insync_replicas is not None:
        topic_configs["min.insync.replicas"] = str(settings.topic_min_insync_replicas)
    return NewTopic(name, partitions, settings.topic_replication, topic_configs=topic_configs)


# A transaction that starts while the broker still writes the previous one's commit markers is
# told CONCURRENT_TRANSACTIONS and retried after retry_backoff_ms. aiokafka shortens that wait
# to 20 ms for AddPartitionsToTxn only (KAFKA-5477, aiokafka/producer/sender.py
# BACKOFF_OVERRIDE); a batch without outputs starts with AddOffsetsToTxn and waited the full
# 100 ms default: back-to-back offsets-only transactions took 113 ms (median) with 100 ms and
# 33 ms with 20 ms on the local broker (bench/bench_e2e.py; BENCHMARKS.md, End to end).
TXN_RETRY_BACKOFF_MS = 20


_MURMUR_M = 0x5BD1E995
_U32 = 0xFFFFFFFF


@functools.lru_cache(maxsize=256)
def _little_endian_words(count: int) -> Callable[[bytes], tuple[int, ...]]:
    return struct.Struct(f"<{count}I").unpack_from


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of a key (apache/kafka clients/.../common/utils/Utils.java `murmur2`,
    seed 0x9747b28c): the hash every Kafka client's default partitioner takes, so a key lands
    on the partition a Java producer would pick. The same function as aiokafka's
    (aiokafka/partitioner.py), written over whole 32-bit words: 1.9x faster on article ids
    (4.2 against 8.1 us per 24-character key), and the partitioner was half of the
    classifier's per-record send() in its py-spy profile."""
    length = len(data)
    h = 0x9747B28C ^ length
    whole = length & ~3
    m, u32 = _MURMUR_M, _U32
    for k in _little_endian_words(whole >> 2)(data):
        k = (k * m) & u32
        h = ((h * m) & u32) ^ (((k ^ (k >> 24)) * m) & u32)
    if length & 3:
        h = ((h ^ int.from_bytes(data[whole:], "little")) * m) & u32
    h ^= h >> 13
    h = (h * m) & u32
    return h ^ (h >> 15)


_RANDOM_PARTITION = DefaultPartitioner()


def key_partition(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """aiokafka's DefaultPartitioner (a keyed record's partition: murmur2 of the key, positive,
    modulo the partition count; an unkeyed one's: random), with the faster `murmur2`."""
    if key is None:
        return int(_RANDOM_PARTITION(key, all_partitions, available))
    return all_partitions[(murmur2(key) & 0x7FFFFFFF) % len(all_partitions)]


def make_producer(
    settings: Settings, *, client_id: str, transactional_id: str | None = None
) -> AIOKafkaProducer:
    """acks=all + idempotence: a send is acknowledged only once every in-sync replica has it,
    and broker-side retries never duplicate it."""
    return AIOKafkaProducer(
        **client_kwargs(settings),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        transactional_id=transactional_id,
        linger_ms=settings.kafka_linger_ms,
        max_batch_size=settings.kafka_max_batch_bytes,
        compression_type=None
        if settings.kafka_compression == "none"
        else settings.kafka_compression,
        request_timeout_ms=30_000,
        max_request_size=MAX_REQUEST_BYTES,
        retry_backoff_ms=100 if transactional_id is None else TXN_RETRY_BACKOFF_MS,
        partitioner=key_partition,
    )


def make_consumer(
    settings: Settings,
    *topics: str,
    group_id: str,
    client_id: str,
    assignors: Sequence[Any] = (RoundRobinPartitionAssignor,),
) -> AIOKafkaConsumer:
    """Manual commits only (after the output is acknowledged) and read_committed, so aborted
    transactional output of a crashed upstream is never seen. `assignors`: how the group
    spreads partitions (aiokafka's default; shared/failover.py's for one active replica)."""
    return AIOKafkaConsumer(
        *topics,
        partition_assignment_strategy=tuple(assignors),
        **client_kwargs(settings),
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=settings.batch_size,
        session_timeout_ms=int(settings.kafka_session_timeout_s * 1000),
        # A third of the session, as Kafka's own defaults (3 s of 10 s; KIP-62): two
        # heartbeats may be lost before the member is evicted.
        heartbeat_interval_ms=int(settings.kafka_session_timeout_s * 1000 / 3),
    )


def make_reader(settings: Settings, *, client_id: str, **options: Any) -> AIOKafkaConsumer:
    """A group-less consumer for readers that assign partitions themselves and commit nothing
    (state-topic reads, the live tails of `newsmon web`, `newsmon tail` and the fetcher's
    articles tail, offset look-ups): read_committed, so aborted transactional output is never
    seen; a lost position starts at the earliest record. `options`: aiokafka's arguments where
    a reader differs (fetch sizes, `auto_offset_reset`, ...)."""
    return AIOKafkaConsumer(
        **{
            **client_kwargs(settings),
            "group_id": None,
            "client_id": client_id,
            "enable_auto_commit": False,
            "isolation_level": "read_committed",
            "auto_offset_reset": "earliest",
            **options,
        }
    )


async def seek_to_time(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition], at_ms: int
) -> None:
    """Put each of the assigned `partitions` at its first record at or after `at_ms` (Unix
    ms; ListOffsets by timestamp), or at its end when it has none that recent."""
    found = await consumer.offsets_for_times(dict.fromkeys(partitions, at_ms))
    ends = await consumer.end_offsets(list(partitions))
    for tp in partitions:
        at = found.get(tp)
        consumer.seek(tp, at.offset if at is not None else ends[tp])


# How long ensure_topics keeps retrying a broker that is not ready to create topics.
ENSURE_TOPICS_RETRY_S = 60.0

T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """An answer of a broker that is starting, re-registering or electing a controller:
    aiokafka's retriable errors (NodeNotReady: no broker in the metadata yet; connection lost;
    request timed out; not the controller), a client-side timeout, and a replication factor
    larger than the brokers registered so far (KRaft answers that while a broker registers)."""
    if isinstance(exc, TimeoutError | InvalidReplicationFactorError):
        return True
    return isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))


async def retry_transient(attempt: Callable[[], Awaitable[T]], *, what: str, bound_s: float) -> T:
    """`attempt()`, again after a pause (shared/backoff.py, 0.5 s doubling to 5 s) while it
    fails with a transient answer (`is_transient`), for at most `bound_s`; then its error.
    One WARNING line on the first failure and one INFO line if a retry then succeeds."""
    deadline = time.monotonic() + bound_s
    retry = Backoff(first_s=0.5, cap_s=5.0)
    never = asyncio.Event()  # no stop event here: the bound ends the wait
    failures = 0
    while True:
        try:
            result = await attempt()
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() + retry.delay_s > deadline:
                raise
            if not failures:
                log.warning(
                    "cannot %s yet, the broker is not ready (%s: %s); retrying for up to %.0fs",
                    what,
                    type(exc).__name__,
                    exc,
                    bound_s,
                )
            failures += 1
            await retry.pause(never)
            continue
        if failures:
            log.info("could %s after %d failed attempts", what, failures)
        return result


async def ensure_topics(
    settings: Settings,
    topics: Sequence[str] | None = None,
    *,
    retry_s: float = ENSURE_TOPICS_RETRY_S,
) -> list[str]:
    """Create the topics that are missing; returns the ones created. Safe to run concurrently.
    A broker that is not ready yet (re-registering after a restart) is retried for `retry_s`."""
    wanted = list(topics or settings.topics.all())
    return await retry_transient(
        lambda: _create_missing(settings, wanted), what="create topics", bound_s=retry_s
    )


async def _create_missing(settings: Settings, wanted: Sequence[str]) -> list[str]:
    admin = make_admin(settings)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if not missing:
            return []
        new = [new_topic(settings, t, settings.topic_partitions) for t in missing]
        await create_topics(admin, new)
        log.info("created topics", extra={"topics": missing})
        return missing
    finally:
        await admin.close()


async def create_topics(admin: AIOKafkaAdminClient, topics: Sequence[NewTopic]) -> None:
    """CreateTopics, its per-topic errors raised (aiokafka returns them in the response); a
    topic that exists already is fine (another service may create it between list and
    create)."""
    try:
        response = await admin.create_topics(list(topics))
    except AttributeError as exc:
        # aiokafka 0.14 `_send_to_controller` reads `cluster.controller.nodeId` even when the
        # metadata names no controller (a broker re-registering): say it as what it is.
        raise NodeNotReadyError("no controller in the cluster metadata yet") from exc
    except TopicAlreadyExistsError:
        return
    for name, code, *rest in response.topic_errors:
        if code not in (0, TopicAlreadyExistsError.errno):
            error = for_code(code)
            raise error(f"{name}: {rest[0] if rest and rest[0] else error.__name__}")


# How often wait_for_leaders tries again to create topics that stay missing.
_CREATE_RETRY_S = 5.0


def _leaderless(producer: AIOKafkaProducer, topics: Iterable[str]) -> tuple[list[str], list[str]]:
    """(missing, leaderless): topics absent from the producer's metadata, and topics with a
    partition that has no leader yet (a topic created a moment ago)."""
    cluster = producer.client.cluster
    missing, leaderless = [], []
    for topic in topics:
        partitions = cluster.partitions_for_topic(topic)
        if partitions is None:
            missing.append(topic)
        elif len(cluster.available_partitions_for_topic(topic)) < len(partitions):
            leaderless.append(topic)
    return missing, leaderless


async def wait_for_leaders(
    producer: AIOKafkaProducer,
    topics: Sequence[str],
    *,
    stop: asyncio.Event,
    create_missing: Callable[[Sequence[str]], Awaitable[object]] | None = None,
    service: str = "",
    warn_after_s: float = 10.0,
) -> bool:
    """Make a started producer track every topic it will write to, and return once each of
    them has a leader for every partition in its metadata (False: `stop` was set first).

    Why (aiokafka 0.14, docs/upstream/aiokafka-metadata-refresh.md): the producer's metadata
    requests name only the topics it tracks, each reply replaces the whole partition map, and
    `send()` starts tracking a topic only when it had to wait for it. A topic missing from the
    first reply (created a moment earlier) therefore made the producer forget the leaders of
    every other topic: batches queued for them waited for the request timeout (30 s), and the
    next transaction failed on their spent sequence numbers. Tracking all of them up front
    keeps every refresh complete.

    `create_missing` is called for topics the cluster does not have (deleted while we ran,
    or never created), again every few seconds while they stay missing (a topic being deleted
    still exists for the admin API for a moment, so a first attempt may be a no-op).
    """
    wanted = list(dict.fromkeys(topics))
    producer.client.set_topics(wanted)
    started, warned = time.monotonic(), False
    created_at = -_CREATE_RETRY_S
    while not stop.is_set():
        refreshed = asyncio.ensure_future(producer.client.force_metadata_update())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait([refreshed, stopping], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not refreshed.done():
            refreshed.cancel()
            break
        missing, leaderless = _leaderless(producer, wanted)
        if not missing and not leaderless:
            if warned:
                log.info(
                    "output topics have leaders again after %.0fs",
                    time.monotonic() - started,
                    extra={"service": service, "topics": wanted},
                )
            return True
        now = time.monotonic()
        if missing and create_missing is not None and now - created_at >= _CREATE_RETRY_S:
            log.warning(
                "output topics missing from the cluster; creating them: %s",
                ", ".join(missing),
                extra={"service": service, "topics": missing},
            )
            created_at = now
            try:
                await create_missing(missing)
            except KafkaError as exc:
                log.error(
                    "cannot create the missing topics %s: %s",
                    ", ".join(missing),
                    exc,
                    extra={"service": service},
                )
        if not warned and time.monotonic() - started >= warn_after_s:
            warned = True
            log.warning(
                "waiting for output topics to have a leader: %s%s",
                ", ".join(missing + leaderless),
                ""
                if create_missing is not None or not missing
                else " (missing; this service does not create them: create them or check "
                "NEWSMON_TOPIC_PREFIX)",
                extra={"service": service, "missing": missing, "leaderless": leaderless},
            )
        await sleep_or_stop(stop, 0.2)
    return False


async def max_message_bytes(settings: Settings, topics: Sequence[str]) -> dict[str, int]:
    """Each topic's `max.message.bytes` (its own setting or the broker's default), capped at
    the producer's MAX_REQUEST_BYTES: the largest record batch the broker accepts for it."""
    admin = make_admin(settings)
    await admin.start()
    try:
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic) for topic in topics]
        )
    finally:
        await admin.close()
    limits: dict[str, int] = {}
    for response in described:
        # DescribeConfigs: resources = [(error_code, error_message, type, name, entries)],
        # each entry (name, value, ...).
        for error_code, _, _, topic, entries in response.resources:
            if error_code != 0:
                continue
            for name, value, *_ in entries:
                if name == "max.message.bytes" and value is not None:
                    limits[topic] = min(int(value), MAX_REQUEST_BYTES)
    return limits


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """Stop a group-less consumer safely. aiokafka 0.14's NoGroupCoordinator.close() cancels
    its reset-committed task and awaits it; if that task never got to run (a consumer stopped
    right after start), the await raises CancelledError into our task. One loop turn first
    lets the task start, so its own CancelledError handler runs."""
    await asyncio.sleep(0)
    await consumer.stop()


def header(record: ConsumerRecord[Any, Any], name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode("utf-8", errors="replace")
    return None
