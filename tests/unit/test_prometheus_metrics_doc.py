"""Every metric is in the README's metrics table, with its type and labels."""

from __future__ import annotations

from pathlib import Path

import pytest
from newsmon.shared.metrics import Metrics

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
TABLE = README.split("### Metrics", 1)[-1]


def _families() -> list[tuple[str, str, list[str]]]:
    found = []
    for family in Metrics().registry.collect():
        name = family.name
        if family.type == "counter":
            name += "_total"
        elif family.type == "info":
            name += "_info"
        labels = sorted({k for s in family.samples for k in s.labels} - {"le"})
        found.append((name, family.type, labels))
    return found


@pytest.mark.parametrize(("name", "kind", "labels"), _families())
def test_metric_is_documented(name: str, kind: str, labels: list[str]) -> None:
    rows = [line for line in TABLE.splitlines() if line.startswith(f"| `{name}` |")]
    assert rows, f"{name} is missing from the README metrics table"
    assert kind in rows[0], f"{name}: type {kind} not stated"
    for label in labels:
        assert f"`{label}`" in rows[0], f"{name}: label {label} not documented"
