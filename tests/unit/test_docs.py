"""The README is part of the contract: every setting and every message field is documented."""

from __future__ import annotations

from pathlib import Path

import pytest
from newsmon.shared.messages import Alert, AlertSource, Article, Classified, Evidence, Term
from newsmon.shared.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_in_the_readme(name: str) -> None:
    assert f"`NEWSMON_{name.upper()}`" in README


@pytest.mark.parametrize(
    ("model", "field"),
    [
        (model, field.alias or name)
        for model in (Article, Classified, Alert, Evidence, Term, AlertSource)
        for name, field in model.model_fields.items()
    ],
)
def test_every_message_field_is_in_the_readme(model: type, field: str) -> None:
    assert f"`{field}`" in README, f"{model.__name__}.{field} is not documented"


def test_quick_start_is_two_commands() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in quick_start.splitlines()[1:] if line.strip()]
    assert commands == ["make run", "make test"]
