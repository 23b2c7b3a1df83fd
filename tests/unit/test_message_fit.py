"""Making a message fit a topic's size limit: text cut in order, flagged, never invalid."""

from __future__ import annotations

from datetime import UTC, datetime

from newsmon.shared.messages import (
    Alert,
    Article,
    Classified,
    Evidence,
    decode,
    encode,
    fit_alert,
    fit_classified,
)

T = datetime(2025, 2, 3, 8, 0, tzinfo=UTC)


def _classified(text: str, summary: str = "lede", title: str = "headline") -> Classified:
    article = Article(
        id="a", feed="f", source="s", url="https://x.example/a", title=title,
        summary=summary, text=text, fetched=T,
    )  # fmt: skip
    evidence = tuple(Evidence(field="summary", sentence=f"sentence {i}", start=0) for i in range(5))
    return Classified(
        article=article, match=True, score=0.9, evidence=evidence,
        classifier_version="t", classified=T,
    )  # fmt: skip


def test_a_message_that_fits_is_unchanged() -> None:
    message = _classified("short")
    assert fit_classified(message, 10_000) == encode(message)


def test_full_text_is_cut_first_and_flagged() -> None:
    message = _classified('Пхеньян "quoted" ' * 2_000, summary="kept lede")
    value = fit_classified(message, 5_000)
    assert value is not None
    assert len(value) <= 5_000
    fitted = decode(Classified, value)
    assert fitted.trimmed
    assert fitted.article.summary == "kept lede"
    assert message.article.text.startswith(fitted.article.text)
    assert len(fitted.evidence) == 5


def test_summary_then_evidence_follow_when_text_is_not_enough() -> None:
    message = _classified("", summary="x" * 3_000)
    value = fit_classified(message, 1_000)
    assert value is not None
    assert len(value) <= 1_000
    fitted = decode(Classified, value)
    assert fitted.trimmed
    assert len(fitted.article.summary) < 3_000


def test_a_headline_over_the_limit_cannot_be_made_to_fit() -> None:
    assert fit_classified(_classified("text", title="h" * 5_000), 2_000) is None


def test_alert_summary_is_cut_and_flagged() -> None:
    alert = Alert(
        alert_id="al", story_id="st", article_id="a", title="t", url="u", source="s", feed="f",
        summary="y" * 4_000, score=0.5, classifier_version="t", fetched=T, classified=T,
        alerted=T,
    )  # fmt: skip
    value = fit_alert(alert, 1_500)
    assert value is not None
    assert len(value) <= 1_500
    assert decode(Alert, value).trimmed
