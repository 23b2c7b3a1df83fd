"""Shared parts of the Kafka benchmarks: a throw-away broker, newsmon services in child
processes (so their CPU time and peak memory are theirs alone), and machine-load facts.

The broker is the tests' LocalKafka (Kafka 4.1, one node, jars from make kafka-jars); each
benchmark uses its own topic prefix on it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition
from newsmon.shared.broker import LocalKafka, free_port
from newsmon.shared.kafka import make_consumer
from newsmon.shared.services import consumer_group
from newsmon.shared.settings import Settings

from tests.support.kafka_broker import running_broker

REPO = Path(__file__).resolve().parents[1]
NEWSMON = [sys.executable, "-m", "newsmon"]


def loadavg() -> str:
    """The 1-minute load average: other work on the machine takes cores from the benchmark."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except (OSError, IndexError):
        return "unknown"


@contextlib.contextmanager
def broker() -> Iterator[str]:
    """A fresh single-node broker for the benchmark; yields its bootstrap address."""
    with local_broker() as kafka:
        yield kafka.bootstrap


@contextlib.contextmanager
def local_broker() -> Iterator[LocalKafka]:
    """A fresh single-node broker for the benchmark, ready; yields it (to stop or restart it
    mid-run); stopped and its data removed at the end."""
    port = free_port()
    kafka = LocalKafka(
        REPO / ".cache" / "kafka",
        port=port,
        name=f"bench-{port}",
        pom=REPO / "deploy/kafka/pom.xml",
    )
    with running_broker(kafka):
        yield kafka


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for a `newsmon <service>` child with these settings' broker and prefix."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSMON_")}
    env.update(
        NEWSMON_KAFKA_BOOTSTRAP=settings.kafka_bootstrap or "",
        NEWSMON_TOPIC_PREFIX=settings.topic_prefix,
        NEWSMON_METRICS_PORT="0",
        NEWSMON_INSTANCE_ID=settings.instance_id,
        NEWSMON_LOG_FORMAT="json",
    )
    env.update(extra)
    return env


@dataclass
class Child:
    """A newsmon process started by a benchmark, logging to a file."""

    process: subprocess.Popen[bytes]
    log: Path
    profiled: bool = False

    @property
    def ps(self) -> psutil.Process:
        return psutil.Process(self.process.pid)

    def cpu_seconds(self) -> float:
        """User + system CPU of the process and its children (parse workers, if any)."""
        total = 0.0
        for p in (self.ps, *self.ps.children(recursive=True)):
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def run_queue_seconds(self) -> float:
        """Seconds the process's threads (and its children's) spent runnable but waiting for a
        core: the second field of /proc/<pid>/task/<tid>/schedstat, in ns (Linux
        Documentation/scheduler/sched-stats.rst). Beside cpu_seconds it tells a process that
        did not need more CPU from one that wanted it and did not get it (the machine's other
        work holds the cores)."""
        return sum(_run_queue_ns(p.pid) for p in (self.ps, *self.ps.children(recursive=True))) / 1e9

    def peak_rss_mb(self) -> float:
        """VmHWM, the kernel's high-water mark of resident memory, of the newsmon process (the
        largest of the process tree: under py-spy, the profiled child)."""
        peaks = [0.0]
        for p in (self.ps, *self.ps.children(recursive=True)):
            with contextlib.suppress(OSError, ValueError):
                for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peaks.append(int(line.split()[1]) / 1024)
        return max(peaks)

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            # py-spy writes its profile on SIGINT and passes it on to newsmon, which drains as
            # on SIGTERM.
            self.process.send_signal(signal.SIGINT if self.profiled else signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def _run_queue_ns(pid: int) -> int:
    total = 0
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int((task / "schedstat").read_text().split()[1])
    return total


def start_child(args: list[str], env: Mapping[str, str], log: Path) -> Child:
    """`newsmon <args>`; with BENCH_PROFILE=1 under `py-spy record` (a flame graph in
    collapsed-stack format beside the log, BENCH_PROFILE_RATE samples/s; the figures then
    include py-spy's sampling)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    command = command_line = [*NEWSMON, *args]
    if os.environ.get("BENCH_PROFILE"):
        spy = Path(sys.executable).with_name("py-spy")
        out_file = log.with_suffix(".pyspy.txt")
        rate = os.environ.get("BENCH_PROFILE_RATE", "100")  # samples/s (py-spy's default)
        command = [str(spy), "record", "--format", "raw", "--rate", rate, "-o", str(out_file)]
        command += ["--", *command_line]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=dict(env), stdout=out, stderr=subprocess.STDOUT, cwd=REPO
        )
    return Child(process, log, profiled=len(command) > len(NEWSMON) + len(args))


def group_watcher(settings: Settings, service: str) -> AIOKafkaConsumer:
    """A consumer in `service`'s consumer group (shared/services.consumer_group) that never
    subscribes: it only reads the group's committed offsets (`committed_total`)."""
    return make_consumer(
        settings,
        group_id=consumer_group(settings.topic_prefix, service),
        client_id=f"bench-watch-{service}",
    )


async def committed_total(consumer: AIOKafkaConsumer, topic: str, partitions: int) -> int:
    """Sum of the consumer's group's committed offsets on the topic (0 where none is)."""
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    return sum([await consumer.committed(tp) or 0 for tp in tps])


def wait_until(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.05)
    raise TimeoutError("condition not met in time")
