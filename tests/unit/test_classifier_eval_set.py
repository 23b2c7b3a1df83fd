"""The multilingual evaluation set (docs/eval/multilingual.jsonl): recall floor per language.

A regression guard for the languages issue [12] added, not a tuning target: the set is frozen
and its figures are reported in docs/CLASSIFIER.md (see docs/eval/README.md).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from newsmon.classifier.commands import eval_command

EVAL_SET = Path(__file__).resolve().parents[2] / "docs" / "eval" / "multilingual.jsonl"
_RECALL_FLOOR = 0.85  # the target for every listed language
_PRECISION_FLOOR = 0.95


def test_every_language_reaches_the_recall_target() -> None:
    out = io.StringIO()
    assert eval_command(str(EVAL_SET), True, out) == 0
    summary = json.loads(out.getvalue())
    assert summary["precision"] >= _PRECISION_FLOOR
    low = {
        lang: m["recall"] for lang, m in summary["by_lang"].items() if m["recall"] < _RECALL_FLOOR
    }
    assert not low, f"recall below {_RECALL_FLOOR}: {low}"
    assert all(m["n"] >= 20 for m in summary["by_lang"].values())
