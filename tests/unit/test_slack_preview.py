"""`newsmon slack-preview`: alert JSON in, the exact webhook body out."""

from __future__ import annotations

import io
import json
from pathlib import Path

from newsmon.notifier.slack import build_payload, payload_json, preview_command
from newsmon.shared.messages import encode

from tests.support.slack_stub import sample_alert


def _run(path: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = preview_command(path, out, err, stdin=io.StringIO(stdin))
    return code, out.getvalue(), err.getvalue()


def test_one_alert_file(tmp_path: Path) -> None:
    alert = sample_alert()
    source = tmp_path / "alert.json"
    source.write_bytes(encode(alert))

    code, out, err = _run(str(source))

    assert (code, err) == (0, "")
    assert out == payload_json(build_payload(alert)).decode("utf-8") + "\n"


def test_pretty_printed_alert_from_stdin() -> None:
    alert = sample_alert()
    pretty = json.dumps(json.loads(encode(alert)), indent=2)

    code, out, _ = _run("-", stdin=pretty)

    assert code == 0
    assert json.loads(out) == build_payload(alert)


def test_json_lines_give_one_payload_per_line() -> None:
    alerts = [sample_alert(title="one"), sample_alert(title="two <!here>")]
    lines = "\n".join(encode(a).decode("utf-8") for a in alerts) + "\n\n"

    code, out, _ = _run("-", stdin=lines)

    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == [build_payload(a) for a in alerts]


def test_invalid_line_fails_without_partial_output() -> None:
    good = encode(sample_alert()).decode("utf-8")
    bad = json.dumps({**json.loads(good), "score": 7})

    code, out, err = _run("-", stdin=f"{good}\n{bad}\n")

    assert (code, out) == (1, "")
    assert err.startswith("slack-preview: stdin: line 2: not a valid alert: Alert: score:")


def test_not_json() -> None:
    code, out, err = _run("-", stdin="this is not json")
    assert (code, out) == (1, "")
    assert "slack-preview: stdin: input: not a valid alert: Alert:" in err


def test_empty_input() -> None:
    assert _run("-", stdin="  \n") == (1, "", "slack-preview: stdin: no alert JSON found\n")


def test_missing_file(tmp_path: Path) -> None:
    code, out, err = _run(str(tmp_path / "nope.json"))
    assert (code, out) == (1, "")
    assert err.startswith(f"slack-preview: cannot read {tmp_path / 'nope.json'}:")
