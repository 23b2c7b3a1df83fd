"""The `newsmon` command as people use it: help, `run` with its own broker, `tail`, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from newsmon.shared.broker import _alive, free_port

REPO = Path(__file__).resolve().parents[2]
NEWSMON = [sys.executable, "-m", "newsmon"]
FEED = REPO / "tests" / "fixtures" / "feeds" / "nk-russia-e2e.xml"


def test_help_explains_the_commands() -> None:
    result = subprocess.run([*NEWSMON, "--help"], capture_output=True, text=True, check=True)
    for word in ("run", "tail", "fetcher", "classifier", "alerter", "NEWSMON_KAFKA_BOOTSTRAP"):
        assert word in result.stdout


def test_config_lists_every_setting_with_secrets_masked() -> None:
    env = {**os.environ, "NEWSMON_SLACK_WEBHOOK_URL": "https://hooks.example/T/B/zz9-hidden-token"}
    result = subprocess.run(
        [*NEWSMON, "config"], capture_output=True, text=True, check=True, env=env
    )
    assert "NEWSMON_KAFKA_BOOTSTRAP" in result.stdout
    assert "zz9-hidden-token" not in result.stdout


def test_invalid_configuration_is_one_clear_message() -> None:
    env = {**os.environ, "NEWSMON_TOPIC_PARTITIONS": "many"}
    result = subprocess.run(
        [*NEWSMON, "config"], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode != 0
    assert "topic_partitions" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def run_env(tmp_path: Path) -> dict[str, str]:
    """`newsmon run` configured as a newcomer would, but on free ports and a private broker."""
    home = tmp_path / "kafka"
    home.mkdir()
    (home / "lib").symlink_to(REPO / ".cache" / "kafka" / "lib")
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(f'[[feed]]\nname = "local"\nurl = "file://{FEED}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSMON_")}
    env.update(
        {
            "NEWSMON_KAFKA_LOCAL_DIR": str(home),
            "NEWSMON_KAFKA_LOCAL_PORT": str(free_port()),
            "NEWSMON_METRICS_PORT": str(free_port()),
            "NEWSMON_WEB_PORT": str(free_port()),
            "NEWSMON_FEEDS_FILE": str(feeds),
            "NEWSMON_LOG_FORMAT": "json",
        }
    )
    return env


@pytest.mark.kafka
def test_run_alerts_then_sigterm_exits_cleanly(run_env: dict[str, str], tmp_path: Path) -> None:
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log_file:
        run = subprocess.Popen([*NEWSMON, "run"], env=run_env, stdout=log_file, stderr=log_file)
    try:
        tail = subprocess.run(
            [*NEWSMON, "tail", "newsmon.alerts.v1", "--max", "1"],
            env=run_env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert tail.returncode == 0, tail.stderr + log_path.read_text()
        message = json.loads(tail.stdout.splitlines()[0])
        assert "Kursk" in message["value"]["title"]
        assert message["headers"]["ce_type"] == "io.newsmon.alert.v1"

        port = run_env["NEWSMON_METRICS_PORT"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert b"newsmon_items_out_total" in response.read()

        broker_dir = Path(run_env["NEWSMON_KAFKA_LOCAL_DIR"])
        broker_pid = int(next(broker_dir.glob("broker-*/broker.pid")).read_text())
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=10) == 0, log_path.read_text()
        deadline = time.monotonic() + 10
        while _alive(broker_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(broker_pid), "the broker newsmon started is stopped with it"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()


def test_a_busy_metrics_port_is_one_clear_line(run_env: dict[str, str]) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env = {
            **run_env,
            "NEWSMON_METRICS_PORT": str(busy.getsockname()[1]),
            "NEWSMON_KAFKA_BOOTSTRAP": "127.0.0.1:1",
        }
        result = subprocess.run(
            [*NEWSMON, "classifier"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert "cannot serve /metrics" in result.stderr
    assert "Traceback" not in result.stderr
