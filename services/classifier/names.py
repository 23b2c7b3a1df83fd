"""Generate lexicon_names.toml: the actors' and places' names in every language CLDR knows.

    python -m newsmon.classifier.names            # print the generated file
    python -m newsmon.classifier.names --write    # rewrite services/classifier/lexicon_names.toml
    python -m newsmon.classifier.names --check    # exit 1 when the committed file is stale

Country names (North Korea, Russia, Ukraine) are CLDR's territory names and the capitals
(Pyongyang, Moscow, Kyiv) CLDR's time-zone exemplar cities, both read through babel from every
locale it ships. CLDR has no people or lesser cities, so Putin, Kim Jong Un, the Kremlin and
Kursk come from PERSON_AND_PLACE_NAMES below (each language's Wikipedia article title).
Each name becomes one or more lexicon terms with the inflected forms its language needs
(see ``terms_for``). A name that a hand-written lexicon file (lexicon.toml,
lexicon_languages.toml) already has is left out, so the hand-written entry (with its notation)
wins and no term is listed twice.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from babel import Locale
from babel import __version__ as babel_version
from babel.core import get_cldr_version
from babel.localedata import locale_identifiers
from newsmon.classifier.lexicon import parse_lexicon
from newsmon.classifier.normalize import fold_term, is_word_char

__all__ = ["generate", "main", "terms_for"]

TARGET = Path(__file__).with_name("lexicon_names.toml")
HAND_WRITTEN = tuple(
    Path(__file__).with_name(name) for name in ("lexicon.toml", "lexicon_languages.toml")
)

# CLDR territory codes and time-zone ids -> lexicon category.
TERRITORIES: Mapping[str, str] = {"KP": "dprk_actor", "RU": "russia_actor", "UA": "front_locations"}
CITIES: Mapping[str, str] = {
    "Asia/Pyongyang": "dprk_actor",
    "Europe/Moscow": "russia_actor",
    "Europe/Kyiv": "front_locations",
    "Europe/Kiev": "front_locations",  # the id before tzdata 2022b; older CLDR data keeps it
}
# A few locales give North Korea a name another locale uses for South Korea; such a name says
# nothing about which Korea is meant, so it is dropped.
_AMBIGUOUS_WITH = "KR"

# Source: the title of the article on each entity in that language's Wikipedia (reached
# through the interlanguage links of en.wikipedia.org/wiki/Vladimir_Putin, /Kim_Jong_Un,
# /Moscow_Kremlin and /Kursk), as of 2026; spellings in common press use added where the
# title uses another transliteration (marked "press").
PERSON_AND_PLACE_NAMES: Mapping[str, Mapping[str, Sequence[str]]] = {
    "russia_leader": {
        "ar": ["بوتين"],
        "bg": ["Путин"],
        "bn": ["পুতিন"],
        "bs": ["Putin"],
        "cs": ["Putin"],
        "el": ["Πούτιν"],
        "es": ["Putin"],
        "et": ["Putin"],
        "fa": ["پوتین"],
        "fi": ["Putin"],
        "he": ["פוטין"],
        "hi": ["पुतिन"],
        "hr": ["Putin"],
        "hu": ["Putyin"],
        "hy": ["Պուտին"],
        "id": ["Putin"],
        "it": ["Putin"],
        "ka": ["პუტინი"],
        "lt": ["Putinas"],
        "lv": ["Putins"],
        "mk": ["Путин"],
        "mr": ["पुतिन"],
        "ms": ["Putin"],
        "pt": ["Putin"],
        "ro": ["Putin"],
        "sk": ["Putin"],
        "sl": ["Putin"],
        "sq": ["Putin"],
        "sr": ["Путин"],
        "sv": ["Putin"],
        "ta": ["புதின்"],
        "th": ["ปูติน"],
        "tr": ["Putin"],
        "ur": ["پوتن", "پیوٹن"],
        "vi": ["Putin"],
    },
    "dprk_leader": {
        "ar": ["كيم جونغ أون", "كيم جونغ اون", "كيم جونج أون"],
        "bg": ["Ким Чен Ун"],
        "bn": ["কিম জং উন"],
        "bs": ["Kim Jong-un"],
        "cs": ["Kim Čong-un"],
        "el": ["Κιμ Γιονγκ Ουν"],
        "es": ["Kim Jong-un"],
        "et": ["Kim Jong-un"],
        "fa": ["کیم جونگ اون"],
        "fi": ["Kim Jong-un"],
        "he": ["קים ג'ונג און"],
        "hi": ["किम जोंग उन"],
        "hr": ["Kim Jong-un"],
        "hu": ["Kim Dzsongun"],
        "id": ["Kim Jong-un"],
        "it": ["Kim Jong-un"],
        "ka": ["კიმ ჩენ ინი"],
        "lt": ["Kim Jong Unas"],
        # Latvian declines the given name too (Kims, Kima, Kimam, Kimu): its case forms.
        "lv": ["Kims Čenuns", "Kima Čenuna", "Kimam Čenunam", "Kimu Čenunu"],
        "mk": ["Ким Џонг Ун"],
        "mr": ["किम जोंग उन"],
        "ms": ["Kim Jong-un"],
        "pt": ["Kim Jong-un"],
        "ro": ["Kim Jong-un"],
        "sk": ["Kim Čong-un", "Kim Čong Un"],
        "sl": ["Kim Džong Un"],
        "sr": ["Ким Џонг Ун", "Kim Džong Un"],
        "sv": ["Kim Jong-un"],
        "ta": ["கிம் ஜொங்-உன்"],
        "th": ["คิม จ็อง-อึน", "คิม จอง-อึน"],
        "tr": ["Kim Jong-un"],
        "ur": ["کم جونگ ان"],
        "vi": ["Kim Jong-un"],
    },
    "russia_actor": {  # the Moscow Kremlin (the seat of the presidency)
        "ar": ["الكرملين"],
        "bg": ["Кремъл"],
        "bn": ["ক্রেমলিন"],
        "bs": ["Kremlj"],
        "cs": ["Kreml"],
        "el": ["Κρεμλίνο"],
        "et": ["Kreml"],
        "fa": ["کرملین"],
        "fi": ["Kreml"],
        "he": ["הקרמלין"],
        "hi": ["क्रेमलिन"],
        "hr": ["Kremlj"],
        "hu": ["Kreml"],
        "id": ["Kremlin"],
        "ka": ["კრემლი"],
        "lt": ["Kremlius"],
        "lv": ["Kremlis"],
        "mk": ["Кремљ"],
        "mr": ["क्रेमलिन"],
        "ro": ["Kremlin"],
        "sk": ["Kremeľ", "Kremľ"],
        "sl": ["Kremelj"],
        "sr": ["Кремљ", "Kremlj"],
        "sv": ["Kreml"],
        "th": ["เครมลิน"],
        "tr": ["Kremlin"],
        "ur": ["کریملن"],
        "vi": ["Điện Kremlin"],
    },
    "front_locations": {  # Kursk, the city and the oblast the troops were sent to
        "ar": ["كورسك"],
        "bg": ["Курск"],
        "bn": ["কুর্স্ক"],
        "bs": ["Kursk"],
        "cs": ["Kursk"],
        "el": ["Κουρσκ"],
        "es": ["Kursk"],
        "et": ["Kursk"],
        "fa": ["کورسک"],
        "fi": ["Kursk"],
        "he": ["קורסק"],
        "hi": ["कुर्स्क"],
        "hr": ["Kursk"],
        "hu": ["Kurszk"],
        "hy": ["Կուրսկ"],
        "id": ["Kursk"],
        "it": ["Kursk"],
        "ka": ["კურსკი"],
        "lt": ["Kurskas"],
        "lv": ["Kurska"],
        "mk": ["Курск"],
        "mr": ["कुर्स्क"],
        "ms": ["Kursk"],
        "pt": ["Kursk"],
        "ro": ["Kursk"],
        "sk": ["Kursk"],
        "sl": ["Kursk"],
        "sq": ["Kursk"],
        "sr": ["Курск"],
        "sv": ["Kursk"],
        "ta": ["குர்ஸ்க்"],
        "th": ["คูสค์", "เคิร์สก์"],
        "tr": ["Kursk"],
        "ur": ["کرسک"],
        "vi": ["Kursk"],
    },
}

# How each language inflects a name (ISO 639 codes as CLDR uses them).
# Case endings replace the final vowel (Slavic, Baltic, Finnic, Hungarian, Georgian, Greek,
# Albanian; Romanian's enclitic article too: Россия/России, Rusko/Ruska, Krievija/Krievijā,
# Venäjä/Venäjän, რუსეთი/რუსეთის, Rusia/Rusiei, Phenian/Phenianul):
# the term is the name without that vowel, open at the end.
_STRIP_VOWEL = frozenset(
    [
        "be",
        "bg",
        "ro",
        "bs",
        "cs",
        "dsb",
        "hr",
        "hsb",
        "mk",
        "pl",
        "rue",
        "ru",
        "sk",
        "sl",
        "sr",
        "uk",
        "lt",
        "lv",
        "ltg",
        "fi",
        "et",
        "hu",
        "ka",
        "el",
        "sq",
        "se",
        "smn",
    ]
)
# Suffixes follow the whole name (Turkic, Armenian, Mongolian, Basque, Indic postpositions
# written together: Rusya'da, Ռուսաստանի, रशियाने): the name, open at the end.
_OPEN_END = frozenset(
    [
        "tr",
        "az",
        "kk",
        "ky",
        "uz",
        "tk",
        "tt",
        "ba",
        "hy",
        "mn",
        "eu",
        "hi",
        "mr",
        "bn",
        "gu",
        "pa",
        "ne",
        "ta",
        "te",
        "ml",
        "kn",
        "or",
        "si",
        "as",
    ]
)
# One-letter proclitics written together with the next word (Arabic wa-/bi-/li-/fa-/ka-,
# Hebrew ve-/be-/le-/mi-/she-/ke-): the name again with each of them in front.
_PROCLITICS: Mapping[str, tuple[str, ...]] = {
    "ar": ("و", "ب", "ل", "ف", "ك", "وب", "ول"),
    "he": ("ו", "ב", "ל", "מ", "ש", "כ", "וב", "ול", "ומ"),
}
# The adjective in "North Korea" declines too: its feminine endings (nominative first).
_ADJECTIVE_ENDINGS: Mapping[str, tuple[str, ...]] = {
    "ru": ("ая", "ой", "ую", "ою"),
    "be": ("ая", "ай", "ую", "аю"),
    "uk": ("а", "ої", "ій", "у", "ою"),
    "sr": ("а", "е", "ој", "у", "ом"),
    "mk": ("а",),
    "bg": ("а",),
    "hr": ("a", "e", "oj", "u", "om"),
    "bs": ("a", "e", "oj", "u", "om"),
    "sl": ("a", "e", "i", "o"),
    "cs": ("á", "é", "ou"),
    "sk": ("á", "ej", "ú", "ou"),
    "el": ("α", "ας"),
}
_VOWELS = frozenset("aeiouyáéíóúýěąęåäöüõőűāēīūаеиоуыэюяєіїьъაეიოუαεηιουωάέήίόύώ")
_MIN_STEM = 4  # shorter stems start too many unrelated words ("rus*", "kor*")
_MIN_SPACED = 4  # shorter Latin/Greek/Cyrillic names ("Rus", "Nga") are left to lexicon.toml
# Names that are also everyday words of a big news language: "risi" (Italian: rice), "lasa"
# (a Spanish and Italian verb form). The languages that use them as the country keep missing
# them rather than the whole lexicon firing on rice.
_EVERYDAY_WORDS = frozenset({"risi", "lasa"})


def _language_key(identifier: str) -> str:
    """CLDR locale id -> lexicon language key: "sr_Latn_BA" -> "sr-Latn", "de_AT" -> "de"."""
    parts = identifier.split("_")
    script = next((p for p in parts[1:] if len(p) == 4 and p.isalpha()), None)
    return f"{parts[0]}-{script}" if script else parts[0]


def _stem(word: str, lang: str) -> str | None:
    """The word without its case ending, or None when too little would be left."""
    if lang in ("lt", "lv", "ltg") and word.endswith("s") and len(word) > _MIN_STEM + 1:
        word = word[:-1]  # Baltic nominative -s (Putins, Kremlius, Kurskas)
    if word and word[-1] in _VOWELS:
        word = word[:-1]
        if word and word[-1] in _VOWELS and lang in ("lt", "lv", "ltg"):
            word = word[:-1]  # Kremlius -> Kreml
    return word if len(word) >= _MIN_STEM else None


def _adjective_forms(word: str, lang: str) -> list[str]:
    endings = _ADJECTIVE_ENDINGS.get(lang, ())
    if endings and word.endswith(endings[0]):
        root = word[: -len(endings[0])]
        return [root + ending for ending in endings]
    return [word]


def terms_for(name: str, lang: str) -> list[str]:
    """Lexicon terms for one name in one language (the bare language code: "sr", not "sr-Latn")."""
    folded = fold_term(name)
    if not folded or any(mark in folded for mark in "*^$"):
        return []
    spaced = all(is_word_char(c) or c in " '." for c in folded)
    short = len(folded) < _MIN_SPACED and all(ord(c) < 0x0530 for c in folded)  # Latin...Armenian
    if (spaced and short) or folded in _EVERYDAY_WORDS:
        return []
    words = folded.split(" ")
    if lang in _STRIP_VOWEL and is_word_char(words[-1][-1]):
        stem = _stem(words[-1], lang)
        heads = _adjective_forms(words[0], lang) if len(words) > 1 else [""]
        middle = " ".join(words[1:-1])
        # A short last word ("Kim Jong-un") keeps its vowel but still takes endings
        # ("Kim Jong-una"); a one-word name too short to stem stays exact ("Rusko" is fine).
        tail = f"{stem}*" if stem else (f"{words[-1]}*" if len(words) > 1 else words[-1])
        return [" ".join(w for w in (head, middle, tail) if w) for head in heads]
    if lang in _OPEN_END and is_word_char(folded[-1]):
        return [f"{folded}*"]
    return [folded, *(p + folded for p in _PROCLITICS.get(lang, ()))]


def _cldr_names() -> Iterator[tuple[str, str, str]]:
    """(category, language key, name) from every CLDR locale babel ships."""
    locales = [Locale.parse(i) for i in locale_identifiers() if i != "root"]
    south = {loc.territories.get(_AMBIGUOUS_WITH) for loc in locales} - {None}
    for identifier, loc in zip(
        (i for i in locale_identifiers() if i != "root"), locales, strict=True
    ):
        key = _language_key(identifier)
        for code, category in TERRITORIES.items():
            name = loc.territories.get(code)
            if name and name not in south:
                yield category, key, name
        for zone, category in CITIES.items():
            city = loc.time_zones.get(zone, {}).get("city")
            if city:
                yield category, key, city


def _cited_names() -> Iterator[tuple[str, str, str]]:
    for category, by_lang in PERSON_AND_PLACE_NAMES.items():
        for lang, names in by_lang.items():
            for name in names:
                yield category, lang, name


def _collect(
    sources: Iterable[tuple[str, str, str]], taken: Mapping[str, str]
) -> tuple[dict[str, dict[str, list[str]]], list[str]]:
    """category -> language key -> sorted terms; and notes on names left out."""
    table: defaultdict[str, defaultdict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    owner = dict(taken)
    notes: set[str] = set()
    for category, key, name in sources:
        for term in terms_for(name, key.split("-")[0]):
            core = term.rstrip("*")
            held = owner.get(core)
            if held is None:
                owner[core] = category
            elif held != category:
                notes.add(f"{key} {term!r} ({category}): already a {held} term")
                continue
            elif core in taken:
                continue  # a hand-written file has it
            table[category][key].add(term)
    cleaned = {
        c: {k: sorted(v) for k, v in sorted(langs.items())} for c, langs in sorted(table.items())
    }
    return cleaned, sorted(notes)


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def generate() -> str:
    """The text of lexicon_names.toml (deterministic for one babel/CLDR version)."""
    hand = parse_lexicon(*(path.read_text(encoding="utf-8") for path in HAND_WRITTEN))
    taken = {e.folded: e.category for e in hand}
    cited = list(_cited_names())
    table, notes = _collect([*_cldr_names(), *cited], taken)
    lines = [
        "# GENERATED by `python -m newsmon.classifier.names --write` (make lexicon): do not edit.",
        f"# Source: Unicode CLDR {get_cldr_version()} through babel {babel_version}: territory",
        "# names of KP, RU, UA and exemplar cities of Asia/Pyongyang, Europe/Moscow, Europe/Kyiv",
        "# in every locale; Putin, Kim Jong Un, the Kremlin and Kursk from the Wikipedia titles",
        "# listed in names.py. Inflected forms and the notation: see names.py and lexicon.toml.",
        "# Names the hand-written files already list are left out (their entry wins).",
        "# Left out as well:",
        *(f"#   {note}" for note in notes),
        "",
    ]
    for category, by_lang in table.items():
        lines.append(f"[{category}]")
        for key, terms in by_lang.items():
            lines.append(f"{key} = [{', '.join(_toml_string(t) for t in terms)}]")
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help=f"rewrite {TARGET.name}")
    group.add_argument("--check", action="store_true", help=f"exit 1 if {TARGET.name} is stale")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        if TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET} is stale: run `make lexicon`", file=sys.stderr)
            return 1
        return 0
    if args.write:
        TARGET.write_text(text, encoding="utf-8")
        print(f"wrote {TARGET}", file=sys.stderr)
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
