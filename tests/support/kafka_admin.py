"""The tests' admin work on a broker (create, delete, wait for, describe topics), through the
product's one admin-client factory, shared/kafka.make_admin."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from newsmon.shared.kafka import make_admin, new_topic
from newsmon.shared.settings import Settings


def plain_settings(bootstrap: str) -> Settings:
    """Settings that reach `bootstrap` over PLAINTEXT (a broker's plain listener)."""
    return Settings(kafka_bootstrap=bootstrap)


@contextlib.asynccontextmanager
async def admin_client(
    settings: Settings, *, request_timeout_ms: int = 40_000
) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed at the end (40 s: aiokafka's default request timeout)."""
    admin = make_admin(
        settings, client_id="newsmon-test-admin", request_timeout_ms=request_timeout_ms
    )
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def topic_exists(settings: Settings, topic: str, *, request_timeout_ms: int = 5000) -> bool:
    """Whether the broker lists `topic`; False when it cannot be asked (down, starting)."""
    try:
        async with admin_client(settings, request_timeout_ms=request_timeout_ms) as admin:
            return topic in set(await admin.list_topics())
    except Exception:
        return False


async def wait_for_topic(settings: Settings, topic: str, *, timeout_s: float = 60.0) -> None:
    """Until the broker lists `topic` (TimeoutError after `timeout_s`)."""
    async with admin_client(settings) as admin, asyncio.timeout(timeout_s):
        while topic not in set(await admin.list_topics()):  # noqa: ASYNC110 - polls a broker
            await asyncio.sleep(0.2)


async def create_topic(
    settings: Settings, name: str, partitions: int, configs: dict[str, str] | None = None
) -> None:
    """Create `name` as newsmon would (shared/kafka.new_topic), with these topic configs."""
    async with admin_client(settings) as admin:
        await admin.create_topics([new_topic(settings, name, partitions, configs)])


async def delete_topic(settings: Settings, topic: str) -> None:
    """Delete `topic` and wait until the metadata no longer lists it."""
    async with admin_client(settings) as admin:
        await admin.delete_topics([topic])
        for _ in range(150):  # deletion reaches the metadata a moment later
            if topic not in set(await admin.list_topics()):
                break
            await asyncio.sleep(0.2)


async def topic_configs(settings: Settings, topic: str) -> dict[str, str]:
    """The configs of `topic` (name -> value), waiting for a topic created moments ago to
    reach every broker component."""
    resource = ConfigResource(ConfigResourceType.TOPIC, topic)
    async with admin_client(settings) as admin:
        for _ in range(100):
            [described] = await admin.describe_configs([resource])
            if described.resources[0][0] == 0:
                break
            await asyncio.sleep(0.1)
    # DescribeConfigs response: resources = [(error_code, error_message, type, name, entries)]
    return {entry[0]: entry[1] for entry in described.resources[0][4]}
