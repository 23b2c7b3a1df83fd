"""Language of feed items: the lid.176 model, the declared language as the fallback, and the
per-feed shortcut (services/fetcher/language.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from newsmon.fetcher.language import (
    FeedLanguage,
    detect_language,
    feed_language,
    model_language,
    script_agrees,
)

ENGLISH = "North Korean troops have suffered heavy losses in the Kursk region, officials said"
GERMAN = "Die Regierung hat am Montag mitgeteilt, dass die Soldaten nicht mit der Armee sind"
KOREAN = "북한군, 러시아 쿠르스크에서 대규모 사상자 발생"
RUSSIAN = "Северокорейские военные понесли тяжёлые потери в Курской области"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("북한군, 러시아 쿠르스크에서 대규모 사상자 발생", "ko"),
        ("北朝鮮兵がロシアのクルスク州で多数の死傷者を出した", "ja"),
        ("朝鲜士兵在俄罗斯库尔斯克州伤亡惨重", "zh"),
        ("Северокорейские военные понесли тяжёлые потери в Курской области", "ru"),
        ("Північнокорейські військові зазнали великих втрат у Курській області", "uk"),
        ("North Korean troops have suffered heavy losses in the Kursk region, they said", "en"),
        ("Nordkoreanische Soldaten haben in der Region Kursk schwere Verluste erlitten", "de"),
        ("Les soldats nord-coréens ont subi de lourdes pertes dans la région de Koursk", "fr"),
        ("Los soldados norcoreanos han sufrido bajas en la región de Kursk, según el", "es"),
        ("I soldati nordcoreani hanno subito perdite nella regione di Kursk, secondo il", "it"),
        ("Os soldados norte-coreanos sofreram baixas na região de Kursk, segundo o que", "pt"),
        ("Północnokoreańscy żołnierze ponieśli straty w obwodzie kurskim, jak podaje, który", "pl"),
        ("Binh sĩ Triều Tiên đã chịu thương vong nặng nề trong khu vực Kursk của Nga", "vi"),
    ],
)  # fmt: skip
def test_detect_language(text: str, expected: str) -> None:
    assert detect_language(text, None) == expected


def test_detect_language_uses_hint_when_evidence_is_weak() -> None:
    assert detect_language("Kursk", "en-GB") == "en"
    assert detect_language("Kim Jong Un", None) is None
    assert detect_language("", "ko") == "ko"
    assert detect_language("12345 !!!", None) is None


def test_detect_language_script_beats_a_wrong_hint() -> None:
    assert detect_language("Северокорейские военные в Курской области", "en") == "ru"
    # ... but a Cyrillic hint is trusted for Cyrillic text (Bulgarian is not Russian).
    assert detect_language("Севернокорейски войници в Курска област", "bg") == "bg"


def test_detect_language_strong_evidence_beats_a_stale_hint() -> None:
    text = "Die Regierung hat am Montag mitgeteilt, dass die Soldaten nicht mit der Armee sind"
    assert detect_language(text, "en") == "de"


@given(st.text(), st.one_of(st.none(), st.text(max_size=10)))
def test_detect_language_never_raises(text: str, hint: str | None) -> None:
    result = detect_language(text, hint)
    assert result is None or (len(result) == 2 and result.isalpha())


def test_model_language_reads_iso_639_1_codes_and_a_probability() -> None:
    lang, confidence = model_language(KOREAN)
    assert lang == "ko"
    assert 0.5 <= confidence <= 1.0
    assert model_language("12345 !!!") == (None, 0.0)
    assert model_language("") == (None, 0.0)
    assert model_language("line one\nline two\tand\rmore")[0] is not None  # one line for fastText


@pytest.mark.parametrize(
    ("text", "hint", "agrees"),
    [
        (KOREAN, "ko", True),
        ("삼성전자, Galaxy S25 공개… AI 기능 강화", "ko", True),  # brand names inside Hangul
        (RUSSIAN, "ko", False),
        (RUSSIAN, "ru", True),
        (RUSSIAN, "uk", True),  # the script agrees; Ukrainian vs Russian is the feed's word
        ("北朝鮮兵がロシアのクルスク州で多数の死傷者を出した", "ja", True),
        ("朝鲜士兵在俄罗斯库尔斯克州伤亡惨重", "ja", False),  # Han alone may be Chinese
        ("朝鲜士兵在俄罗斯库尔斯克州伤亡惨重", "zh", True),
        (ENGLISH, "en", True),
        ("Kim Jong-un trifft Präsident Putin", "en", False),  # ä: a counter-signal
        (GERMAN, "de", False),  # Latin languages other than English always go to the model
        (KOREAN, "en", False),
        ("12345", "en", False),
        ("", "ko", False),
    ],
)  # fmt: skip
def test_script_agrees(text: str, hint: str, agrees: bool) -> None:
    assert script_agrees(text, hint) is agrees


def test_feed_shortcut_after_the_model_confirms_the_declared_language() -> None:
    feed = FeedLanguage()
    assert feed.detect(ENGLISH, "en-GB") == "en"  # the model confirms "en"
    # From now on ASCII items of this feed are English without the model: the price is that a
    # German item without umlauts in an English feed reads as English.
    assert feed.detect(GERMAN, "en") == "en"
    # An item in another script still goes to the model.
    assert feed.detect(RUSSIAN, "en") == "ru"


def test_feed_shortcut_is_refused_when_the_model_contradicts_the_declaration() -> None:
    feed = FeedLanguage()
    assert feed.detect(GERMAN, "en") == "de"  # a feed declaring en that writes German
    assert feed.detect(GERMAN, "en") == "de"
    assert feed.detect(ENGLISH, "en") == "en"


def test_feed_shortcut_waits_for_a_confident_verdict() -> None:
    feed = FeedLanguage()
    assert feed.detect("Kursk", "en") == "en"  # unsure: the hint, nothing confirmed
    assert feed.detect(GERMAN, "en") == "de"  # first confident verdict contradicts "en"


def test_feed_shortcut_is_checked_again_now_and_then() -> None:
    feed = FeedLanguage()
    feed.detect(ENGLISH, "en")
    verdicts = [feed.detect(GERMAN, "en") for _ in range(40)]
    # the periodic check sees German and withdraws the shortcut for the items after it
    assert verdicts[0] == "en"
    assert verdicts[-1] == "de"


def test_feed_shortcut_for_hangul() -> None:
    feed = FeedLanguage()
    assert feed.detect(KOREAN, "ko") == "ko"
    assert feed.detect("대북 제재 논의", "ko") == "ko"
    assert feed.detect(RUSSIAN, "ko") == "ru"
    assert feed.detect("", "ko") == "ko"


def test_feed_language_is_remembered_per_feed_name() -> None:
    assert feed_language("test-feed-a") is feed_language("test-feed-a")
    assert feed_language("test-feed-a") is not feed_language("test-feed-b")
