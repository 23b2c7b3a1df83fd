from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from newsmon.shared.messages import (
    Article,
    Classified,
    MessageDecodeError,
    decode,
    encode,
    stable_id,
)

FETCHED = datetime(2024, 12, 24, 8, 30, tzinfo=UTC)


def article(**changes: object) -> Article:
    fields: dict[str, object] = {
        "id": "a1",
        "feed": "nie",
        "source": "New Indian Express",
        "url": "https://example.org/a1",
        "title": "Title",
        "fetched": FETCHED,
    }
    fields.update(changes)
    return Article.model_validate(fields)


def test_article_round_trips_through_json() -> None:
    original = article(summary="Lede", lang="en", tags=("world",))
    assert decode(Article, encode(original)) == original


def test_encoded_article_names_its_schema() -> None:
    assert b'"schema":"newsmon.article.v1"' in encode(article())


def test_times_are_normalized_to_utc() -> None:
    seoul = timezone(timedelta(hours=9))
    a = article(published=datetime(2024, 12, 24, 17, 30, tzinfo=seoul))
    assert a.published == datetime(2024, 12, 24, 8, 30, tzinfo=UTC)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="UTC offset"):
        article(fetched=datetime(2024, 12, 24, 8, 30))


def test_unknown_fields_from_newer_producers_are_ignored() -> None:
    payload = encode(article())[:-1] + b',"added_later":1}'
    assert decode(Article, payload).id == "a1"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (None, "empty message"),
        (b"not json", "Article"),
        (b'{"id": "x"}', "Article: "),
        (b"\xff\xfe", "Article"),
    ],
)
def test_poison_payloads_raise_one_clear_error(payload: bytes | None, expected: str) -> None:
    with pytest.raises(MessageDecodeError, match=expected):
        decode(Article, payload)


def test_classified_score_must_be_a_probability() -> None:
    with pytest.raises(ValueError, match="score"):
        Classified(
            article=article(), match=True, score=1.5, classifier_version="v", classified=FETCHED
        )


def test_stable_id_is_deterministic_and_separates_parts() -> None:
    assert stable_id("a", "b") == stable_id("a", "b")
    assert stable_id("a", "b") != stable_id("ab")
    assert len(stable_id("x")) == 24
