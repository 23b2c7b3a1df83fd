"""Metrics of a consume-transform-produce batch count what was committed: a batch replayed
after a failed publish (its transform runs again) is not counted twice."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest
from newsmon.alerter.app import AlertTransform, StoryGroups, state_topic
from newsmon.alerter.grouping import story_from_json
from newsmon.classifier.app import ClassifyTransform
from newsmon.classifier.engine import Classifier
from newsmon.shared.messages import encode
from newsmon.shared.metrics import Metrics
from newsmon.shared.settings import Settings

from tests.unit.test_alerts import classified

SETTINGS = Settings(kafka_bootstrap="127.0.0.1:1", topic_prefix="t", instance_id="x")


def _record(value: bytes) -> Any:
    return SimpleNamespace(topic="in", partition=0, offset=0, key=b"a1", value=value, headers=())


def test_classifier_verdicts_are_counted_once_committed() -> None:
    metrics = Metrics()
    transform = ClassifyTransform(SETTINGS, metrics, Classifier.default())
    record = _record(encode(classified().article))
    verdicts = {"match": "true"}

    transform(record)
    assert metrics.registry.get_sample_value("newsmon_classifier_verdicts_total", verdicts) in (
        None,
        0.0,
    ), "not before the batch is committed"
    transform.counts.aborted()  # publish failed: the batch is replayed
    transform(record)
    transform.counts.committed()
    assert metrics.registry.get_sample_value("newsmon_classifier_verdicts_total", verdicts) == 1
    assert (
        metrics.registry.get_sample_value(
            "newsmon_classifier_category_matches_total", {"category": "troops"}
        )
        == 1
    )


def test_alert_latency_is_observed_once_committed() -> None:
    metrics = Metrics()
    groups = StoryGroups(SETTINGS, metrics)
    transform = AlertTransform(SETTINGS, metrics, groups, routes=())
    record = _record(encode(classified()))
    fetched = {"since": "fetched"}

    transform(record)
    groups.aborted()
    transform(record)
    groups.committed()
    assert metrics.registry.get_sample_value("newsmon_alert_latency_seconds_count", fetched) == 1


def test_a_story_raised_twice_in_a_batch_writes_one_state_record() -> None:
    groups = StoryGroups(SETTINGS, Metrics())
    transform = AlertTransform(SETTINGS, Metrics(), groups, routes=())

    first = transform(_record(encode(classified("a1"))))
    transform(_record(encode(classified("a2"))))  # a copy: revision 2 of the same story

    assert {out.topic for out in first} == {SETTINGS.topics.alerts}
    (state,) = groups.state_outputs()
    assert state.topic == state_topic(SETTINGS)
    assert state.key == b"a1"
    assert story_from_json(state.value).revision == 2
    groups.committed()
    assert groups.state_outputs() == []


def test_classifier_logs_one_info_line_per_batch_with_a_match(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transform = ClassifyTransform(SETTINGS, Metrics(), Classifier.default())
    match = _record(encode(classified().article))
    with caplog.at_level(logging.DEBUG, logger="newsmon.classifier"):
        for _ in range(3):
            transform(match)
        transform.counts.committed()
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert info == ["classified 3 items, 3 matched"]
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 3  # one per verdict
