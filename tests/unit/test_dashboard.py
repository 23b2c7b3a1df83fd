"""The Grafana dashboard: generated from code, committed, and its queries name real metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from newsmon.cli import main
from newsmon.shared.dashboard import build_dashboard, expressions, render
from newsmon.shared.metrics import Metrics

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "deploy" / "grafana" / "dashboards" / "newsmon.json"
RECORDED = re.compile(r"\b[a-z_]+:newsmon_[a-z_]+:[a-z0-9_]+\b")


def test_committed_json_is_what_the_builder_produces() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render(), (
        "deploy/grafana/dashboards/newsmon.json is stale: run "
        "`.venv/bin/newsmon dashboard -o deploy/grafana/dashboards/newsmon.json`"
    )


def test_cli_writes_the_same_json(tmp_path: Path) -> None:
    out = tmp_path / "d.json"
    assert main(["dashboard", "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render()


def test_has_the_rows_operators_asked_for() -> None:
    rows = [row.title for row in build_dashboard().rows]
    assert rows == ["Pipeline overview", "Feeds", "Classifier", "Alerter and Slack", "Kafka"]


def test_layout_fits_the_grid_without_overlap() -> None:
    panels = json.loads(render())["panels"]
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine
    assert len({p["id"] for p in panels}) == len(panels)


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bnewsmon_[a-z_]+", RECORDED.sub("", expr)))


@pytest.mark.parametrize(("title", "expr"), list(expressions()))
def test_every_query_references_metrics_that_exist(title: str, expr: str) -> None:
    metrics = Metrics()
    exposed = {
        sample_name
        for family in metrics.registry.collect()
        for sample_name in {
            family.name,
            *(f"{family.name}{s}" for s in ("_total", "_bucket", "_info")),
        }
    }
    names = _metric_names(expr)
    assert names, f"{title}: no newsmon metric in {expr}"
    unknown = names - exposed
    assert not unknown, f"{title}: unknown metrics {unknown}"
