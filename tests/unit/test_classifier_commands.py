"""`classify` and `eval` commands: JSON lines in, JSON lines / figures out, bad lines reported."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest
from newsmon.classifier.cli import add_subcommands
from newsmon.classifier.commands import classify_command, eval_command

GOOD = {
    "id": "a1",
    "title": "North Korean troops fight for Russia in Kursk",
    "summary": "",
    "lang": "en",
}
OTHER = {
    "id": 7,
    "title": "Local football club wins the cup",
    "summary": "A sunny day.",
    "text": "",
}


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_classify_writes_one_line_per_item(tmp_path: Path) -> None:
    path = _write(tmp_path, [json.dumps(GOOD), "", json.dumps(OTHER)])
    out, err = io.StringIO(), io.StringIO()
    assert classify_command(str(path), out, err) == 0
    assert err.getvalue() == ""
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["id"] for r in rows] == ["a1", "7"]
    for row in rows:
        assert set(row) == {"id", "match", "score", "categories", "evidence", "version"}
    assert rows[0]["match"] is True
    assert rows[1]["match"] is False
    assert "troops" in rows[0]["categories"]
    evidence = rows[0]["evidence"][0]
    assert evidence["field"] == "title"
    term = evidence["terms"][0]
    assert evidence["sentence"][term["start"] : term["end"]] == term["term"]


def test_classify_reports_bad_lines_and_keeps_going(tmp_path: Path) -> None:
    lines = [
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"title": "no id"}),
        json.dumps({"id": "x"}),
        json.dumps({"id": "y", "title": "t", "summary": 3}),
        json.dumps(GOOD),
    ]
    path = _write(tmp_path, lines)
    out, err = io.StringIO(), io.StringIO()
    assert classify_command(str(path), out, err) == 1
    messages = err.getvalue().splitlines()
    assert [m.split(":")[1] for m in messages] == ["1", "2", "3", "4", "5"]
    assert "not valid JSON" in messages[0]
    assert "expected a JSON object" in messages[1]
    assert '"id" is required' in messages[2]
    assert '"title" is required' in messages[3]
    assert '"summary" must be a string' in messages[4]
    assert [json.loads(line)["id"] for line in out.getvalue().splitlines()] == ["a1"]


def test_classify_reads_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(GOOD) + "\n"))
    out, err = io.StringIO(), io.StringIO()
    assert classify_command("-", out, err) == 0
    assert json.loads(out.getvalue())["id"] == "a1"


def test_classify_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert classify_command(str(tmp_path / "absent.jsonl"), out, err) == 2
    assert "cannot read" in err.getvalue()


def _labelled(tmp_path: Path) -> Path:
    rows = [
        {**GOOD, "id": "p1", "label": "positive"},
        {
            "id": "p2",
            "title": "북한군, 러시아 쿠르스크 전선 투입",
            "lang": "ko",
            "label": "positive",
        },
        {"id": "p3", "title": "Weather report for Sunday", "lang": "en", "label": "positive"},
        {
            "id": "n1",
            "title": "North Korea fires ICBM into Sea of Japan",
            "lang": "en",
            "label": "negative",
        },
        {
            "id": "n2",
            "title": "Russian tourists visit Wonsan resort",
            "lang": "en",
            "label": "negative",
        },
        {"id": "a1", "title": "Live: world news roundup", "lang": "en", "label": "ambiguous"},
    ]
    return _write(tmp_path, [json.dumps(r, ensure_ascii=False) for r in rows])


def test_eval_json_has_exactly_the_documented_shape(tmp_path: Path) -> None:
    out = io.StringIO()
    assert eval_command(str(_labelled(tmp_path)), True, out) == 0
    text = out.getvalue()
    assert text.count("\n") == 1
    result = json.loads(text)
    assert set(result) == {
        "precision",
        "recall",
        "f1",
        "tp",
        "fp",
        "fn",
        "tn",
        "n",
        "by_lang",
        "by_category",
        "misses",
    }
    assert (result["tp"], result["fp"], result["fn"], result["tn"], result["n"]) == (2, 0, 1, 2, 5)
    assert result["precision"] == 1.0
    assert result["recall"] == pytest.approx(2 / 3, abs=1e-3)
    assert set(result["by_lang"]) == {"en", "ko"}
    assert set(result["by_lang"]["en"]) == {"precision", "recall", "f1", "n", "tp", "fp", "fn"}
    assert result["by_lang"]["en"]["n"] == 4
    assert result["by_category"] == {}  # no item carries gold categories
    (miss,) = result["misses"]
    assert (miss["id"], miss["label"], miss["terms"]) == ("p3", "positive", [])


def test_eval_scores_gold_categories_and_lists_misses_with_their_terms(tmp_path: Path) -> None:
    rows = [
        {
            "id": "w1",
            "title": "North Korea shipped artillery shells to Russia",
            "lang": "en",
            "label": "positive",
            "categories": ["weapons"],
        },
        {
            "id": "t1",
            "title": "Pyongyang sends troops",
            "summary": "Officials said little.",
            "lang": "en",
            "label": "positive",
            "categories": ["troops"],
        },
        {
            "id": "n1",
            "title": "Russia fires Iranian drones at Kyiv",
            "lang": "en",
            "label": "negative",
            "kind": "iran_drones",
        },
    ]
    path = _write(tmp_path, [json.dumps(r) for r in rows])
    out = io.StringIO()
    assert eval_command(str(path), True, out) == 0
    result = json.loads(out.getvalue())
    assert result["by_category"]["weapons"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "n": 1}
    assert result["by_category"]["troops"]["recall"] == 0.0
    (miss,) = result["misses"]
    assert miss["id"] == "t1"
    assert {"field": "title", "term": "troops", "category": "troops"} in miss["terms"]
    text = io.StringIO()
    assert eval_command(str(path), False, text) == 0
    report = text.getvalue()
    assert "against the items' gold categories" in report
    assert "iran_drones" in report
    assert "troops/troops" in report


def test_eval_rejects_unknown_gold_categories(tmp_path: Path) -> None:
    path = _write(tmp_path, [json.dumps({**GOOD, "label": "positive", "categories": ["tanks"]})])
    out, err = io.StringIO(), io.StringIO()
    assert eval_command(str(path), True, out, err=err) == 1
    assert '"categories"' in err.getvalue()


def test_eval_text_report_lists_figures_and_mistakes(tmp_path: Path) -> None:
    out = io.StringIO()
    assert eval_command(str(_labelled(tmp_path)), False, out) == 0
    report = out.getvalue()
    for needle in (
        "precision",
        "recall",
        "F1",
        "by language",
        "by category",
        "false negatives",
        "p3",
    ):
        assert needle in report
    assert "ambiguous excluded: 1" in report


def test_eval_reports_bad_labels(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        [json.dumps({**GOOD, "label": "maybe"}), json.dumps({**GOOD, "label": "positive"})],
    )
    out, err = io.StringIO(), io.StringIO()
    assert eval_command(str(path), True, out, err=err) == 1
    assert "1:" in err.getvalue()
    assert '"label"' in err.getvalue()
    assert json.loads(out.getvalue())["n"] == 1


def test_subcommands_parse_and_dispatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="newsmon")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["eval", str(_labelled(tmp_path)), "--json", "--threshold", "0.9"])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 5
    args = parser.parse_args(["classify", str(_labelled(tmp_path))])
    assert args.func(args) == 0
    assert len(capsys.readouterr().out.splitlines()) == 6
    assert parser.parse_args(["classify"]).file == "-"
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "x", "--threshold", "2"])
