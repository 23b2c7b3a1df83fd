"""Kafka security settings: validation, secrets from files (masked), and the one set of
client arguments every producer, consumer and admin client is built with."""

from __future__ import annotations

import ast
import ssl
from pathlib import Path
from typing import Any

import pytest
from newsmon.shared.kafka import new_topic, security_kwargs
from newsmon.shared.settings import Settings
from pydantic import ValidationError

from tests.support.pki import KEY_PASSWORD, make_pki

REPO = Path(__file__).resolve().parents[2]


def _settings(**values: Any) -> Settings:
    return Settings(kafka_bootstrap="broker:9093", **values)


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    assert security_kwargs(_settings()) == {"security_protocol": "PLAINTEXT"}


def test_sasl_password_comes_from_its_file_and_is_never_shown(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret-value\n", encoding="utf-8")
    settings = _settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="newsmon",
        kafka_sasl_password_file=secret,
    )
    kwargs = security_kwargs(settings)
    assert kwargs["sasl_plain_password"] == "s3cret-value"  # trailing newline dropped
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_username"] == "newsmon"
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in str(settings.describe())
    assert settings.describe()["kafka_sasl_password"] == "***"


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "NEWSMON_KAFKA_SASL_USERNAME"),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "u"},
            "NEWSMON_KAFKA_SASL_PASSWORD",
        ),
        ({"kafka_sasl_username": "u", "kafka_sasl_password": "p"}, "does not use SASL"),
        ({"kafka_ssl_cafile": "/nonexistent/ca.pem"}, "does not use TLS"),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_cafile": "/nonexistent/ca.pem"},
            "no such file",
        ),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_password_file": "/nonexistent"},
            "cannot read /nonexistent",
        ),
        ({"topic_replication": 1, "topic_min_insync_replicas": 2}, "exceeds"),
    ],
)
def test_settings_that_cannot_work_are_refused_naming_the_variable(
    values: dict[str, Any], says: str
) -> None:
    with pytest.raises(ValidationError, match=says):
        _settings(**values)


def test_tls_context_verifies_the_broker_and_carries_the_client_certificate(
    tmp_path: Path,
) -> None:
    pki = make_pki(tmp_path)
    key_password = tmp_path / "key-password"
    key_password.write_text(KEY_PASSWORD)
    settings = _settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="u",
        kafka_sasl_password="p",
        kafka_ssl_cafile=pki.ca,
        kafka_ssl_certfile=pki.client_cert,
        kafka_ssl_keyfile=pki.client_key,
        kafka_ssl_key_password_file=key_password,
    )
    context = security_kwargs(settings)["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert len(context.get_ca_certs()) == 1
    assert "client-key-secret" not in str(settings.describe())

    relaxed = settings.with_overrides(kafka_ssl_check_hostname=False)
    context = security_kwargs(relaxed)["ssl_context"]
    assert context.check_hostname is False
    assert context.verify_mode == ssl.CERT_REQUIRED  # still verified against the CA


def test_created_topics_take_replication_and_min_insync_replicas_from_settings() -> None:
    settings = _settings(topic_replication=3, topic_min_insync_replicas=2)
    topic = new_topic(settings, "t", 12, {"cleanup.policy": "compact"})
    assert (topic.name, topic.num_partitions, topic.replication_factor) == ("t", 12, 3)
    assert topic.topic_configs == {"cleanup.policy": "compact", "min.insync.replicas": "2"}
    assert new_topic(_settings(), "t", 1).topic_configs == {}


KAFKA_CLIENTS = {"AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient"}


def _unsecured_client_constructions(path: Path) -> list[str]:
    """Calls that build an aiokafka client without spreading the shared connection settings
    (`**client_kwargs(settings)`, or a `**security` mapping passed down)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        if name in KAFKA_CLIENTS and not any(k.arg is None for k in node.keywords):
            found.append(f"{path.relative_to(REPO)}:{node.lineno} {name}")
    return found


def test_every_kafka_client_is_built_with_the_security_settings() -> None:
    sources = sorted((REPO / "services").rglob("*.py")) + sorted((REPO / "shared").rglob("*.py"))
    offenders = [hit for path in sources for hit in _unsecured_client_constructions(path)]
    assert offenders == [], "build clients with **client_kwargs(settings) (shared/kafka.py)"
