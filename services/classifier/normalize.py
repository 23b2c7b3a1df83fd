"""Text normalization and sentence splitting that keep offsets into the original text.

Matching runs on a folded copy of the text (NFKC, case folding, a few one-to-one character
folds); evidence must point into the text as published, so every folded string comes with a
map from its indices back to the original ones.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

__all__ = [
    "Folded",
    "fold",
    "fold_term",
    "is_word_char",
    "sentence_spans",
]

# Folds applied after NFKC + casefold (one-to-one, but for the dropped marks below). Hyphens,
# dashes and the middle dots that join pairs in Korean/Japanese headlines ("북·러", "ロ・朝")
# all become a space, so "Kim Jong-un" and "Kim Jong Un" are one term; curly apostrophes
# become "'"; Russian "ё" is written "е" as often as not.
_ONE_TO_ONE: tuple[tuple[str, str], ...] = (
    *((dash, " ") for dash in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212-"),
    *((dot, " ") for dot in "\u00b7\u30fb\u2022"),
    *((quote, "'") for quote in "\u2019\u2018\u02bc`"),
    ("\u0451", "\u0435"),
    # Turkish capital "İ" (İran, İHA) case-folds to "i" + combining dot above; no precomposed
    # letter is left with a bare U+0307 after NFKC, so dropping it restores the plain "i".
    ("\u0307", ""),
    # Persian ezafe on a final heh ("کرهٔ شمالی" = "کره شمالی"): optional in print, so it is
    # dropped; U+0654 is left bare after NFKC only where no precomposed letter exists.
    ("\u0654", ""),
    ("\u06c0", "\u0647"),
    *((space, " ") for space in "\u00a0\t\n\r"),
)


# The folds an ASCII text can need (most feed items are ASCII: no need to look for the rest).
_ONE_TO_ONE_ASCII = tuple((old, new) for old, new in _ONE_TO_ONE if old.isascii())


def _one_to_one(text: str, folds: tuple[tuple[str, str], ...] = _ONE_TO_ONE) -> str:
    # A chain of str.replace beats str.translate with a dict severalfold on long texts.
    for old, new in folds:
        if old in text:
            text = text.replace(old, new)
    return text


# Characters that NFKC may merge with the character before them: combining marks, conjoining
# and compatibility Hangul jamo, kana voicing marks (also half-width ones). Without any of
# them, NFKC + casefold can only keep or lengthen each character.
_MAY_COMPOSE = re.compile(
    "[\u0300-\u036f\u0483-\u0489\u1100-\u11ff\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff"
    "\u3099-\u309c\u3131-\u318e\ua960-\ua97f\ud7b0-\ud7ff\ufe20-\ufe2f\uff65-\uff9f]"
)


@dataclass(frozen=True, slots=True)
class Folded:
    """A folded copy of a text; ``origin[i]`` is the original index of folded character ``i``.

    ``origin`` has one extra entry (the original length) so that an exclusive end maps too.
    ``origin`` is None when the fold kept every character in place (the common case).
    """

    text: str
    origin: tuple[int, ...] | None

    def to_original(self, index: int) -> int:
        return index if self.origin is None else self.origin[index]


def _fold_chars(text: str) -> str:
    return _one_to_one(unicodedata.normalize("NFKC", text).casefold())


def fold_term(term: str) -> str:
    """Fold a lexicon term exactly as texts are folded (so both meet in the automaton)."""
    return " ".join(_fold_chars(term).split())


# "…" (U+2026), the one compatibility character common in feed text (a summary cut short): NFKC
# makes it "...", which lengthens the text and sent every such text down the slow
# offset-mapping path (_fold_clusters), an English one included. Before folding it becomes one
# ASCII control character instead, in place: like "..." it is no word character, no letter or
# digit, and in no lexicon term (terms are printable), so it takes part in no match and every
# boundary rule sees it as it saw ".". Development set: 141 of 1,736 titles and summaries.
_ELLIPSIS = "\u2026"
_ELLIPSIS_STAND_IN = "\x1f"


def fold(text: str) -> Folded:
    """NFKC + casefold + one-to-one folds, with a map back to the original offsets."""
    if _ELLIPSIS in text:
        text = text.replace(_ELLIPSIS, _ELLIPSIS_STAND_IN)
    if text.isascii():
        return Folded(_one_to_one(text.lower(), _ONE_TO_ONE_ASCII), None)
    folded = _fold_chars(text)
    if len(folded) == len(text) and _MAY_COMPOSE.search(text) is None:
        # Nothing could shrink, and the total did not grow: every character kept its place.
        return Folded(folded, None)
    return _fold_clusters(text)


_NON_STARTER = re.compile("[\u1160-\u11ff\ud7b0-\ud7ff\u314f-\u3163\u3099-\u309c\uff9e\uff9f]")


def _is_cluster_start(char: str) -> bool:
    """False for characters that NFKC may merge into the one before them."""
    return unicodedata.combining(char) == 0 and _NON_STARTER.match(char) is None


def _fold_clusters(text: str) -> Folded:
    """Slow path: find the few characters that change length by halving, fold the rest whole."""
    out: list[str] = []
    origin: list[int] = []
    _fold_range(text, 0, len(text), out, origin)
    origin.append(len(text))
    return Folded("".join(out), tuple(origin))


def _fold_range(text: str, lo: int, hi: int, out: list[str], origin: list[int]) -> None:
    piece = text[lo:hi]
    folded = _fold_chars(piece)
    if len(folded) == hi - lo and _MAY_COMPOSE.search(piece) is None:
        out.append(folded)
        origin.extend(range(lo, hi))
        return
    if hi - lo > 16:
        mid = (lo + hi) // 2
        while mid < hi and not _is_cluster_start(text[mid]):
            mid += 1  # never split a character from the marks that compose with it
        if mid < hi:
            _fold_range(text, lo, mid, out, origin)
            _fold_range(text, mid, hi, out, origin)
            return
    _fold_each_cluster(text, lo, hi, out, origin)


def _fold_each_cluster(text: str, lo: int, hi: int, out: list[str], origin: list[int]) -> None:
    """Fold each starter with its trailing marks, mapping the outputs to the starter."""
    start = lo
    for i in range(lo + 1, hi + 1):
        if i < hi and not _is_cluster_start(text[i]):
            continue
        piece = _fold_chars(text[start:i])
        out.append(piece)
        origin.extend([start] * len(piece))
        start = i


def _is_unspaced(char: str) -> bool:
    """Scripts written without spaces between words (or, in Korean, with particles glued on)."""
    code = ord(char)
    return (
        0x0E00 <= code <= 0x0EFF  # Thai, Lao
        or 0x1000 <= code <= 0x109F  # Myanmar
        or 0x1100 <= code <= 0x11FF
        or 0x1780 <= code <= 0x17FF  # Khmer
        or 0x2E80 <= code <= 0x9FFF
        or 0xA960 <= code <= 0xA97F
        or 0xAC00 <= code <= 0xD7FF
        or 0xF900 <= code <= 0xFAFF
        or 0xFF66 <= code <= 0xFFDC
        or code >= 0x20000
    )


# Vowel signs and viramas of Indic scripts (and other combining marks that survive NFKC) are
# part of the word they sit in: without this, "रूस" (Russia) would match inside "बेलारूस"
# (Belarus) after its vowel sign "ा".
_WORD_MARKS = frozenset({"Mn", "Mc"})


def is_word_char(char: str) -> bool:
    """True for letters/digits (and combining marks) of scripts that separate words with spaces.

    Hangul, kana, Han, Thai, Lao, Khmer and Myanmar characters are never word characters here:
    Korean glues particles to nouns and the others use no spaces between words, so their terms
    match inside longer runs.
    """
    if char.isascii():
        return char.isalnum()
    return _is_non_ascii_word_char(char)


@functools.lru_cache(maxsize=8192)
def _is_non_ascii_word_char(char: str) -> bool:
    # Cached: boundary checks ask about the same few hundred characters over and over.
    if _is_unspaced(char):
        return False
    return char.isalnum() or unicodedata.category(char) in _WORD_MARKS


# Candidate sentence ends: Latin/Cyrillic terminators followed by space or end (with closing
# quotes/brackets), CJK full stops anywhere, and line breaks.
# Written as one character class first, then the branch its character picks (by lookbehind):
# `re` skips ahead with a leading class, but tries every branch at every position when the
# pattern starts with alternatives (3-4x slower; the same matches, also on fuzzed input).
_SENTENCE_END = re.compile(
    r"[.!?…。！？\n](?:(?<=[.!?…])[.!?…]*[\"'»”’)\]]*(?=\s|$)"
    r"|(?<=[。！？])[。！？]*[」』”）)]*|(?<=\n)\s*)",
)


# "U.S.", "N. Korea", "Gen. Kim", "No. 2": a period after these does not end a sentence.
def _ends_with_abbreviation(text: str, dot: int) -> bool:
    head = text[max(0, dot - 12) : dot]
    word = head.rsplit(maxsplit=1)[-1] if head.strip() else ""
    if not word:
        return False
    if len(word) == 1 and word.isalpha():
        return True
    if "." in word and all(len(part) <= 1 for part in word.split(".")):
        return True  # "U.S", "U.N", "z.B"
    return word.rstrip(".") in _ABBREVIATIONS


# Words after which a period does not end a sentence (titles, months, Polish/Russian ranks).
_ABBREVIATION_LIST = (
    "Mr Mrs Ms Dr Gen Lt Col Maj Sgt Capt Adm St No vs Jan Feb Mar Apr Jun Jul Aug Sep Sept "
    "Oct Nov Dec Rep Sen Gov Prof Inc Corp Co etc Nr nr gen płk ppłk mjr bzw ca Mme Mgr Sr "
    "Sra Sig Dott ген им тыс млн млрд ст ул гг"
)
_ABBREVIATIONS = frozenset(_ABBREVIATION_LIST.split())


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Split into sentences; returns (start, end) offsets into ``text``, whitespace trimmed."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        end = m.end()
        first = m.group()[0]
        if first == "." and _ends_with_abbreviation(text, m.start()):
            continue
        _append_trimmed(text, start, end, spans)
        start = end
    _append_trimmed(text, start, len(text), spans)
    return spans


def _append_trimmed(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    # str.strip() removes exactly the characters for which str.isspace() is true, in C.
    piece = text[start:end]
    trimmed = piece.lstrip()
    start += len(piece) - len(trimmed)
    trimmed = trimmed.rstrip()
    if trimmed:
        spans.append((start, start + len(trimmed)))
