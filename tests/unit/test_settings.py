from __future__ import annotations

from pathlib import Path

import pytest
from newsmon.shared.settings import Settings
from pydantic import ValidationError


def test_defaults_need_no_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEWSMON_KAFKA_BOOTSTRAP", raising=False)
    settings = Settings()
    assert settings.kafka_bootstrap is None
    assert settings.topics.all() == (
        "newsmon.articles.v1",
        "newsmon.classified.v1",
        "newsmon.alerts.v1",
        "newsmon.dlq.v1",
    )
    assert settings.metrics_port_for("run") == 9400
    assert settings.metrics_port_for("fetcher") == 9401


def test_environment_overrides_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "newsmon.toml"
    config.write_text('kafka_bootstrap = "file:9092"\ntopic_partitions = 6\n')
    monkeypatch.setenv("NEWSMON_CONFIG_FILE", str(config))
    monkeypatch.setenv("NEWSMON_KAFKA_BOOTSTRAP", "env:9092")
    settings = Settings()
    assert settings.kafka_bootstrap == "env:9092"
    assert settings.topic_partitions == 6


def test_secret_comes_from_a_file_and_is_masked(tmp_path: Path) -> None:
    secret = tmp_path / "webhook"
    secret.write_text("https://hooks.slack.com/services/T1/B2/XYZ\n")
    settings = Settings(slack_webhook_url_file=secret)
    assert settings.slack_webhook_url is not None
    assert (
        settings.slack_webhook_url.get_secret_value()
        == "https://hooks.slack.com/services/T1/B2/XYZ"
    )
    assert "XYZ" not in repr(settings)
    assert settings.describe()["slack_webhook_url"] == "***"


def test_invalid_values_are_refused_with_the_setting_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSMON_TOPIC_PARTITIONS", "zero")
    with pytest.raises(ValidationError, match="topic_partitions"):
        Settings()


def test_unknown_keys_in_the_config_file_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "newsmon.toml"
    config.write_text('kafka_bootstrp = "typo:9092"\n')
    monkeypatch.setenv("NEWSMON_CONFIG_FILE", str(config))
    with pytest.raises(ValidationError, match="kafka_bootstrp"):
        Settings()


def test_overrides_are_validated() -> None:
    with pytest.raises(ValidationError):
        Settings().with_overrides(topic_partitions=0)
