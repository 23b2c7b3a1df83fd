"""Log volume through a broker outage: lines each service writes while Kafka is gone.

The four services run as separate processes (`newsmon fetcher|classifier|alerter|notifier`,
JSON logs) against a throw-away local Kafka 4.1, a local feed and the Slack stand-in
(tests/support/slack_stub.py). Once the first alert is on the alerts topic the broker is
stopped for OUTAGE_S seconds, started again on the same data, and given RECOVERY_S seconds;
the table counts the lines each service wrote from the stop to the end of the recovery, and
the most repeated message. The baseline in the same run is the same window with the broker up.

`python -m bench.bench_outage_logs [OUTAGE_S]` prints the Markdown section (default 60 s).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from newsmon.shared.broker import LocalKafka

from bench.bench_first_alert import FEEDS, _feed_server, _first_record_seen
from bench.support_kafka import local_broker

REPO = Path(__file__).resolve().parents[1]
SERVICES = ("fetcher", "classifier", "alerter", "notifier")
OUTAGE_S = 60.0
RECOVERY_S = 30.0


def _lines(path: Path, skip: int) -> list[str]:
    return path.read_text(encoding="utf-8", errors="replace").splitlines()[skip:]


def _message(line: str) -> str:
    try:
        event = json.loads(line)
    except ValueError:
        return line[:80]
    return f"{event.get('level', '?').upper()} {event.get('logger', '')}: {event.get('msg', '')}"[
        :110
    ]


def _window(logs: dict[str, Path], marks: dict[str, int]) -> dict[str, list[str]]:
    return {name: _lines(path, marks[name]) for name, path in logs.items()}


def _marks(logs: dict[str, Path]) -> dict[str, int]:
    return {name: len(_lines(path, 0)) for name, path in logs.items()}


async def _start_slack_stub(workdir: Path) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.slack_stub",
        cwd=str(REPO),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    base = (await proc.stdout.readline()).decode().strip()
    return proc, f"{base}/services/T0/B0/bench"


async def _measure(broker: LocalKafka, feed_url: str, workdir: Path, outage_s: float) -> str:
    prefix = f"ol{uuid.uuid4().hex[:8]}"
    feeds = workdir / "feeds.toml"
    feeds.write_text(f'[[feed]]\nname = "bench"\nurl = "{feed_url}"\n', encoding="utf-8")
    slack, webhook = await _start_slack_stub(workdir)
    env = {
        **os.environ,
        "NEWSMON_KAFKA_BOOTSTRAP": broker.bootstrap,
        "NEWSMON_TOPIC_PREFIX": prefix,
        "NEWSMON_FEEDS_FILE": str(feeds),
        "NEWSMON_METRICS_PORT": "0",
        "NEWSMON_FETCH_ALLOW_HOSTS": "127.0.0.1",
        "NEWSMON_LOG_FORMAT": "json",
        "NEWSMON_SLACK_WEBHOOK_URL": webhook,
        "NEWSMON_POLL_INTERVAL_S": "30",
    }
    newsmon = str(Path(sys.executable).with_name("newsmon"))
    logs = {name: workdir / f"{name}.log" for name in SERVICES}
    procs = []
    for name in SERVICES:
        with logs[name].open("wb") as out:
            procs.append(
                await asyncio.create_subprocess_exec(
                    newsmon, name, env={**env, "NEWSMON_INSTANCE_ID": name}, stdout=out, stderr=out
                )
            )
    try:
        await _first_record_seen(broker.bootstrap, f"{prefix}.alerts.v1", time.monotonic() + 120)
        await asyncio.sleep(5)
        marks = _marks(logs)
        await asyncio.sleep(outage_s + RECOVERY_S)  # the baseline: same window, broker up
        baseline = _window(logs, marks)
        marks = _marks(logs)
        await asyncio.to_thread(broker.stop)
        await asyncio.sleep(outage_s)
        await asyncio.to_thread(broker.start)
        await broker.wait_ready(timeout_s=120)
        await asyncio.sleep(RECOVERY_S)
        outage = _window(logs, marks)
    finally:
        for proc in (*procs, slack):
            proc.send_signal(signal.SIGTERM)
        for proc in (*procs, slack):
            try:
                await asyncio.wait_for(proc.wait(), timeout=30)
            except TimeoutError:
                proc.kill()
    rows = [
        "| service | lines, broker up (baseline) | lines, outage + recovery | ERROR lines | "
        "most repeated line (count) |",
        "|---|---|---|---|---|",
    ]
    for name in SERVICES:
        lines = outage[name]
        errors = sum(1 for line in lines if '"level": "error"' in line)
        common = Counter(_message(line) for line in lines).most_common(1)
        top = f"`{common[0][0]}` ({common[0][1]})" if common else "-"
        rows.append(f"| {name} | {len(baseline[name])} | {len(lines)} | {errors} | {top} |")
    return "\n".join(rows)


def run(outage_s: float = OUTAGE_S) -> str:
    workdir = Path(tempfile.mkdtemp(prefix="newsmon-outage-logs-"))
    try:
        with local_broker() as broker, _feed_server() as feed_url:
            table = asyncio.run(_measure(broker, feed_url, workdir, outage_s))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return "\n".join(
        [
            "## Log lines through a broker outage",
            "",
            f"The four services as separate processes on a local single-node Kafka 4.1 (feed: "
            f"{FEEDS.name}/, Slack stand-in). The broker is stopped for {outage_s:.0f} s, started "
            f"again on its data, then {RECOVERY_S:.0f} s of recovery; lines counted from the "
            "stop to the end of the recovery, next to the same window with the broker up.",
            "",
            table,
        ]
    )


if __name__ == "__main__":
    print(run(float(sys.argv[1]) if len(sys.argv) > 1 else OUTAGE_S))
