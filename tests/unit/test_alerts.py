from __future__ import annotations

from datetime import UTC, datetime

from newsmon.alerter.alerts import ALERT_CE_TYPE, alert_from, alert_headers
from newsmon.shared.messages import Article, Classified, Evidence, Term

NOW = datetime(2024, 12, 24, 9, 0, tzinfo=UTC)


def classified(article_id: str = "a1") -> Classified:
    art = Article(
        id=article_id,
        feed="nie",
        source="New Indian Express",
        url=f"https://example.org/{article_id}",
        title="North Korean troops suffer losses in Kursk",
        fetched=NOW,
    )
    evidence = Evidence(
        field="title",
        sentence=art.title,
        start=0,
        terms=(Term(term="North Korean", category="dprk_actor", start=0, end=12),),
    )
    return Classified(
        article=art,
        match=True,
        score=0.97,
        categories=("troops",),
        evidence=(evidence,),
        classifier_version="rules-1",
        classified=NOW,
    )


def test_alert_id_is_stable_for_the_same_story() -> None:
    assert alert_from(classified(), now=NOW).alert_id == alert_from(classified(), now=NOW).alert_id
    assert (
        alert_from(classified("a1"), now=NOW).alert_id
        != alert_from(classified("a2"), now=NOW).alert_id
    )


def test_alert_carries_what_matched_and_why() -> None:
    alert = alert_from(classified(), now=NOW)
    assert alert.categories == ("troops",)
    assert alert.evidence[0].terms[0].category == "dprk_actor"
    assert alert.sources[0].source == "New Indian Express"
    assert alert.revision == 1


def test_cloudevents_headers() -> None:
    alert = alert_from(classified(), now=NOW)
    headers = dict(alert_headers(alert))
    assert headers["ce_type"] == ALERT_CE_TYPE.encode()
    assert headers["ce_id"] == f"{alert.alert_id}.r1".encode()
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_time"] == b"2024-12-24T09:00:00+00:00"
    assert headers["content-type"] == b"application/json"
