"""docs/schemas/alert.v1.json describes exactly what `encode(alert)` writes, and cannot drift."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from newsmon.shared.messages import Alert, AlertSource, Evidence, Term, encode
from pydantic import BaseModel

from tests.support.slack_stub import sample_alert

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "alert.v1.json"
SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)

# Each model and the part of the schema that describes it.
PARTS: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (Alert, SCHEMA),
    (Evidence, SCHEMA["$defs"]["evidence"]),
    (Term, SCHEMA["$defs"]["term"]),
    (AlertSource, SCHEMA["$defs"]["source"]),
]


def _encoded(alert: Alert) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(encode(alert))
    return decoded


def _names(model: type[BaseModel], *, required: bool) -> set[str]:
    return {
        field.alias or name
        for name, field in model.model_fields.items()
        if field.is_required() or not required
    }


def test_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_full_alert_validates() -> None:
    # Every field set, none left at its default, a non-UTC input time.
    seoul = timezone(timedelta(hours=9))
    alert = sample_alert(revision=4, published=datetime(2024, 11, 25, 9, 0, tzinfo=seoul))
    document = _encoded(alert)

    VALIDATOR.validate(document)
    assert document["schema"] == "newsmon.alert.v1"
    assert document["published"] == "2024-11-25T00:00:00Z"
    assert isinstance(document["categories"], list)
    assert isinstance(document["evidence"][0]["terms"], list)


def test_alert_with_only_required_fields_validates() -> None:
    when = datetime(2024, 1, 1, tzinfo=UTC)
    alert = Alert(
        alert_id="a",
        story_id="s",
        article_id="r",
        title="t",
        url="https://example.com",
        source="S",
        feed="f",
        score=0.5,
        classifier_version="v",
        fetched=when,
        classified=when,
        alerted=when,
    )
    VALIDATOR.validate(_encoded(alert))
    required_only = {k: v for k, v in _encoded(alert).items() if k in SCHEMA["required"]}
    VALIDATOR.validate(required_only)


@pytest.mark.parametrize(("model", "part"), PARTS, ids=lambda p: getattr(p, "__name__", ""))
def test_schema_and_model_list_the_same_fields(
    model: type[BaseModel], part: dict[str, Any]
) -> None:
    assert set(part["properties"]) == _names(model, required=False)
    assert sorted(part["required"]) == sorted(_names(model, required=True))


@pytest.mark.parametrize(("model", "part"), PARTS, ids=lambda p: getattr(p, "__name__", ""))
def test_schema_defaults_match_the_model(model: type[BaseModel], part: dict[str, Any]) -> None:
    for name, field in model.model_fields.items():
        prop = part["properties"][field.alias or name]
        if not field.is_required():
            default = field.get_default()
            expected = list(default) if isinstance(default, tuple) else default
            assert prop.get("default") == expected, name


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"alert_id": None}, "required string"),
        ({"schema": "newsmon.alert.v2"}, "another schema version"),
        ({"score": 1.5}, "score above 1"),
        ({"revision": 0}, "revision below 1"),
        ({"alerted": "2024-11-25T06:44:00"}, "time without an offset"),
        ({"categories": "troops"}, "categories as a string"),
        ({"evidence": [{"field": "body", "sentence": "s", "start": 0}]}, "unknown field"),
    ],
)
def test_schema_rejects(change: dict[str, Any], why: str) -> None:
    document = {**_encoded(sample_alert()), **change}
    if change.get("alert_id", "") is None:
        del document["alert_id"]
    assert not VALIDATOR.is_valid(document), why


def test_unknown_properties_are_allowed() -> None:
    # Readers ignore fields a newer producer adds, like the model does (extra="ignore").
    VALIDATOR.validate({**_encoded(sample_alert()), "added_in_v1_1": True})
