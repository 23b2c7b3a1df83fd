"""Figures on the shared development corpus (skipped when ../shared/corpus is absent)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from newsmon.classifier.commands import eval_command
from newsmon.classifier.engine import Classifier

CORPUS = Path(__file__).resolve().parents[2].parent / "shared/corpus/news"
DEV = CORPUS / "dev.jsonl"
SEED = CORPUS / "seed-newindianexpress-2024-12.txt"

pytestmark = pytest.mark.corpus


def test_dev_set_reaches_the_targets() -> None:
    if not DEV.exists():
        pytest.skip(f"{DEV} not present")
    out = io.StringIO()
    assert eval_command(str(DEV), True, out) == 0
    result = json.loads(out.getvalue())
    assert result["f1"] >= 0.93
    assert result["precision"] >= 0.95


def test_dev_set_recall_on_non_english_items() -> None:
    if not DEV.exists():
        pytest.skip(f"{DEV} not present")
    items = [json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines() if line]
    positives = [i for i in items if i["label"] == "positive" and i.get("lang") != "en"]
    verdicts = Classifier.default().classify_many(positives)
    recall = sum(v.match for v in verdicts) / len(positives)
    assert recall >= 0.85


def test_seed_story_is_flagged_with_evidence() -> None:
    if not SEED.exists():
        pytest.skip(f"{SEED} not present")
    lines = SEED.read_text(encoding="utf-8").splitlines()
    title, body = lines[1], "\n".join(lines[2:])
    verdict = Classifier.default().classify(title=title, text=body, lang="en")
    assert verdict.match
    assert verdict.score >= 0.9
    assert {"troops", "casualties", "weapons"} <= set(verdict.categories)
    fired = {t.category for e in verdict.evidence for t in e.terms}
    assert {"troops", "casualties", "weapons", "dprk_actor"} <= fired
    for e in verdict.evidence:
        source = title if e.field == "title" else body
        assert source[e.start : e.start + len(e.sentence)] == e.sentence
