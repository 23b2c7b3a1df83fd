"""SASL and TLS against a real broker: the whole pipeline over SASL_SSL + SCRAM-SHA-512, the
other mechanisms and mutual TLS, and one clear error (no retry loop) for each kind of refusal.

The broker is a second local Kafka of this module, with certificates made in the test: a
SASL_SSL listener (SCRAM-SHA-512 and -256 users created at format time), an SSL listener that
requires a client certificate, and a SASL_PLAINTEXT listener with PLAIN.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from newsmon.runner import serve
from newsmon.shared.broker import Listener, LocalKafka, ScramUser, broker_ready, free_port
from newsmon.shared.errors import KafkaAccessError
from newsmon.shared.kafka import ensure_topics, make_consumer, make_producer, security_kwargs
from newsmon.shared.metrics import Metrics
from newsmon.shared.services import SERVICE_NAMES
from newsmon.shared.settings import Settings
from pydantic import SecretStr

from tests.conftest import KAFKA_HOME, REPO
from tests.support.feed_server import serve_directory
from tests.support.kafka_admin import plain_settings, wait_for_topic
from tests.support.kafka_read import read_topic
from tests.support.pki import KEY_PASSWORD, Pki, make_pki
from tests.support.slack_stub import SlackStub

pytestmark = pytest.mark.kafka

FEEDS = REPO / "tests" / "fixtures" / "feeds"
SCRAM_JAAS = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
PLAIN_JAAS = (
    'org.apache.kafka.common.security.plain.PlainLoginModule required user_carol="carol-secret";'
)


@dataclass
class SecureKafka:
    broker: LocalKafka
    pki: Pki
    sasl_ssl: int
    mtls: int
    sasl_plaintext: int


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    keystore = {"ssl.keystore.type": "PEM", "ssl.keystore.location": str(pki.broker_pem)}
    ports = free_port(), free_port(), free_port()
    port = free_port()
    broker = LocalKafka(
        KAFKA_HOME,
        port=port,
        name=f"test-secure-{port}",
        pom=REPO / "deploy/kafka/pom.xml",
        listeners=[
            Listener(
                "SECURE",
                ports[0],
                "SASL_SSL",
                {
                    "sasl.enabled.mechanisms": "SCRAM-SHA-512,SCRAM-SHA-256",
                    "scram-sha-512.sasl.jaas.config": SCRAM_JAAS,
                    "scram-sha-256.sasl.jaas.config": SCRAM_JAAS,
                    **keystore,
                },
            ),
            Listener(
                "MTLS",
                ports[1],
                "SSL",
                {
                    **keystore,
                    "ssl.client.auth": "required",
                    "ssl.truststore.type": "PEM",
                    "ssl.truststore.location": str(pki.ca),
                },
            ),
            Listener(
                "SASLPLAIN",
                ports[2],
                "SASL_PLAINTEXT",
                {"sasl.enabled.mechanisms": "PLAIN", "plain.sasl.jaas.config": PLAIN_JAAS},
            ),
        ],
        scram_users=[
            ScramUser("alice", "alice-secret", "SCRAM-SHA-512"),
            ScramUser("bob", "bob-secret", "SCRAM-SHA-256"),
        ],
    )
    broker.start()
    try:
        asyncio.run(broker.wait_ready(timeout_s=120))
        yield SecureKafka(broker, pki, *ports)
    finally:
        broker.stop()
        shutil.rmtree(broker.run_dir, ignore_errors=True)


def _settings(tmp_path: Path, **changes: Any) -> Settings:
    base: dict[str, Any] = {
        "topic_prefix": f"t{uuid.uuid4().hex[:10]}",
        "topic_partitions": 2,
        "instance_id": uuid.uuid4().hex[:8],
        "metrics_port": 0,
        "poll_interval_s": 3600,
        "fetch_allow_hosts": "127.0.0.1",
        "shutdown_timeout_s": 10,
    }
    return Settings(**{**base, **changes})


def _alice(kafka: SecureKafka, tmp_path: Path, **changes: Any) -> Settings:
    """alice over SASL_SSL with SCRAM-SHA-512, her password from a file (a mounted Secret)."""
    password = tmp_path / "sasl-password"
    password.write_text("alice-secret\n", encoding="utf-8")
    values: dict[str, Any] = {
        "kafka_bootstrap": f"127.0.0.1:{kafka.sasl_ssl}",
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "alice",
        "kafka_sasl_password_file": password,
        "kafka_ssl_cafile": kafka.pki.ca,
    }
    return _settings(tmp_path, **{**values, **changes})


async def test_whole_pipeline_runs_over_sasl_ssl_scram(
    secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    """fetcher, classifier, alerter and notifier (their producers, consumers, transactions and
    admin clients) all through the SASL_SSL listener: a feed in, one alert and one POST out."""
    stop = asyncio.Event()
    async with SlackStub() as slack:
        with serve_directory(FEEDS) as base_url:
            feeds = tmp_path / "feeds.toml"
            feeds.write_text(f'[[feed]]\nname = "e2e"\nurl = "{base_url}/nk-russia-e2e.xml"\n')
            settings = _alice(
                secure_kafka,
                tmp_path,
                feeds_file=feeds,
                slack_webhook_url=SecretStr(slack.webhook_url()),
            )
            pipeline = asyncio.create_task(
                serve(
                    settings,
                    SERVICE_NAMES,
                    process_name="run",
                    start_broker=False,
                    stop=stop,
                    metrics=Metrics(),
                )
            )
            try:
                # Read back through the broker's PLAINTEXT listener, as an outside reader, once
                # the services created the topic (a reader started before would give up).
                await wait_for_topic(
                    plain_settings(secure_kafka.broker.bootstrap),
                    settings.topics.alerts,
                    timeout_s=120.0,
                )
                alerts = await read_topic(
                    secure_kafka.broker.bootstrap,
                    settings.topics.alerts,
                    until=lambda rs: len(rs) >= 1,
                    timeout_s=120,
                )
                async with asyncio.timeout(30):
                    await slack.wait_for_requests(1)
            finally:
                stop.set()
                exit_code = await asyncio.wait_for(pipeline, timeout=30)
    assert exit_code == 0
    assert len(alerts) == 1
    assert len(slack.requests) == 1


async def _round_trip(settings: Settings) -> None:
    """Admin (create a topic), idempotent producer and group consumer, all with `settings`."""
    topic = f"{settings.topic_prefix}.roundtrip"
    assert await broker_ready(settings.kafka_bootstrap or "", security=security_kwargs(settings))
    assert await ensure_topics(settings, [topic]) == [topic]
    producer = make_producer(settings, client_id="security-test")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello", key=b"k")
    finally:
        await producer.stop()
    consumer = make_consumer(settings, topic, group_id=f"g-{topic}", client_id="security-test")
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            record = await consumer.getone()
    finally:
        await consumer.stop()
    assert record.value == b"hello"


@pytest.mark.parametrize("way", ["scram-sha-256", "plain", "mutual-tls", "no-hostname-check"])
async def test_every_mechanism_connects_with_the_right_credentials(
    secure_kafka: SecureKafka, tmp_path: Path, way: str
) -> None:
    kafka = secure_kafka
    if way == "scram-sha-256":
        settings = _alice(
            kafka,
            tmp_path,
            kafka_sasl_mechanism="SCRAM-SHA-256",
            kafka_sasl_username="bob",
            kafka_sasl_password_file=None,
            kafka_sasl_password=SecretStr("bob-secret"),
        )
    elif way == "plain":
        settings = _settings(
            tmp_path,
            kafka_bootstrap=f"127.0.0.1:{kafka.sasl_plaintext}",
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="PLAIN",
            kafka_sasl_username="carol",
            kafka_sasl_password=SecretStr("carol-secret"),
        )
    elif way == "mutual-tls":
        key_password = tmp_path / "key-password"
        key_password.write_text(KEY_PASSWORD)
        settings = _settings(
            tmp_path,
            kafka_bootstrap=f"127.0.0.1:{kafka.mtls}",
            kafka_security_protocol="SSL",
            kafka_ssl_cafile=kafka.pki.ca,
            kafka_ssl_certfile=kafka.pki.client_cert,
            kafka_ssl_keyfile=kafka.pki.client_key,
            kafka_ssl_key_password_file=key_password,
        )
    else:  # the certificate names 127.0.0.1 only; it is still verified against the CA
        settings = _alice(
            kafka,
            tmp_path,
            kafka_bootstrap=f"localhost:{kafka.sasl_ssl}",
            kafka_ssl_check_hostname=False,
        )
    await _round_trip(settings)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong-password", "invalid credentials"),
        ("wrong-mechanism", "SaslAuthenticationFailed"),
        ("unknown-ca", "certificate verify failed"),
        ("hostname-mismatch", "Hostname mismatch"),
        ("no-client-certificate", "certificate"),
    ],
)
async def test_a_refusal_stops_the_service_with_one_clear_error(
    secure_kafka: SecureKafka,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    case: str,
    expected: str,
) -> None:
    kafka = secure_kafka
    changes: dict[str, Any] = {
        "wrong-password": {"kafka_sasl_password_file": None, "kafka_sasl_password": "nope"},
        "wrong-mechanism": {"kafka_sasl_mechanism": "SCRAM-SHA-256"},  # alice has -512 only
        "unknown-ca": {"kafka_ssl_cafile": kafka.pki.rogue_ca},
        "hostname-mismatch": {"kafka_bootstrap": f"localhost:{kafka.sasl_ssl}"},
    }.get(case, {})
    if case == "no-client-certificate":
        settings = _settings(
            tmp_path,
            kafka_bootstrap=f"127.0.0.1:{kafka.mtls}",
            kafka_security_protocol="SSL",
            kafka_ssl_cafile=kafka.pki.ca,
        )
    else:
        settings = _alice(kafka, tmp_path, **changes)

    caplog.set_level(logging.WARNING)
    stop = asyncio.Event()
    # No stop is ever set: the service must end by itself, at its first refused connection.
    exit_code = await asyncio.wait_for(
        serve(settings, ["classifier"], process_name="classifier", start_broker=False, stop=stop),
        timeout=60,
    )

    assert exit_code == 2
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(problems) == 1, [r.getMessage() for r in problems]
    message = problems[0].getMessage()
    assert problems[0].levelno == logging.ERROR
    assert "refused" in message
    assert expected in message
    assert "alice-secret" not in message  # never the password
    assert "nope" not in message


async def test_tail_says_why_it_cannot_connect(secure_kafka: SecureKafka, tmp_path: Path) -> None:
    """The one-line reason also reaches `newsmon tail` (a CLI, not a service)."""
    from newsmon.cli import _tail

    settings = _alice(
        secure_kafka, tmp_path, kafka_sasl_password_file=None, kafka_sasl_password=SecretStr("nope")
    )
    with pytest.raises(KafkaAccessError, match="alice"):
        await _tail(settings, "any", from_beginning=True, limit=1, idle_timeout_s=1)


@pytest.mark.parametrize("password", ["alice-secret", "nope"])
def test_feeds_commands_on_the_topic_use_the_credentials(
    secure_kafka: SecureKafka, tmp_path: Path, password: str
) -> None:
    """`newsmon feeds list` (the feeds topic) with the right password lists; with a wrong one it
    says in one line that Kafka refused it."""
    import io

    from newsmon.fetcher.commands import topic_feeds_list

    settings = _alice(
        secure_kafka,
        tmp_path,
        kafka_sasl_password_file=None,
        kafka_sasl_password=SecretStr(password),
    )
    out, err = io.StringIO(), io.StringIO()
    code = topic_feeds_list(settings, out, err)
    if password == "nope":
        assert code == 1
        [line] = err.getvalue().splitlines()
        assert "refused" in line
        assert "invalid credentials" in line
    else:
        assert code == 0, err.getvalue()
