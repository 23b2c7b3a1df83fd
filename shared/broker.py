"""A real single-node Apache Kafka 4.x broker (KRaft, broker+controller) on 127.0.0.1.

The one place that knows how to fetch, format, start, probe and stop the local broker; both
`newsmon run` and the test suite use it. Jars come from Maven Central through
deploy/kafka/pom.xml (`make kafka-jars`); Java 17 runs them.

Facts this relies on (checked here with Kafka 4.1.1):
- `kafka.tools.StorageTool format --standalone` formats a single-node KRaft quorum that uses
  `controller.quorum.bootstrap.servers` (apache/kafka core/.../kafka/tools/StorageTool.scala).
- `kafka.Kafka server.properties` is the main class `kafka-server-start.sh` runs.
- An open port is not readiness: the broker may accept connections before it has registered,
  so readiness is a real metadata request (describe_cluster) that names this broker.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from aiokafka.conn import AIOKafkaConnection
from aiokafka.errors import (
    AuthenticationFailedError,
    IllegalSaslStateError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.protocol.metadata import MetadataRequest

from .errors import BrokerError, KafkaAccessError

__all__ = ["Listener", "LocalKafka", "ScramUser", "broker_ready", "check_access", "free_port"]

log = logging.getLogger("newsmon.broker")

_PR_SET_PDEATHSIG = 1  # prctl option: signal the child when its parent dies (linux/prctl.h)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Listener:
    """An extra client listener on 127.0.0.1, e.g. SASL_SSL for the security tests. The
    PLAINTEXT listener stays: inter-broker traffic and readiness probes use it.

    `config` holds the listener's own settings without Kafka's `listener.name.<name>.` prefix
    (e.g. `sasl.enabled.mechanisms`, `ssl.keystore.location`; Kafka docs, "Listener
    configuration": per-listener settings take that prefix, the name in lower case)."""

    name: str
    port: int
    protocol: str  # SSL, SASL_PLAINTEXT or SASL_SSL
    config: Mapping[str, str] = field(default_factory=dict)

    def properties(self) -> list[str]:
        prefix = f"listener.name.{self.name.lower()}."
        return [f"{prefix}{key}={value}" for key, value in self.config.items()]


@dataclass(frozen=True)
class ScramUser:
    """A SCRAM credential written into the cluster metadata when the storage is formatted
    (`kafka-storage format --add-scram`, KIP-900): KRaft has no other way before start-up."""

    name: str
    password: str
    mechanism: str = "SCRAM-SHA-512"

    def format_argument(self) -> str:
        # StorageTool's syntax: 'SCRAM-SHA-256=[name=alice,password=alice-secret]'.
        return f"{self.mechanism}=[name={self.name},password={self.password}]"


def server_properties(
    data_dir: Path, port: int, controller_port: int, listeners: Sequence[Listener] = ()
) -> str:
    """A single-node combined-mode config; internal topics sized for one broker so the first
    consumer group and the first transaction do not wait for 50 partitions each."""
    extra = "".join(f",{x.name}://127.0.0.1:{x.port}" for x in listeners)
    protocols = "".join(f",{x.name}:{x.protocol}" for x in listeners)
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}"
            + extra,
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}{extra}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            f"listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT{protocols}",
            *[line for x in listeners for line in x.properties()],
            f"log.dirs={data_dir}",
            "num.partitions=1",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "",
        ]
    )


def cluster_id(random_bytes: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A Kafka cluster id: 16 random bytes in URL-safe base64 without padding (Uuid.toString).
    One starting with '-' is drawn again, as Kafka's Uuid.randomUuid does, because command
    lines (StorageTool's `-t ID`) would read it as an option."""
    while True:
        value = base64.urlsafe_b64encode(random_bytes()).rstrip(b"=").decode("ascii")
        if not value.startswith("-"):
            return value


def _die_with_parent() -> None:
    """Run in the child before exec: the broker gets SIGTERM if newsmon dies, even by kill -9."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def first_server(bootstrap: str, default_port: int = 9092) -> tuple[str, int]:
    """Host and port of the first `host:port` in a bootstrap list (`[v6]:port` and a bare host,
    which takes Kafka's default port, included)."""
    server = bootstrap.split(",")[0].strip()
    if server.startswith("["):
        host, _, rest = server[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, sep, port = server.rpartition(":")
        if not sep:
            host, port = server, ""
    return host, int(port) if port.isascii() and port.isdigit() else default_port


def _port_open(bootstrap: str) -> bool:
    host, port = first_server(bootstrap)
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


# Answers that no retry changes: the broker refused who we are or how we connect.
_SASL_REFUSALS = (
    SaslAuthenticationFailed,
    AuthenticationFailedError,
    UnsupportedSaslMechanismError,
    IllegalSaslStateError,
)


def _refusal(exc: BaseException | None) -> BaseException | None:
    """The refusal in an error's chain, if any: a SASL refusal, or a TLS error other than a
    connection cut mid-handshake (a broker going down): unknown CA, host name not in the
    certificate, client certificate refused. (With TLS 1.3 the broker refuses a missing
    client certificate after the handshake; aiokafka then reports the closed connection
    with the TLS alert as its cause.)"""
    for _ in range(10):  # a chain is short; the bound guards against a cycle
        if exc is None:
            return None
        refused_tls = isinstance(exc, ssl.SSLError) and not isinstance(
            exc, ssl.SSLEOFError | ssl.SSLZeroReturnError
        )
        if refused_tls or isinstance(exc, _SASL_REFUSALS):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


async def check_access(
    bootstrap: str, timeout_s: float = 5.0, security: Mapping[str, Any] | None = None
) -> bool:
    """Open one connection to the first bootstrap server with these security settings (TLS
    handshake, SASL authentication) and ask it for the cluster's brokers. True when at least
    one is registered; False when it cannot be reached (yet); raises KafkaAccessError when
    it answers but refuses us.

    A bare connection rather than a client: a refusal is then this one error instead of the
    client's log line per bootstrap server followed by a generic "Unable to bootstrap"."""
    host, port = first_server(bootstrap)
    # aiokafka's create_conn, unrolled so that a failed connection can be waited for until its
    # socket is closed (a TLS transport closes over a few loop turns; a command that ends its
    # event loop right after would leak the socket).
    conn = AIOKafkaConnection(
        host, port, request_timeout_ms=int(timeout_s * 1000), **dict(security or {})
    )
    try:
        await conn.connect()
        metadata = await conn.send(MetadataRequest([]))
    except Exception as exc:
        refusal = _refusal(exc)
        if refusal is not None:
            raise KafkaAccessError(_refusal_message(host, port, security or {}, refusal)) from exc
        return False
    finally:
        opened = conn._protocol is not None  # a transport exists: its closing can be awaited
        closed = conn.close()
        if opened and closed is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await asyncio.shield(closed)
    return bool(metadata.brokers)


def _refusal_message(host: str, port: int, security: Mapping[str, Any], exc: BaseException) -> str:
    protocol = security.get("security_protocol", "PLAINTEXT")
    who = (
        f" as {security.get('sasl_plain_username')!r} with {security.get('sasl_mechanism')}"
        if str(protocol).startswith("SASL_")
        else ""
    )
    hint = (
        "check NEWSMON_KAFKA_SSL_CAFILE / NEWSMON_KAFKA_SSL_CERTFILE / "
        "NEWSMON_KAFKA_SSL_CHECK_HOSTNAME"
        if isinstance(exc, ssl.SSLError)
        else "check NEWSMON_KAFKA_SASL_USERNAME / NEWSMON_KAFKA_SASL_PASSWORD / "
        "NEWSMON_KAFKA_SASL_MECHANISM"
    )
    reason = str(exc).strip() or type(exc).__name__
    return f"Kafka at {host}:{port} refused the {protocol} connection{who}: {reason} ({hint})"


async def broker_ready(
    bootstrap: str, timeout_s: float = 5.0, security: Mapping[str, Any] | None = None
) -> bool:
    """True when a metadata request to `bootstrap` answers with at least one broker (an open
    port is not enough: the listener accepts before the broker has registered). Raises
    KafkaAccessError when the broker refuses the credentials or the TLS settings."""
    # A closed port is the common case while the JVM boots: checked first, cheaply.
    if not await asyncio.to_thread(_port_open, bootstrap):
        return False
    # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancellation that arrives
    # as the probe completes, and the cancelled caller then never ends.
    try:
        async with asyncio.timeout(timeout_s * 2):
            return await check_access(bootstrap, timeout_s, security)
    except TimeoutError:
        return False


@dataclass
class LocalKafka:
    """A local broker whose files live under `home` (lib/ = jars, <name>/ = data + logs)."""

    home: Path
    port: int = 9092
    controller_port: int | None = None
    heap: str = "512m"
    name: str | None = None
    pom: Path | None = None
    listeners: Sequence[Listener] = ()
    scram_users: Sequence[ScramUser] = ()

    def __post_init__(self) -> None:
        self.home = self.home.resolve()
        if self.controller_port is None:
            self.controller_port = free_port()
        self.name = self.name or f"broker-{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    # --- files -------------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def lib_dir(self) -> Path:
        return self.home / "lib"

    @property
    def run_dir(self) -> Path:
        return self.home / str(self.name)

    @property
    def log_file(self) -> Path:
        return self.run_dir / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "broker.pid"

    def _classpath(self) -> str:
        return str(self.lib_dir / "*")

    def _java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise BrokerError(
                "java not found: install a Java 17 runtime "
                "(apt-get install openjdk-17-jre-headless)"
            )
        return java

    def ensure_jars(self) -> None:
        """Fetch the broker jars with Maven when they are not cached yet."""
        if any(self.lib_dir.glob("kafka_2.13-*.jar")):
            return
        pom = self.pom or Path("deploy/kafka/pom.xml")
        if not pom.is_file() or shutil.which("mvn") is None:
            raise BrokerError(
                f"Kafka jars missing in {self.lib_dir}: run `make kafka-jars` "
                "(needs Maven and deploy/kafka/pom.xml)"
            )
        log.info("fetching Kafka jars with Maven", extra={"pom": str(pom)})
        mvn = shutil.which("mvn") or "mvn"
        subprocess.run(  # noqa: S603 - fixed argv, no shell
            [
                mvn,
                "-B",
                "-q",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={self.lib_dir}",
                "-DincludeScope=runtime",
            ],
            check=True,
        )

    def _write_config(self) -> Path:
        assert self.controller_port is not None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config = self.run_dir / "server.properties"
        config.write_text(
            server_properties(
                self.run_dir / "data", self.port, self.controller_port, self.listeners
            )
        )
        log4j = self.run_dir / "log4j2.properties"
        log4j.write_bytes(
            resources.files("newsmon.shared").joinpath("kafka-log4j2.properties").read_bytes()
        )
        return config

    def format_storage(self, config: Path) -> None:
        """Format the data directory once; later starts keep the data and its cluster id."""
        if (self.run_dir / "data" / "meta.properties").exists():
            return
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [
                self._java(),
                "-cp",
                self._classpath(),
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                cluster_id(),
                "-c",
                str(config),
                "--ignore-formatted",
                *[
                    arg
                    for user in self.scram_users
                    for arg in ("--add-scram", user.format_argument())
                ],
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BrokerError(
                f"formatting Kafka storage failed: {result.stderr.strip() or result.stdout.strip()}"
            )

    # --- lifecycle ---------------------------------------------------------------------
    def start(self, *, detach: bool = False) -> None:
        """Start the JVM. With detach, the broker outlives this process (pid file kept)."""
        self.ensure_jars()
        config = self._write_config()
        self.format_storage(config)
        log_handle = self.log_file.open("ab")
        argv = [
            self._java(),
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            # kafka-run-class.sh's defaults (apache/kafka bin/kafka-run-class.sh).
            "-server",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.run_dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.run_dir}",
            "-cp",
            self._classpath(),
            "kafka.Kafka",
            str(config),
        ]
        self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            argv,
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=None if detach else _die_with_parent,
            # Its own process group: Ctrl-C in a terminal (or `timeout`) signals newsmon's
            # group, and the broker must outlive newsmon's drain, not stop in the middle of it.
            start_new_session=True,
        )
        log_handle.close()
        self.pid_file.write_text(str(self._process.pid))
        log.info(
            "started local Kafka broker",
            extra={
                "bootstrap": self.bootstrap,
                "pid": self._process.pid,
                "log": str(self.log_file),
            },
        )

    async def wait_ready(self, timeout_s: float = 60.0) -> float:
        """Wait until a metadata request succeeds; returns the seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self._process is not None and self._process.poll() is not None:
                raise BrokerError(
                    f"Kafka broker exited with {self._process.returncode}: {self.log_tail()}"
                )
            if await broker_ready(self.bootstrap, timeout_s=2.0):
                return time.monotonic() - started
            await asyncio.sleep(0.25)
        raise BrokerError(f"Kafka broker not ready after {timeout_s:.0f}s: {self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return " | ".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no broker log)"

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM (controlled shutdown), then SIGKILL after the timeout."""
        pid = self._process.pid if self._process is not None else self._pid_from_file()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not self._wait_gone(pid, timeout_s):
            log.warning("Kafka broker ignored SIGTERM; killing it", extra={"pid": pid})
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._wait_gone(pid, 5.0)
        self.pid_file.unlink(missing_ok=True)
        self._process = None

    def _pid_from_file(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def _wait_gone(self, pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.pid == pid:
                if self._process.poll() is not None:
                    return True
            elif not _alive(pid):
                return True
            time.sleep(0.1)
        return False

    def running_pid(self) -> int | None:
        if self._process is not None and self._process.poll() is None:
            return self._process.pid
        return self._pid_from_file()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); /proc tells whether it has exited.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return True
    return state != "Z"


if __name__ == "__main__":  # pragma: no cover - manual check: python -m newsmon.shared.broker
    logging.basicConfig(level="INFO")
    broker = LocalKafka(Path(".cache/kafka"), port=free_port())
    broker.start()
    print(
        f"ready in {asyncio.run(broker.wait_ready()):.1f}s on {broker.bootstrap}", file=sys.stderr
    )
    broker.stop()
