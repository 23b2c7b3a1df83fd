"""Alert updates: the alert of a grouped story, the Slack update message, webhook routing."""

from __future__ import annotations

import json

from newsmon.alerter.alerts import alert_from
from newsmon.alerter.grouping import StoryBook
from newsmon.notifier.slack import WebhookUrl, build_update_payload, webhooks_for

from tests.support.slack_stub import sample_alert
from tests.unit.test_grouping import item

DEFAULT = WebhookUrl("https://hooks.slack.com/services/T0/B0/default")
TROOPS = WebhookUrl("https://hooks.slack.com/services/T0/B1/troops")
WEAPONS = WebhookUrl("https://hooks.slack.com/services/T0/B2/weapons")


def test_an_update_keeps_the_story_alert_id_and_carries_the_new_copy() -> None:
    from datetime import timedelta

    book = StoryBook(window=timedelta(hours=48), threshold=0.5)
    first = book.assign(item("a1"), story_id_for="a1", alert_id_for="alert-a1")
    book.apply([first.story])
    copy = item("a2", source="Reuters", categories=("casualties",))
    second = book.assign(copy, story_id_for="a2", alert_id_for="alert-a2")
    alert = alert_from(copy, now=copy.classified, story=second.story)
    assert (alert.alert_id, alert.story_id, alert.revision) == ("alert-a1", "a1", 2)
    assert alert.article_id == "a2"
    assert alert.source == "Reuters"
    assert alert.categories == ("troops", "casualties")
    assert [s.article_id for s in alert.sources] == ["a1", "a2"]


def test_update_message_is_short_and_escaped() -> None:
    alert = sample_alert(revision=3, source="<!channel> Daily", article_id="q" * 24)
    payload = build_update_payload(alert)
    body = json.dumps(payload)
    assert "<!channel>" not in body
    assert "&lt;!channel&gt; Daily" in payload["blocks"][0]["text"]["text"]
    assert payload["text"].startswith("newsmon update 3:")
    assert len(payload["blocks"]) == 2


def test_webhooks_by_category_else_default() -> None:
    by_category = {"troops": TROOPS, "weapons": WEAPONS, "casualties": TROOPS}
    routed = webhooks_for(sample_alert(categories=("troops", "casualties")), DEFAULT, by_category)
    assert routed == [("troops", TROOPS)], "one post per distinct webhook"
    both = webhooks_for(sample_alert(categories=("weapons", "troops")), DEFAULT, by_category)
    assert both == [("weapons", WEAPONS), ("troops", TROOPS)]
    assert webhooks_for(sample_alert(categories=("treaty_diplomacy",)), DEFAULT, by_category) == [
        ("default", DEFAULT)
    ]
    assert webhooks_for(sample_alert(categories=("x",)), None, by_category) == []
