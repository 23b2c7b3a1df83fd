"""The fetcher's language detector before session 3 (services/fetcher/normalize.py at commit
7bdef3e): script ranges, then short stopword lists for eight Latin languages. Kept here, out of
the service, only as bench_language's baseline, so its figures are re-measured in every run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

from newsmon.fetcher.normalize import normalize_lang

_UKRAINIAN_ONLY: Final = frozenset("іїєґІЇЄҐ")
_RUSSIAN_ONLY: Final = frozenset("ыэъёЫЭЪЁ")
# Languages written in each script, to decide whether a hint fits the text.
_SCRIPT_LANGS: Final[Mapping[str, frozenset[str]]] = {
    "hangul": frozenset({"ko"}),
    "kana": frozenset({"ja"}),
    "han": frozenset({"zh", "ja"}),
    "cyrillic": frozenset({"ru", "uk", "be", "bg", "sr", "mk", "kk", "ky", "mn", "tg"}),
}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Short function-word lists: frequent words of each language. A word two languages share
# ("que", "para") scores for both; detection needs a clear margin, so shared words only
# ever make the verdict more cautious. "a", "de" and "la", common to most of them, are left out.

_STOPWORDS: Final[Mapping[str, frozenset[str]]] = {
    "en": _words(
        "the and of to in is that for on with was as by at from are have has it this be "
        "said will were their not after but an which who its"
    ),
    "de": _words(
        "der die und das ist nicht mit sich den von auf ein eine dem des auch für im sind "
        "wird nach bei wie aus oder über zum zur in kann sein wenn man dass werden noch nur hat"
    ),
    "fr": _words(
        "le les et des du une est pour dans que qui sur pas au aux avec ce cette sont "
        "mais ont été leur par"
    ),
    "es": _words(
        "el los las y del que en por con una para es su al lo como más pero sus fue "
        "han este esta según"
    ),
    "it": _words(
        "il di che è della per una sono gli del nel alla dei con anche le come più "
        "questo stato ha nella"
    ),
    "pt": _words(
        "o os as e do da dos das que em um uma para com não no na é foi pelo pela ao mais seu sua"
    ),
    "pl": _words(
        "i w na z się nie że do jest to jak po przez od za ale dla czy są być jego który oraz"
    ),
    "vi": _words(
        "và của là có trong được cho không các những một với người này đã từ khi đến về như"
    ),
}
_WORD = re.compile(r"[^\W\d_]+")
_SAMPLE_CHARS: Final = 4000  # enough text for a verdict; keeps detection O(1) per article
_MIN_HITS: Final = 3


def _script_counts(sample: str) -> dict[str, int]:
    counts = {"hangul": 0, "kana": 0, "han": 0, "cyrillic": 0, "latin": 0}
    for ch in sample:
        code = ord(ch)
        if code < 0x80:
            if ch.isalpha():
                counts["latin"] += 1
        elif 0xAC00 <= code <= 0xD7AF or 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F:
            counts["hangul"] += 1
        elif 0x3040 <= code <= 0x30FF:
            counts["kana"] += 1
        elif 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF:
            counts["han"] += 1
        elif 0x0400 <= code <= 0x04FF:
            counts["cyrillic"] += 1
        elif ch.isalpha():
            counts["latin"] += 1  # accented Latin letters (é, ł, ơ ...)
    return counts


def _cyrillic_language(sample: str, hint: str | None) -> str:
    if hint in _SCRIPT_LANGS["cyrillic"]:
        return hint
    ukrainian = sum(ch in _UKRAINIAN_ONLY for ch in sample)
    russian = sum(ch in _RUSSIAN_ONLY for ch in sample)
    return "uk" if ukrainian > russian else "ru"


def _stopword_scores(words: Iterable[str]) -> dict[str, int]:
    scores = dict.fromkeys(_STOPWORDS, 0)
    for word in words:
        for lang, stops in _STOPWORDS.items():
            if word in stops:
                scores[lang] += 1
    return scores


def _latin_language(sample: str, hint: str | None) -> str | None:
    scores = _stopword_scores(w.lower() for w in _WORD.findall(sample))
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    (best, top), (_, second) = ranked[0], ranked[1]
    if top >= _MIN_HITS and top >= 2 * second:  # clear evidence beats a (often stale) hint
        return best
    if hint:
        return hint
    return best if top >= 2 and top > second else None


def stopword_language(text: str, hint: str | None = None) -> str | None:
    """ISO 639-1 language of `text`, from its script, then from function words.

    Hangul → ko, kana → ja, Han only → zh, Cyrillic → uk when Ukrainian-only letters
    (і ї є ґ) outnumber Russian-only ones, else ru (a Cyrillic hint such as "bg" wins).
    Latin text is scored against small stopword lists (en de fr es it pt pl vi); with weak
    evidence the hint is returned. None when nothing is known.
    """
    hint = normalize_lang(hint)
    sample = text[:_SAMPLE_CHARS]
    counts = _script_counts(sample)
    letters = sum(counts.values())
    if not letters:
        return hint
    # A script counts when it is at least a fifth of the letters: a Latin brand name in a
    # Korean headline, or one Cyrillic word quoted in English, does not flip the verdict.
    share = {script: n / letters for script, n in counts.items()}
    if share["hangul"] >= 0.2:
        return "ko"
    if share["kana"] >= 0.05 and share["kana"] + share["han"] >= 0.2:
        return "ja"
    if share["han"] >= 0.2:
        return hint if hint in _SCRIPT_LANGS["han"] else "zh"
    if share["cyrillic"] >= 0.2:
        return _cyrillic_language(sample, hint)
    return _latin_language(sample, hint)
