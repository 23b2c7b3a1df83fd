"""newsmon services as real, separate processes (`python -m newsmon <command>`), for tests that
kill, stop and restart them. Each process has a name (the command, or e.g. `alerter-b` for a
second replica) and writes its JSON log lines to `<log_dir>/<name>.log` (appended across
restarts, so a failure shows the whole story)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

__all__ = ["NewsmonProcesses"]

REPO = Path(__file__).resolve().parents[2]


class NewsmonProcesses:
    """Start, signal and stop `newsmon` commands with one environment."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("NEWSMON_")}
        self.env = {**base, **env}
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def log_path(self, command: str) -> Path:
        return self.log_dir / f"{command}.log"

    def start(self, command: str, *, name: str | None = None, **extra_env: str) -> None:
        """Start `newsmon <command>` under `name` (default: the command itself)."""
        name = name or command
        if self.running(name):
            raise RuntimeError(f"newsmon {name} is already running")
        with self.log_path(name).open("ab") as out:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "newsmon", command],
                env={**self.env, **extra_env},
                cwd=REPO,
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
            )

    def running(self, command: str) -> bool:
        proc = self.procs.get(command)
        return proc is not None and proc.poll() is None

    def signal(self, command: str, sig: signal.Signals) -> None:
        self.procs[command].send_signal(sig)

    def kill(self, command: str) -> int:
        """kill -9, and wait for it: returns the exit status."""
        proc = self.procs[command]
        proc.send_signal(signal.SIGKILL)
        return proc.wait(timeout=30)

    def stop(self, command: str, timeout_s: float = 60.0) -> tuple[int, float]:
        """SIGTERM; returns (exit status, seconds it took). kill -9 after `timeout_s`."""
        proc = self.procs[command]
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait(timeout=30)
        return code, time.monotonic() - started

    def stop_all(self, timeout_s: float = 60.0) -> dict[str, int]:
        for command in self.procs:
            if self.running(command):
                self.procs[command].send_signal(signal.SIGTERM)
        codes = {}
        for command, proc in self.procs.items():
            try:
                codes[command] = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[command] = proc.wait(timeout=30)
        return codes

    def log_tail(self, command: str, chars: int = 3000) -> str:
        try:
            return self.log_path(command).read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def log_lines(self, command: str) -> int:
        try:
            with self.log_path(command).open("rb") as f:
                return sum(1 for _ in f)
        except OSError:
            return 0
