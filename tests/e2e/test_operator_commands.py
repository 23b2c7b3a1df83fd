"""`newsmon replay`, `doctor`, `feeds health`, `tail --pretty` and `completion`, run as
people run them (a subprocess) against the real broker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from newsmon.fetcher.state import FeedState, ensure_state_topic, state_topic
from newsmon.shared.broker import free_port
from newsmon.shared.kafka import ensure_topics
from newsmon.shared.messages import Article, Classified, encode
from newsmon.shared.settings import Settings

from tests.support.kafka_write import produce
from tests.support.web import make_alert, publish_alerts

pytestmark = pytest.mark.kafka

NEWSMON = [sys.executable, "-m", "newsmon"]


def _run(settings: Settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSMON_")}
    env.update(
        {
            "NEWSMON_KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
            "NEWSMON_TOPIC_PREFIX": settings.topic_prefix,
            "NEWSMON_METRICS_PORT": str(free_port()),
            "COLUMNS": "160",
        }
    )
    return subprocess.run(
        [*NEWSMON, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


async def _produce(settings: Settings, topic: str, items: list[tuple[bytes, bytes]]) -> None:
    await produce(settings.kafka_bootstrap or "", topic, items)


def _article(n: int, title: str, summary: str) -> Article:
    now = datetime.now(UTC)
    return Article(
        id=f"a{n}",
        feed="yonhap",
        source="Yonhap",
        url=f"https://news.example/{n}",
        title=title,
        summary=summary,
        fetched=now,
        lang="en",
    )


async def test_replay_shows_new_and_lost_matches(kafka_settings: Settings) -> None:
    await ensure_topics(kafka_settings)
    kursk = _article(
        1,
        "North Korean troops fighting in Russia's Kursk region, Seoul says",
        "Pyongyang has sent thousands of soldiers to help Russia against Ukraine.",
    )
    weather = _article(2, "Heavy snow expected in Seoul", "Forecasters warn of icy roads.")
    topics = kafka_settings.topics
    await _produce(
        kafka_settings, topics.articles, [(a.id.encode(), encode(a)) for a in (kursk, weather)]
    )
    # What an older classifier said: missed the Kursk story, flagged the weather.
    old = [
        Classified(
            article=kursk,
            match=False,
            score=0.1,
            classifier_version="old",
            classified=kursk.fetched,
        ),
        Classified(
            article=weather,
            match=True,
            score=0.7,
            classifier_version="old",
            classified=kursk.fetched,
        ),
    ]
    await _produce(
        kafka_settings, topics.classified, [(c.article.id.encode(), encode(c)) for c in old]
    )

    result = await asyncio.to_thread(_run, kafka_settings, "replay", "--since", "1h", "--dry-run")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "+ NEW MATCH" in out
    assert "Kursk region" in out
    assert "- LOST MATCH" in out
    assert "Heavy snow" in out
    assert "replayed 2 articles" in out
    assert "1 new matches, 1 lost" in out

    shadow = f"{kafka_settings.topic_prefix}.shadow"
    result = await asyncio.to_thread(
        _run, kafka_settings, "replay", "--since", "1h", "--to-topic", shadow
    )
    assert result.returncode == 0, result.stderr
    assert f"published 2 verdicts to {shadow}" in result.stdout


async def test_tail_pretty_filters_and_stops_at_the_end(kafka_settings: Settings) -> None:
    await publish_alerts(
        kafka_settings,
        [
            make_alert(1, title="Troops in Kursk", lang="en"),
            make_alert(2, title="Снаряды для России", lang="ru", categories=("weapons",)),
        ],
    )
    result = await asyncio.to_thread(
        _run,
        kafka_settings,
        "tail",
        kafka_settings.topics.alerts,
        "--since",
        "1h",
        "--no-follow",
        "--category",
        "weapons",
        "--pretty",
    )
    assert result.returncode == 0, result.stderr
    assert "Снаряды для России" in result.stdout
    assert "Troops in Kursk" not in result.stdout
    assert "[weapons] score 0.87" in result.stdout
    assert "Pyongyang sent troops" in result.stdout


async def test_feeds_health_and_doctor(kafka_settings: Settings) -> None:
    await ensure_topics(kafka_settings)
    await ensure_state_topic(kafka_settings)
    now = datetime.now(UTC).timestamp()
    good = FeedState(url="https://a.example/rss", last_success_at=now, last_new_item_at=now - 3600)
    bad = FeedState(url="https://b.example/rss", error_streak=4, last_success_at=now - 86_400)
    bad.extra["last_error"] = "timeout: read timed out"
    await _produce(
        kafka_settings,
        state_topic(kafka_settings),
        [(b"good", good.to_json()), (b"bad", bad.to_json())],
    )
    health = await asyncio.to_thread(_run, kafka_settings, "feeds", "health")
    assert health.returncode == 0, health.stderr
    assert health.stdout.index("bad") < health.stdout.index("good"), "failing first"
    assert "timeout: read timed out" in health.stdout
    assert "failing" in health.stdout

    doctor = await asyncio.to_thread(_run, kafka_settings, "doctor", "--no-feeds")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "PASS" in doctor.stdout
    assert f"topic {kafka_settings.topics.alerts}" in doctor.stdout
    assert "lag" in doctor.stdout
    assert "NEWSMON_SLACK_WEBHOOK_URL unset" in doctor.stdout

    unreachable = kafka_settings.with_overrides(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    doctor = await asyncio.to_thread(_run, unreachable, "doctor", "--no-feeds")
    assert doctor.returncode == 1
    assert "FAIL" in doctor.stdout


def test_completion_scripts() -> None:
    result = subprocess.run(
        [*NEWSMON, "completion", "bash"], capture_output=True, text=True, check=True
    )
    assert "complete" in result.stdout
    assert "replay" in result.stdout


def test_web_beyond_loopback_without_token_refuses_to_start() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSMON_")}
    env["NEWSMON_WEB_HOST"] = "0.0.0.0"
    result = subprocess.run(
        [*NEWSMON, "web"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "NEWSMON_WEB_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr
