"""Folding and sentence splitting keep offsets into the original text."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st
from newsmon.classifier.normalize import fold, fold_term, is_word_char, sentence_spans


def test_ascii_fast_path_is_lowercase_with_hyphens_as_spaces() -> None:
    folded = fold("Kim Jong-un met PUTIN")
    assert folded.text == "kim jong un met putin"
    assert folded.origin is None


def test_nfkc_and_casefold_for_fullwidth_and_cyrillic() -> None:
    assert fold("ＫＮ－２３ Ракеты").text == "kn 23 ракеты"
    assert fold("Ёлка").text == "елка"


def test_korean_and_japanese_middle_dots_become_spaces() -> None:
    assert fold("북·러 회담").text == "북 러 회담"
    assert fold("ロ・朝首脳").text == "ロ 朝首脳"


def test_expanding_characters_map_back_to_their_origin() -> None:
    text = "ﬁre 170㎜ Straße"
    folded = fold(text)
    assert folded.text == "fire 170mm strasse"
    start = folded.text.index("170mm")
    end = start + len("170mm")
    assert text[folded.to_original(start) : folded.to_original(end)] == "170㎜"


def test_decomposed_accents_compose_and_map_back() -> None:
    text = "Corée du Nord"  # the é is e + combining acute
    text = unicodedata.normalize("NFD", text)
    folded = fold(text)
    assert folded.text == "corée du nord"
    start = folded.text.index("nord")
    assert text[folded.to_original(start) : folded.to_original(start + 4)] == "Nord"


def test_fold_term_collapses_spaces() -> None:
    assert fold_term("  Kim   Jong-Un ") == "kim jong un"


def test_word_chars_exclude_scripts_without_spaces() -> None:
    assert is_word_char("a")
    assert is_word_char("ж")
    assert is_word_char("ệ")
    assert not is_word_char("북")
    assert not is_word_char("朝")
    assert not is_word_char("ロ")
    assert not is_word_char(" ")
    assert not is_word_char("-")


def _sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in sentence_spans(text)]


def test_sentences_respect_abbreviations() -> None:
    text = "U.S. officials said N. Korea sent troops. Gen. Kim spoke! Did he? Yes."
    assert _sentences(text) == [
        "U.S. officials said N. Korea sent troops.",
        "Gen. Kim spoke!",
        "Did he?",
        "Yes.",
    ]


def test_sentences_in_cjk_and_cyrillic() -> None:
    assert _sentences("北朝鮮がロシアに派兵。死傷者が出た。") == [
        "北朝鮮がロシアに派兵。",
        "死傷者が出た。",
    ]
    assert _sentences("朝鲜向俄罗斯派兵！伤亡惨重。") == ["朝鲜向俄罗斯派兵！", "伤亡惨重。"]
    assert _sentences("КНДР отправила войска. Они воюют в Курской области.") == [
        "КНДР отправила войска.",
        "Они воюют в Курской области.",
    ]
    assert _sentences("북한군이 파병됐다. 사상자가 났다.") == [
        "북한군이 파병됐다.",
        "사상자가 났다.",
    ]


def test_line_breaks_end_sentences() -> None:
    assert _sentences("Headline without stop\nBody text here.") == [
        "Headline without stop",
        "Body text here.",
    ]


@given(st.text(max_size=200))
def test_spans_are_ordered_trimmed_and_inside_the_text(text: str) -> None:
    previous_end = 0
    for start, end in sentence_spans(text):
        assert previous_end <= start < end <= len(text)
        assert not text[start].isspace()
        assert not text[end - 1].isspace()
        previous_end = end


@given(st.text(max_size=120))
def test_origin_map_is_monotonic_and_complete(text: str) -> None:
    folded = fold(text)
    indices = [folded.to_original(i) for i in range(len(folded.text) + 1)]
    assert indices == sorted(indices)
    assert indices[-1] == len(text)
    assert all(0 <= i <= len(text) for i in indices)


def test_turkish_dotted_capital_i_folds_to_plain_i() -> None:
    folded = fold("İran ve İHA")
    assert folded.text == "iran ve iha"
    assert folded.to_original(5) == 5


def test_persian_ezafe_sign_is_optional() -> None:
    assert fold_term("کرهٔ شمالی") == fold_term("کره شمالی")


def test_thai_and_indic_word_characters() -> None:
    assert not is_word_char("ร")  # Thai: no spaces between words, no boundary needed
    assert is_word_char("\u093e")  # Devanagari vowel sign: part of the word


def test_an_ellipsis_keeps_every_offset_and_no_word_touches_it() -> None:
    # "…" would lengthen under NFKC ("..."): folded in place to a stand-in, the text keeps
    # its offsets (no origin map, the fast path) and the stand-in is no word character.
    for text in ("Kim visits Moscow…", "Kim … Putin", "Ким в Москве…"):
        folded = fold(text)
        assert folded.origin is None
        assert len(folded.text) == len(text)
        stand_in = folded.text[text.index("…")]
        assert stand_in not in ".… "
        assert not is_word_char(stand_in)
    assert fold("Kim visits Moscow…").text.startswith("kim visits moscow")


def test_an_ellipsis_takes_part_in_no_lexicon_term() -> None:
    from newsmon.classifier.lexicon import load_lexicon

    stand_in = fold("…").text
    assert all(stand_in not in entry.folded for entry in load_lexicon().entries)
