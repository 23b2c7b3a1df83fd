"""The alerter's transform: the verdict header on classified records (non-matches skipped
without decoding, records written before the header read whole), and the batch step
(decoding and fingerprinting a batch at once) that never loses a record.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from newsmon.alerter.app import AlertTransform, StoryGroups
from newsmon.classifier.app import ClassifyTransform
from newsmon.classifier.engine import Classifier
from newsmon.shared.messages import (
    MATCH_HEADER,
    Article,
    MessageDecodeError,
    classified_headers,
    encode,
)
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings

from tests.unit.test_alerts import NOW, classified

SETTINGS = Settings(kafka_bootstrap="127.0.0.1:1", topic_prefix="t", instance_id="x")


def _record(value: bytes, headers: list[tuple[str, bytes]] | None = None) -> Any:
    return SimpleNamespace(
        topic="in", partition=0, offset=0, key=b"a1", value=value, headers=tuple(headers or ())
    )


def _alerter() -> AlertTransform:
    return AlertTransform(SETTINGS, Metrics(), StoryGroups(SETTINGS, Metrics()), routes=())


def test_the_classifier_sends_its_verdict_as_a_header() -> None:
    transform = ClassifyTransform(SETTINGS, Metrics(), Classifier.default())
    match = classified()
    other = Article(
        id="b1", feed="f", source="s", url="https://example.org/b1", title="Weather", fetched=NOW
    )
    (matched,) = transform(_record(encode(match.article)))
    (unmatched,) = transform(_record(encode(other)))
    assert matched.headers == [(MATCH_HEADER, b"true")]
    assert unmatched.headers == [(MATCH_HEADER, b"false")]


def test_the_alerter_skips_a_non_match_by_its_header_without_decoding_it() -> None:
    # Not even JSON: had the alerter decoded it, the record would have gone to the DLQ.
    assert _alerter()(_record(b"\xff not json", [(MATCH_HEADER, b"false")])) == ()


def test_records_without_the_header_are_read_whole() -> None:
    alerter = _alerter()
    non_match = classified("b1").model_copy(update={"match": False})
    assert alerter(_record(encode(non_match))) == ()
    (alert,) = alerter(_record(encode(classified("a1"))))
    assert alert.topic == SETTINGS.topics.alerts


def test_a_match_header_still_decodes_the_value() -> None:
    match = classified("a1")
    (alert,) = _alerter()(_record(encode(match), classified_headers(match)))
    assert alert.key == b"a1"


def test_a_batch_that_cannot_be_fingerprinted_at_once_is_done_record_by_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from newsmon.alerter import app

    alerter = _alerter()
    records = [_record(encode(classified("a1"))), _record(b"not json")]
    records[1].offset = 1

    def broken(texts: object) -> list[object]:
        raise MemoryError("pretend numpy could not allocate the batch")

    monkeypatch.setattr(app, "fingerprints", broken)
    alerter.prepare(records)
    monkeypatch.undo()
    (alert,) = alerter(records[0])
    assert alert.key == b"a1"
    with pytest.raises(MessageDecodeError):
        alerter(records[1])  # refused: to the DLQ, as without the batch step
