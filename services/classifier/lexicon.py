"""The multilingual lexicon: loading, validation and one Aho-Corasick automaton over it.

The data lives in lexicon.toml (packaged with the code); its header says what each category
means and how terms are written. Validation fails loudly, naming the entry, because a silently
dropped term is a silently missed story.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import ahocorasick
from newsmon.classifier.normalize import fold_term, is_word_char

__all__ = [
    "ACTOR_CATEGORIES",
    "CATEGORIES",
    "NEGATIVE_CATEGORIES",
    "TOPICAL_CATEGORIES",
    "Entry",
    "Hit",
    "Lexicon",
    "LexiconError",
    "build_lexicon",
    "load_lexicon",
    "packaged_texts",
    "parse_lexicon",
]

TOPICAL_CATEGORIES: tuple[str, ...] = (
    "troops",
    "casualties",
    "weapons",
    "tech_transfer",
    "treaty_diplomacy",
)
ACTOR_CATEGORIES: tuple[str, ...] = (
    "dprk_actor",
    "russia_actor",
    "dprk_russia",
    "dprk_leader",
    "russia_leader",
)
NEGATIVE_CATEGORIES: tuple[str, ...] = (
    "neg_tourism",
    "neg_transport",
    "neg_trade",
    "neg_civil",
    "neg_missile_test",
    "neg_third_party",
)
CATEGORIES: tuple[str, ...] = (
    *ACTOR_CATEGORIES,
    *TOPICAL_CATEGORIES,
    "front_locations",
    "military",
    "diplomacy",
    *NEGATIVE_CATEGORIES,
    "mask",
)
_GATES = frozenset({"hangul", "kana"})
# "sr", "sr-Latn" (a CLDR locale with an explicit script), "ko@hangul" (a gated list).
_LANG_KEY = re.compile(r"^[a-z]{2,3}(?:-[A-Z][a-z]{3})?(?:@(?P<gate>[a-z]+))?$")
_HANGUL = re.compile("[\uac00-\ud7a3]")
_KANA = re.compile("[\u3041-\u30ff]")
_PACKAGE = "newsmon.classifier"
_RESOURCES = ("lexicon.toml", "lexicon_names.toml")  # hand-written, then generated (names.py)


class LexiconError(ValueError):
    """The lexicon file is malformed; the message names the offending entry."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One folded term of one category (entries of the same key and category are merged)."""

    folded: str
    category: str
    open_left: bool
    open_right: bool
    strict_left: bool  # "^": even a Hangul/Han edge needs a non-letter before it
    strict_right: bool  # "$": ... and after it
    gates: frozenset[str]  # empty: always counts; else counts only if the text has a script


@dataclass(frozen=True, slots=True)
class Hit:
    """A term found in a folded text: [start, end) in folded indices."""

    start: int
    end: int
    category: str


@dataclass(frozen=True, slots=True)
class Lexicon:
    version: str
    entries: tuple[Entry, ...]
    automaton: Any  # ahocorasick.Automaton (untyped C extension)

    def scan(self, text: str) -> list[Hit]:
        """All hits in a folded text, after boundaries, script gates and masks."""
        raw: list[Hit] = []
        gated: list[tuple[Hit, frozenset[str]]] = []
        for last, entry in self.automaton.iter(text):
            start = last + 1 - len(entry.folded)
            end = last + 1
            if not _on_boundaries(text, start, end, entry):
                continue
            # A stem's hit covers the whole word, so evidence shows "troops", not "troop".
            if entry.open_left:
                while start > 0 and is_word_char(text[start - 1]):
                    start -= 1
            if entry.open_right:
                while end < len(text) and is_word_char(text[end]):
                    end += 1
            hit = Hit(start, end, entry.category)
            if entry.gates:
                gated.append((hit, entry.gates))
            else:
                raw.append(hit)
        if gated:
            raw.extend(hit for hit, gates in gated if _scripts_present(text, gates))
        return _resolve(raw)


def _on_boundaries(text: str, start: int, end: int, entry: Entry) -> bool:
    # Only an edge made of a spaced-script letter needs a boundary: "russia" must not match
    # inside "belorussia", but 러시아 may be followed by a particle. "^"/"$" terms (the
    # one-syllable Korean abbreviation 러) need a boundary whatever the script.
    if start > 0 and not entry.open_left:
        before = text[start - 1]
        if entry.strict_left and before.isalnum():
            return False
        if is_word_char(entry.folded[0]) and is_word_char(before):
            return False
    if end < len(text) and not entry.open_right:
        after = text[end]
        if entry.strict_right and after.isalnum():
            return False
        if is_word_char(entry.folded[-1]) and is_word_char(after):
            return False
    return True


def _scripts_present(text: str, gates: frozenset[str]) -> bool:
    return ("hangul" in gates and _HANGUL.search(text) is not None) or (
        "kana" in gates and _KANA.search(text) is not None
    )


def _resolve(hits: list[Hit]) -> list[Hit]:
    """Drop hits inside a mask, and hits inside a longer hit of the same category."""
    masks = [h for h in hits if h.category == "mask"]
    kept: list[Hit] = []
    reach: dict[str, int] = {}
    for hit in sorted(hits, key=lambda h: (h.start, -h.end)):
        if hit.category == "mask":
            continue
        if any(m.start <= hit.start and hit.end <= m.end for m in masks):
            continue
        if hit.end <= reach.get(hit.category, -1):
            continue  # contained in an earlier, longer hit of the same category
        reach[hit.category] = hit.end
        kept.append(hit)
    return kept


def _parse_term(raw: object, where: str) -> tuple[str, bool, bool, bool, bool]:
    """Term text -> (folded, open_left, open_right, strict_left, strict_right)."""
    if not isinstance(raw, str) or not raw.strip():
        raise LexiconError(f"{where}: a term must be a non-empty string, got {raw!r}")
    strict_left = raw.startswith("^")
    strict_right = raw.endswith("$")
    core = raw.removeprefix("^").removesuffix("$")
    open_left = core.startswith("*")
    open_right = core.endswith("*")
    core = core.strip("*")
    if any(mark in core for mark in "*^$"):
        raise LexiconError(
            f"{where}: {raw!r}: '*', '^' and '$' are allowed only at the start or end of a term"
        )
    if (strict_left and open_left) or (strict_right and open_right):
        raise LexiconError(f"{where}: {raw!r}: an edge cannot be both open (*) and strict (^/$)")
    folded = fold_term(core)
    if not folded:
        raise LexiconError(f"{where}: {raw!r} is empty after normalisation")
    return folded, open_left, open_right, strict_left, strict_right


def _entries_of(category: str, table: object) -> Iterable[tuple[Entry, str]]:
    if not isinstance(table, Mapping):
        raise LexiconError(f"[{category}]: must be a table of language = [terms]")
    for lang, terms in table.items():
        match = _LANG_KEY.match(lang)
        gate = match.group("gate") if match else None
        if match is None or (gate is not None and gate not in _GATES):
            raise LexiconError(
                f"[{category}].{lang}: language key must be an ISO 639 code, optionally "
                f"with a script (sr-Latn) and/or @hangul or @kana"
            )
        if not isinstance(terms, list):
            raise LexiconError(f"[{category}].{lang}: must be a list of strings")
        for index, raw in enumerate(terms):
            where = f"[{category}].{lang}[{index}]"
            folded, left, right, strict_left, strict_right = _parse_term(raw, where)
            gates = frozenset({gate}) if gate else frozenset()
            entry = Entry(folded, category, left, right, strict_left, strict_right, gates)
            yield entry, f"{where} {raw!r}"


def _load_toml(text: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LexiconError(f"lexicon is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(CATEGORIES) - {"meta"})
    if unknown:
        raise LexiconError(f"unknown categories {unknown}; known: {', '.join(CATEGORIES)}")
    return data


def parse_lexicon(text: str, *more: str) -> tuple[Entry, ...]:
    """Validate the TOML text(s) and return merged entries, one per (folded term, category).

    Several texts (the hand-written lexicon and the generated names) merge as one file would.
    """
    documents = [_load_toml(t) for t in (text, *more)]
    merged: dict[str, tuple[Entry, str]] = {}
    for data in documents:
        for category in CATEGORIES:
            for entry, where in _entries_of(category, data.get(category, {})):
                _add(merged, entry, where)
    return tuple(entry for entry, _ in merged.values())


def _add(merged: dict[str, tuple[Entry, str]], entry: Entry, where: str) -> None:
    previous = merged.get(entry.folded)
    if previous is None:
        merged[entry.folded] = (entry, where)
    elif (previous[0].strict_left, previous[0].strict_right) != (
        entry.strict_left,
        entry.strict_right,
    ):
        raise LexiconError(f"{where}: also listed with other ^/$ marks ({previous[1]})")
    elif previous[0].category != entry.category:
        raise LexiconError(
            f"{where} folds to {entry.folded!r}, already in category "
            f"{previous[0].category!r} ({previous[1]}); a term belongs to one category"
        )
    else:
        merged[entry.folded] = (_merge(previous[0], entry), previous[1])


def _merge(a: Entry, b: Entry) -> Entry:
    # The same term from two languages: the most permissive reading wins.
    gates = frozenset() if not a.gates or not b.gates else a.gates | b.gates
    return Entry(
        a.folded,
        a.category,
        a.open_left or b.open_left,
        a.open_right or b.open_right,
        a.strict_left,
        a.strict_right,
        gates,
    )


def _build_automaton(entries: Iterable[Entry]) -> Any:
    automaton = ahocorasick.Automaton()
    for entry in entries:
        automaton.add_word(entry.folded, entry)
    automaton.make_automaton()
    return automaton


def build_lexicon(text: str, *more: str) -> Lexicon:
    entries = parse_lexicon(text, *more)
    digest = hashlib.sha256("\0".join((text, *more)).encode("utf-8")).hexdigest()[:8]
    return Lexicon(version=f"lex-{digest}", entries=entries, automaton=_build_automaton(entries))


def packaged_texts() -> tuple[str, ...]:
    """The packaged lexicon files' texts: lexicon.toml, then the generated lexicon_names.toml."""
    package = resources.files(_PACKAGE)
    return tuple(package.joinpath(name).read_text(encoding="utf-8") for name in _RESOURCES)


def load_lexicon() -> Lexicon:
    """The packaged lexicon (hand-written terms and generated names)."""
    return build_lexicon(*packaged_texts())
