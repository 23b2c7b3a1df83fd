"""`newsmon web` in a real Chromium, on the real broker: live alerts from the pipeline,
filters, the story page and hostile headlines shown as text; no console errors."""

from __future__ import annotations

import asyncio
import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from newsmon.runner import serve
from newsmon.shared.settings import Settings
from playwright.async_api import expect

from tests.browser.conftest import BrowserPage
from tests.support.feed_server import serve_directory
from tests.support.web import (
    HOSTILE_TITLE,
    HOSTILE_URL,
    make_alert,
    publish_alerts,
    running_web,
    wait_for_stories,
)

pytestmark = [pytest.mark.kafka, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
FEEDS = REPO / "tests" / "fixtures" / "feeds"
SCREENSHOT = REPO / "docs" / "web-alerts.png"
# Seconds the page may take to show what was published: generous for a 2-core machine; the
# tests wait for a state, they do not time anything.
WAIT_MS = 60_000


async def test_alert_from_the_pipeline_appears_without_reload(
    kafka_settings: Settings, tmp_path: Path, page: BrowserPage
) -> None:
    async with running_web(kafka_settings) as base:
        await page.page.goto(base + "/")
        await expect(page.page.locator("#no-alerts")).to_be_visible()
        await expect(page.page.locator("#live")).to_be_visible(timeout=WAIT_MS)
        await page.page.evaluate("window.loadedOnce = true")

        feeds = tmp_path / "feeds.toml"
        with serve_directory(FEEDS) as feed_base:
            feeds.write_text(f'[[feed]]\nname = "e2e"\nurl = "{feed_base}/nk-russia-e2e.xml"\n')
            stop = asyncio.Event()
            pipeline = asyncio.create_task(
                serve(
                    kafka_settings.with_overrides(feeds_file=feeds),
                    ["fetcher", "classifier", "alerter"],
                    process_name="run",
                    start_broker=False,
                    stop=stop,
                )
            )
            try:
                card = page.page.locator("li.alert").first
                await expect(card).to_contain_text("Kursk", timeout=WAIT_MS * 2)
            finally:
                stop.set()
                assert await asyncio.wait_for(pipeline, timeout=30) == 0

        assert await page.page.evaluate("window.loadedOnce") is True, "the page was not reloaded"
        await expect(card.locator("mark.term").first).to_be_visible()
        await expect(card.locator(".category").first).to_be_visible()
    assert page.errors == []


async def test_filters_story_and_hostile_headline(
    kafka_settings: Settings, page: BrowserPage
) -> None:
    first = make_alert(1, source="Yonhap", feed="yonhap", lang="en")
    alerts = [
        make_alert(
            5,
            title="Russia and North Korea ratify mutual defence treaty",
            categories=("treaty_diplomacy",),
            source="TASS",
            feed="tass",
            lang="ru",
            age=timedelta(days=4),
        ),
        make_alert(
            4,
            title="Ukraine says North Korean shells found near Pokrovsk",
            categories=("weapons",),
            source="Kyiv Independent",
            feed="kyiv",
            age=timedelta(days=2),
        ),
        first,
        make_alert(
            1,
            revision=2,
            title="북한군 쿠르스크 파병 확인",
            source="KBS",
            feed="kbs",
            lang="ko",
            sources=first.sources,
            age=timedelta(minutes=2),
        ),
        make_alert(3, title=HOSTILE_TITLE, url=HOSTILE_URL, source="<i>Evil</i> Times", feed="x"),
    ]
    await publish_alerts(kafka_settings, alerts)
    async with running_web(kafka_settings) as base:
        p = page.page
        await wait_for_stories(base, 4)
        await p.goto(base + "/")
        cards = p.locator("li.alert")
        await expect(cards).to_have_count(4, timeout=WAIT_MS)

        # The hostile headline is text: no script ran, no element was made from it, no link.
        hostile = p.locator("#alert-alert-3")
        await expect(hostile.locator("h2")).to_have_text(HOSTILE_TITLE)
        await expect(hostile.locator("h2 a")).to_have_count(0)
        await expect(hostile.locator("img, script, b, i")).to_have_count(0)
        await expect(hostile.locator(".outlet")).to_have_text("<i>Evil</i> Times")
        assert await p.evaluate("window.pwned") is None
        if os.environ.get("NEWSMON_UPDATE_SCREENSHOT"):
            shutil.copyfile(await _screenshot(p, page.page.context), SCREENSHOT)

        # Filters: a language, then a category, then a headline search.
        await p.select_option("select[name=lang]", "ko")
        await p.click("button[type=submit]")
        await expect(cards).to_have_count(1)
        await expect(cards.first).to_contain_text("쿠르스크")
        await p.goto(base + "/")
        await p.select_option("select[name=category]", "weapons")
        await p.click("button[type=submit]")
        await expect(cards).to_have_count(1)
        await expect(cards.first).to_contain_text("Pokrovsk")
        await p.goto(base + "/?q=treaty")
        await expect(cards).to_have_count(1)
        await expect(cards.first).to_contain_text("ratify")

        # The story page: both outlets that carried story 1, on its timeline.
        await p.goto(base + "/")
        await p.click("#alert-alert-1 .story-link a")
        timeline = p.locator("#timeline li")
        await expect(timeline).to_have_count(2)
        await expect(timeline.nth(0)).to_contain_text("Yonhap")
        await expect(timeline.nth(1)).to_contain_text("KBS")
        await expect(p.locator("#timeline a").first).to_have_attribute("href", first.url)
    assert page.errors == []


async def _screenshot(page: object, context: object) -> Path:
    from playwright.async_api import Page

    assert isinstance(page, Page)
    path = Path(os.environ.get("TMPDIR", "/tmp")) / "newsmon-web-alerts.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
