"""The lexicon file: validation with clear messages, coverage, and matching rules."""

from __future__ import annotations

import tomllib
from importlib import resources

import pytest
from newsmon.classifier.lexicon import (
    CATEGORIES,
    LexiconError,
    build_lexicon,
    load_lexicon,
    parse_lexicon,
)
from newsmon.classifier.normalize import fold

REQUIRED_LANGS = {"en", "ko", "ja", "zh", "ru", "uk", "de", "fr", "pl", "vi", "es", "it"}


def _packaged() -> dict[str, object]:
    text = resources.files("newsmon.classifier").joinpath("lexicon.toml").read_text("utf-8")
    return tomllib.loads(text)


def test_packaged_lexicon_loads_and_is_versioned() -> None:
    lexicon = load_lexicon()
    assert lexicon.version.startswith("lex-")
    assert len(lexicon.version) == 12
    assert len(lexicon.entries) > 1000


@pytest.mark.parametrize(
    "category",
    [
        "dprk_actor",
        "russia_actor",
        "troops",
        "casualties",
        "weapons",
        "tech_transfer",
        "treaty_diplomacy",
        "front_locations",
    ],
)
def test_core_categories_cover_the_required_languages(category: str) -> None:
    table = _packaged()[category]
    assert isinstance(table, dict)
    langs = {key.split("@")[0] for key in table}
    missing = REQUIRED_LANGS - langs
    assert not missing, f"{category} lacks {sorted(missing)}"


# Issue [12]: topic terms for these languages, in lexicon_languages.toml (or lexicon.toml).
ISSUE_12_LANGS = {
    *[
        "ar",
        "hi",
        "mr",
        "fa",
        "tr",
        "bg",
        "sr",
        "hr",
        "bs",
        "sk",
        "cs",
        "lv",
        "lt",
        "et",
        "ka",
        "ro",
        "hu",
        "es",
        "pt",
        "it",
        "id",
        "vi",
        "th",
    ],
}


@pytest.mark.parametrize("category", ["troops", "casualties", "weapons", "treaty_diplomacy"])
def test_topic_categories_cover_the_issue_12_languages(category: str) -> None:
    langs: set[str] = set()
    for name in ("lexicon.toml", "lexicon_languages.toml"):
        text = resources.files("newsmon.classifier").joinpath(name).read_text("utf-8")
        table = tomllib.loads(text).get(category, {})
        langs |= {key.split("@")[0] for key in table}
    missing = ISSUE_12_LANGS - langs
    assert not missing, f"{category} lacks {sorted(missing)}"


def test_every_category_in_the_file_is_known_and_documented() -> None:
    text = resources.files("newsmon.classifier").joinpath("lexicon.toml").read_text("utf-8")
    header = text.split("[meta]")[0]
    for category in set(_packaged()) - {"meta"}:
        assert category in CATEGORIES
        assert f"#   {category}" in header, f"{category} is not described in the header"


def _scan(text: str) -> list[tuple[str, str]]:
    lexicon = load_lexicon()
    folded = fold(text)
    return [(folded.text[h.start : h.end], h.category) for h in lexicon.scan(folded.text)]


def test_word_boundaries_for_latin_and_cyrillic() -> None:
    assert ("russia", "russia_actor") in _scan("Russia")
    assert ("russian", "russia_actor") in _scan("Russian troops")
    assert not [h for h in _scan("Belorussia Prussian") if h[1] == "russia_actor"]
    assert ("россией", "russia_actor") in _scan("вместе с Россией")
    assert not [h for h in _scan("скрфы") if h[1] == "russia_actor"]


def test_masks_hide_terms_inside_longer_expressions() -> None:
    assert not [h for h in _scan("白俄罗斯总统") if h[1] == "russia_actor"]
    assert ("俄罗斯", "russia_actor") in _scan("俄罗斯总统")
    assert not [h for h in _scan("朝鲜半岛局势") if h[1] == "dprk_actor"]


def test_script_gated_abbreviations() -> None:
    # Korean headline 北 = North Korea; in Chinese 北 is just "north".
    assert ("北", "dprk_actor") in _scan("北, 미사일 발사")
    assert not [h for h in _scan("北部地区") if h[1] == "dprk_actor"]
    # Japanese 露 = Russia, but not inside 披露 ("to unveil").
    assert ("露", "russia_actor") in _scan("露が北朝鮮に技術を供与")
    assert not [h for h in _scan("金正恩氏が新型ミサイルを披露した") if h[1] == "russia_actor"]


def test_hits_of_stems_cover_the_whole_word() -> None:
    assert ("troops", "troops") in _scan("troops")
    assert ("курской", "front_locations") in _scan("в Курской области")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[nonsense]\nen = ['x']", "unknown categories"),
        ("[troops]\nen = 'soldier'", r"\[troops\]\.en: must be a list"),
        ("[troops]\nen = ['sol*dier']", r"\[troops\]\.en\[0\].*'\*'"),
        ("[troops]\nen = ['']", r"\[troops\]\.en\[0\]: a term must be a non-empty string"),
        ("[troops]\nen = [3]", r"\[troops\]\.en\[0\]"),
        ("[troops]\nEnglish = ['soldier']", r"\[troops\]\.English: language key"),
        ("[troops]\n'ko@latin' = ['x']", r"@hangul or @kana"),
        (
            "[troops]\nen = ['arms']\n[weapons]\nde = ['Arms']",
            r"\[weapons\]\.de\[0\] 'Arms' folds to 'arms', already in category 'troops'",
        ),
        ("[troops]\nen = ['a'", "not valid TOML"),
        ("[troops]\nen = ['*^x']", "allowed only at the start or end"),
    ],
)
def test_validation_errors_name_the_entry(text: str, message: str) -> None:
    with pytest.raises(LexiconError, match=message):
        parse_lexicon(text)


def test_same_term_in_two_languages_of_one_category_is_merged() -> None:
    entries = parse_lexicon("[troops]\nen = ['soldat']\nfr = ['soldat*']")
    assert len(entries) == 1
    assert entries[0].open_right


def test_build_lexicon_version_follows_the_text() -> None:
    a = build_lexicon("[troops]\nen = ['soldier']")
    b = build_lexicon("[troops]\nen = ['soldiers']")
    assert a.version != b.version
