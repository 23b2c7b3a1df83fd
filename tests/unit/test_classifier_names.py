"""The generated names (lexicon_names.toml): committed output equals the generator's, and a
sample per script is found in text, with its case endings."""

from __future__ import annotations

import pytest
from newsmon.classifier.lexicon import load_lexicon
from newsmon.classifier.names import TARGET, generate, terms_for
from newsmon.classifier.normalize import fold


def test_committed_names_equal_the_generators_output() -> None:
    assert TARGET.read_text(encoding="utf-8") == generate(), (
        "services/classifier/lexicon_names.toml is stale (lexicon.toml, names.py or babel's "
        "CLDR changed): run `make lexicon`"
    )


def _categories(text: str) -> dict[str, str]:
    folded = fold(text).text
    return {folded[h.start : h.end]: h.category for h in load_lexicon().scan(folded)}


@pytest.mark.parametrize(
    ("script", "text", "expected"),
    [
        ("Latin", "vojáci Severní Koreje v Rusku", {"severní koreje", "rusku"}),
        ("Latin", "Ziemeļkorejas karavīri Krievijā", {"ziemeļkorejas", "krievijā"}),
        ("Latin", "Šiaurės Korėjos kariai Rusijoje", {"šiaurės korėjos", "rusijoje"}),
        ("Latin", "vojnici Sjeverne Koreje u Rusiji", {"sjeverne koreje", "rusiji"}),
        ("Latin", "Észak-Korea katonái Oroszországban", {"észak korea", "oroszországban"}),
        ("Cyrillic", "войници от Северна Корея в Русия", {"северна корея", "русия"}),
        ("Cyrillic", "војници Северне Кореје у Русији", {"северне кореје", "русији"}),
        ("Arabic", "جنود كوريا الشمالية في روسيا وأوكرانيا", {"كوريا الشمالية", "روسيا"}),
        ("Arabic", "بين بيونغ يانغ وموسكو", {"بيونغ يانغ", "وموسكو"}),
        ("Devanagari", "उत्तर कोरिया के सैनिक रूस में", {"उत्तर कोरिया", "रूस"}),
        ("Devanagari", "उत्तर कोरियाने रशियाला सैनिक पाठवले", {"उत्तर कोरियाने", "रशियाला"}),
        ("Georgian", "ჩრდილოეთ კორეის ჯარისკაცები რუსეთში", {"ჩრდილოეთ კორეის", "რუსეთში"}),
        ("Thai", "ทหารเกาหลีเหนือในรัสเซีย", {"เกาหลีเหนือ", "รัสเซีย"}),
        ("Hangul", "북한군 러시아 파병", {"러시아"}),
        ("CJK", "朝鲜向俄罗斯派兵", {"朝鲜", "俄罗斯"}),
    ],
)
def test_generated_names_match_in_every_script(script: str, text: str, expected: set[str]) -> None:
    found = _categories(text)
    assert expected <= set(found), f"{script}: {found}"
    assert {found[t] for t in expected} <= {"dprk_actor", "russia_actor", "front_locations"}


@pytest.mark.parametrize(
    "text", ["बेलारूस के राष्ट्रपति", "Bjelorusija i Poljska", "Baltkrievijas prezidents"]
)
def test_belarus_is_not_russia(text: str) -> None:
    assert "russia_actor" not in _categories(text).values()


def test_inflection_rules() -> None:
    assert terms_for("Rusija", "lt") == ["rusij*"]
    assert terms_for("Kremlius", "lt") == ["kreml*"]
    assert terms_for("Sjeverna Koreja", "hr") == [
        "sjeverna korej*",
        "sjeverne korej*",
        "sjevernoj korej*",
        "sjevernu korej*",
        "sjevernom korej*",
    ]
    assert terms_for("Rusya", "tr") == ["rusya*"]
    assert terms_for("روسيا", "ar")[:3] == ["روسيا", "وروسيا", "بروسيا"]
    assert terms_for("Rus", "tr") == []  # too short to be safe in Latin script
