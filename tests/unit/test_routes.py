"""Alert routing: the pure routing function, the rules file, `newsmon routes check`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from newsmon.alerter.routes import (
    DEFAULT_ROUTES,
    RouteInput,
    RoutesError,
    check_command,
    load_routes,
    parse_routes,
    route,
    routed_topics,
)

from tests.support.slack_stub import sample_alert


def topics(item: RouteInput, routes=DEFAULT_ROUTES) -> list[str]:  # type: ignore[no-untyped-def]
    return [t for t, _ in route(item, routes, prefix="newsmon")]


@pytest.mark.parametrize(
    ("categories", "expected"),
    [
        ((), ["newsmon.alerts.v1"]),
        (("dprk_actor",), ["newsmon.alerts.v1"]),
        (("troops",), ["newsmon.alerts.v1", "newsmon.alerts.troops.v1"]),
        (("weapons",), ["newsmon.alerts.v1", "newsmon.alerts.weapons.v1"]),
        (("tech_transfer",), ["newsmon.alerts.v1", "newsmon.alerts.tech-transfer.v1"]),
        (("treaty_diplomacy",), ["newsmon.alerts.v1", "newsmon.alerts.treaty.v1"]),
        (("casualties",), ["newsmon.alerts.v1", "newsmon.alerts.casualties.v1"]),
        (
            ("casualties", "troops", "dprk_actor"),
            ["newsmon.alerts.v1", "newsmon.alerts.troops.v1", "newsmon.alerts.casualties.v1"],
        ),
    ],
)
def test_default_routing_table(categories: tuple[str, ...], expected: list[str]) -> None:
    assert topics(RouteInput(categories=categories, score=0.9)) == expected


RULES = """
[[route]]
name = "urgent"
topic = "{prefix}.alerts.urgent.v1"
min_score = 0.8

[[route]]
topic = "{prefix}.alerts.korean.v1"
languages = ["ko"]

[[route]]
topic = "desk.yonhap-troops"
sources = ["YONHAP"]
categories = ["troops", "casualties"]

[[route]]
topic = "desk.wire"
feeds = ["wire"]
"""


def test_rules_file_conditions() -> None:
    import tomllib

    routes = parse_routes(tomllib.loads(RULES), prefix="newsmon")
    assert topics(RouteInput(score=0.5), routes) == ["newsmon.alerts.v1"]
    assert topics(RouteInput(score=0.8, lang="ko"), routes) == [
        "newsmon.alerts.v1",
        "newsmon.alerts.urgent.v1",
        "newsmon.alerts.korean.v1",
    ]
    yonhap = RouteInput(categories=("casualties",), score=0.1, sources=("Yonhap",))
    assert topics(yonhap, routes) == ["newsmon.alerts.v1", "desk.yonhap-troops"]
    assert topics(RouteInput(categories=("weapons",), sources=("Yonhap",)), routes) == [
        "newsmon.alerts.v1"
    ]
    assert route(RouteInput(score=0.9), routes, prefix="p")[1] == ("p.alerts.urgent.v1", "urgent")
    assert routed_topics(routes, prefix="p")[0] == "p.alerts.v1"


def test_updates_route_on_every_copy_of_the_story() -> None:
    alert = sample_alert(categories=("weapons",))  # sources: Example News, Wire Service
    item = RouteInput.from_alert(alert)
    assert item.sources == ("Example News", "Wire Service")
    assert item.feeds == ("example-world", "wire")


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"route": [{"categories": ["troops"]}]}, "topic is required"),
        ({"route": [{"topic": "bad topic!"}]}, "not a valid Kafka topic name"),
        ({"route": [{"topic": "t", "min_score": 2}]}, "within"),
        ({"route": [{"topic": "t", "colour": "red"}]}, "unknown key"),
        ({"route": [{"topic": "t", "categories": [1]}]}, "list of non-empty strings"),
        ({"routes": []}, "unknown key"),
    ],
)
def test_bad_rules_are_refused_with_the_reason(document: dict, problem: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(RoutesError, match=problem):
        parse_routes(document)


def test_load_routes(tmp_path: Path) -> None:
    assert load_routes(None) == DEFAULT_ROUTES
    path = tmp_path / "routes.toml"
    path.write_text(RULES, encoding="utf-8")
    assert len(load_routes(path)) == 4
    path.write_text("[[route]\n", encoding="utf-8")
    with pytest.raises(RoutesError, match="not valid TOML"):
        load_routes(path)


def test_routes_check_prints_topics_and_reasons() -> None:
    out, err = io.StringIO(), io.StringIO()
    sample = json.dumps({"categories": ["troops", "weapons"], "score": 0.9, "lang": "en"})
    assert check_command(sample, None, "newsmon", out, err) == 0
    lines = out.getvalue().splitlines()
    assert lines[1:] == [
        "newsmon.alerts.v1\tall alerts",
        "newsmon.alerts.troops.v1\ttroops",
        "newsmon.alerts.weapons.v1\tweapons",
    ]


def test_routes_check_reads_a_full_alert_from_stdin() -> None:
    out, err = io.StringIO(), io.StringIO()
    text = sample_alert().model_dump_json(by_alias=True)
    assert check_command("-", None, "x", out, err, stdin=io.StringIO(text)) == 0
    assert "x.alerts.troops.v1\ttroops" in out.getvalue()


def test_routes_check_reports_bad_input() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert check_command("{nope", None, "newsmon", out, err) == 1
    assert "not valid JSON" in err.getvalue()
