"""deploy/prometheus is checked by Prometheus' own tool: config, rules, and rule unit tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not found: install it with `make system-deps` (Debian package prometheus)",
)


def _promtool(*args: str) -> str:
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def test_config_is_valid() -> None:
    assert "SUCCESS" in _promtool("check", "config", "prometheus.yml")


def test_rules_are_valid() -> None:
    rule_files = sorted(
        str(p.relative_to(PROMETHEUS_DIR)) for p in PROMETHEUS_DIR.glob("rules/*.yml")
    )
    assert rule_files == ["rules/alerts.yml", "rules/recording.yml"]
    _promtool("check", "rules", *rule_files)


def test_rule_unit_tests_pass() -> None:
    assert "SUCCESS" in _promtool("test", "rules", "tests/rules_test.yml")


def test_every_alert_rule_has_a_unit_test() -> None:
    alerts = (PROMETHEUS_DIR / "rules" / "alerts.yml").read_text(encoding="utf-8")
    tests = (PROMETHEUS_DIR / "tests" / "rules_test.yml").read_text(encoding="utf-8")
    names = [line.split(":", 1)[1].strip() for line in alerts.splitlines() if "- alert:" in line]
    assert len(names) >= 9
    untested = [n for n in names if f"alertname: {n}\n" not in tests]
    assert not untested, f"alert rules without a promtool unit test: {untested}"
