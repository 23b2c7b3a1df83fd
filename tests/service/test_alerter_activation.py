"""SIGTERM while the alerter activates (producer start, state restore, seek) on a frozen
broker: `newsmon alerter` abandons the activation and exits 0 within its shutdown budget.

The alerter runs as a process of its own (run as `python -m tests.service.test_alerter_activation
ALERTER-ARGS`): the real CLI, signal handling and exit, with one hook, a story book whose
restore first freezes the broker (SIGSTOP: connections hang, the worst case for a client). The
freeze so lands inside the activation by construction instead of racing it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from newsmon.shared.broker import LocalKafka
from newsmon.shared.settings import Settings

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
BUDGET_S = 4.0
# Generous, not a speed check: an activation that ignores SIGTERM never ends at all.
NEVER_S = BUDGET_S + 30
FROZEN = "test hook: broker frozen during the state restore"


def _alerter_freezing_the_broker_on_restore(broker_pid: int) -> int:
    import logging

    from newsmon.alerter import app
    from newsmon.cli import main

    class FreezingRestore(app.StoryGroups):
        async def load(self) -> None:
            os.kill(broker_pid, signal.SIGSTOP)
            logging.getLogger("newsmon").warning(FROZEN)
            await super().load()

    app.StoryGroups = FreezingRestore  # type: ignore[misc]
    return main(["alerter"])


def test_sigterm_during_activation_on_a_frozen_broker_exits_within_the_budget(
    own_kafka_broker: LocalKafka, kafka_settings: Settings
) -> None:
    pid = own_kafka_broker.running_pid()
    assert pid is not None
    env = {
        **os.environ,
        "NEWSMON_KAFKA_BOOTSTRAP": own_kafka_broker.bootstrap,
        "NEWSMON_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "NEWSMON_SHUTDOWN_TIMEOUT_S": str(BUDGET_S),
        "NEWSMON_METRICS_PORT": "0",
        "NEWSMON_LOG_FORMAT": "json",
    }
    env.pop("NEWSMON_CONFIG_FILE", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.service.test_alerter_activation", str(pid)],
        env=env,
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # joins the group, is given the partitions, activates
            lines.append(line)
            if FROZEN in line:
                break
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=NEVER_S)
    finally:
        os.kill(pid, signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None
    with proc.stderr:
        logs = "".join(lines) + proc.stderr.read()
    assert code == 0, logs[-3000:]
    messages = [json.loads(x)["msg"] for x in logs.splitlines() if x.startswith("{")]
    assert FROZEN in messages, messages[-10:]
    assert any("gave up the step in progress" in m for m in messages), messages[-10:]
    assert not any("active: took over" in m for m in messages), messages[-10:]


if __name__ == "__main__":
    sys.exit(_alerter_freezing_the_broker_on_restore(int(sys.argv[1])))
