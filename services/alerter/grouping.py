"""Story grouping: near-duplicate articles (one story reprinted by several outlets) share a story.

Pure code, no I/O. An article's *fingerprint* is a MinHash signature of the word shingles of its
normalized title and lede; two articles whose estimated Jaccard similarity reaches the
threshold, fetched within the window of the story's first copy, belong to the same story.

MinHash (Broder, "On the resemblance and containment of documents", 1997): for random hash
functions h_i, P[min h_i(A) = min h_i(B)] ≈ J(A, B), so the share of equal signature slots
estimates the Jaccard similarity. Candidates are found with LSH banding (Leskovec, Rajaraman,
Ullman, "Mining of Massive Datasets", ch. 3.4): 32 bands of 4 rows make a pair with J = 0.5 a
candidate with probability 1 - (1 - 0.5^4)^32 = 0.87, J = 0.6 with 0.99 and J = 0.2 with 0.05;
candidates are then checked against the threshold on all 128 slots.

Signature versions (stored with each story in the state topic):
- 2 (current): shingles hashed once (CRC-32 of each word, bigrams from the two word hashes by
  multiply-shift), then the 128 hash functions as multiply-add-shift h_i(x) = ((a_i·x + b_i)
  mod 2^64) >> 32 with random odd 64-bit a_i (Dietzfelbinger, "Universal hashing and k-wise
  independent random variables via integer arithmetic without primes", STACS 1996; Thorup,
  "High speed hashing for integers and strings", 2015, §3.3), computed for all shingles and
  functions at once with numpy, and for a whole batch of articles at once (`fingerprints`:
  one pass over every shingle of the batch instead of a few numpy calls per article):
  BENCHMARKS.md has both against version 1.
- 1 (legacy): BLAKE2b-32 of each shingle and (a·x + b) mod (2^61 - 1) cut to 32 bits, in pure
  Python, as datasketch does (ekzhu.com/datasketch/minhash.html). Stories stored with it before
  the upgrade keep their signature: while the book holds any, new articles are fingerprinted
  both ways and compared with each story in the story's own version. They leave the book one
  window after they began, and `fingerprint_v1` can go once no deployment has them.

`StoryBook` holds the live stories. `assign` is a dry run: it says which story an article joins
and what the story becomes, without changing the book; `apply` records that. The alerter
applies changes only once the Kafka transaction that carries them has committed; until then
they live in a `Pending` overlay, indexed like the book.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import itertools
import operator
import random
import re
import struct
import sys
import unicodedata
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final

import numpy as np
import orjson
from newsmon.shared.messages import AlertSource, Classified
from pydantic import ValidationError

__all__ = [
    "BANDS",
    "NUM_PERM",
    "SIGNATURE_VERSION",
    "Assignment",
    "Fingerprint",
    "Pending",
    "StoryBook",
    "StoryState",
    "fingerprint",
    "fingerprint_v1",
    "fingerprints",
    "jaccard_estimate",
    "normalize",
    "shingles",
    "story_from_json",
    "story_to_json",
]

NUM_PERM: Final = 128
BANDS: Final = 32
ROWS: Final = NUM_PERM // BANDS
LEDE_WORDS: Final = 60  # the lede: the summary's first words; later paragraphs vary by outlet
SIGNATURE_VERSION: Final = 2
_MASK32: Final = (1 << 32) - 1
_EMPTY: Final = (_MASK32,) * NUM_PERM

# Fixed seeds: signatures must be the same on every replica and after every restart, since they
# are stored in the state topic.
_gen = np.random.Generator(np.random.PCG64(20241204))
_A: Final = (_gen.integers(0, 2**64, NUM_PERM, dtype=np.uint64, endpoint=False) | np.uint64(1))[
    :, None
]
_B: Final = _gen.integers(0, 2**64, NUM_PERM, dtype=np.uint64, endpoint=False)[:, None]
_PAIR_MUL: Final = np.uint64(0x9E3779B97F4A7C15)  # odd; the 64-bit golden-ratio constant
_SHIFT32: Final = np.uint64(32)
# Shingles hashed by all NUM_PERM functions in one numpy pass at most: NUM_PERM x 2048 x 8 bytes
# (2 MiB) of intermediate values however large the batch (8192 added 9 MB to the alerter's
# peak RSS for no measurable gain).
_PASS_SHINGLES: Final = 2048

_PRIME: Final = (1 << 61) - 1  # version 1 only
_rng = random.Random(20240618)
_PERMS_V1: Final[tuple[tuple[int, int], ...]] = tuple(
    (_rng.randrange(1, _PRIME), _rng.randrange(0, _PRIME)) for _ in range(NUM_PERM)
)

_WORD = re.compile(r"\w+")
# Wire-copy decorations that outlets add or drop ("UPDATE 2-", "(LEAD)", "EXCLUSIVE:").
_DECORATION = re.compile(r"^\s*(?:\((?:lead|update|urgent)\)|update\s*\d*\s*[-:]|exclusive\s*:)\s*")


_BMP_END: Final = "\uffff"


@functools.cache
def _combining_marks() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Every character with a non-zero canonical combining class (what `unicodedata.combining`
    tests), as one character class: a C-level scan instead of a Python test per character.
    Two classes: the marks up to U+FFFF, and all. re tests a class of BMP characters with a
    bitmap, but one with characters beyond U+FFFF as a list of ranges, each in turn (CPython
    Lib/re/_compiler.py, `_optimize_charset`: the bitmap is for the BMP only): 57 -> 6 us per
    development-set item. The full class serves only text that has characters beyond U+FFFF.
    Built once (about 0.1 s of CPU); the table follows the interpreter's Unicode version."""
    marks = [cp for cp in range(sys.maxunicode + 1) if unicodedata.combining(chr(cp))]
    ranges: list[tuple[int, int]] = []
    for cp in marks:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))

    def one_class(spans: list[tuple[int, int]]) -> re.Pattern[str]:
        return re.compile("[" + "".join(f"{chr(a)}-{chr(b)}" for a, b in spans) + "]")

    bmp = [(a, min(b, ord(_BMP_END))) for a, b in ranges if a <= ord(_BMP_END)]
    return one_class(bmp), one_class(ranges)


def normalize(title: str, summary: str) -> list[str]:
    """Words of the title and the lede: NFKC, case-folded, accents and punctuation dropped."""
    title = _DECORATION.sub("", title.casefold())
    text = f"{title} {summary.casefold()}"
    if not text.isascii():  # ASCII text is the same in every normal form and has no accents
        # NFKD(NFKC(x)) = NFKD(x) (UAX #15, "Normalization Forms"): one decomposition suffices.
        decomposed = unicodedata.normalize("NFKD", text)
        bmp_marks, all_marks = _combining_marks()
        marks = all_marks if max(decomposed) > _BMP_END else bmp_marks
        text = unicodedata.normalize("NFC", marks.sub("", decomposed))
    words = _WORD.findall(text)
    title_words = len(_WORD.findall(title))
    return words[: title_words + LEDE_WORDS]


def shingles(words: Sequence[str]) -> set[str]:
    """Word bigrams (and the words themselves, so very short texts still compare)."""
    grams = {f"{a} {b}" for a, b in itertools.pairwise(words)}
    return grams | set(words)


def _signature_rows(word_lists: Sequence[Sequence[str]]) -> np.ndarray:
    """The version 2 signatures of many word lists, an (n, NUM_PERM) uint32 array; a list
    without words gets `_EMPTY`. Lists are taken in passes of about `_PASS_SHINGLES` shingles."""
    rows = np.full((len(word_lists), NUM_PERM), _MASK32, dtype=np.uint32)
    chunk: list[int] = []
    width = 0
    for i, words in enumerate(word_lists):
        if words:
            chunk.append(i)
            width += 2 * len(words) - 1  # the words and their bigrams
            if width >= _PASS_SHINGLES:
                rows[chunk] = _min_hashes([word_lists[j] for j in chunk])
                chunk, width = [], 0
    if chunk:
        rows[chunk] = _min_hashes([word_lists[j] for j in chunk])
    return rows


def _min_hashes(word_lists: Sequence[Sequence[str]]) -> np.ndarray:
    """Signatures of non-empty word lists (n x NUM_PERM uint32). Shingles (`shingles`): each
    word's CRC-32, and each pair of neighbours in one list (never across two lists) hashed
    from the two word hashes by multiply-shift. Laid out list by list, the words then the
    pairs, so that one `minimum.reduceat` takes each list's minimum of each function. A
    repeated shingle repeats its hash, which leaves every minimum unchanged."""
    lengths = np.fromiter((len(w) for w in word_lists), dtype=np.intp, count=len(word_lists))
    crc32 = zlib.crc32
    words = np.array([crc32(w.encode("utf-8")) for ws in word_lists for w in ws], dtype=np.uint64)
    if len(word_lists) == 1:  # one text (tests, a record outside a batch): no layout to compute
        pairs = (((words[:-1] << _SHIFT32) | words[1:]) * _PAIR_MUL) >> _SHIFT32
        shingles, firsts = np.concatenate((words, pairs)), np.zeros(1, dtype=np.intp)
    else:
        shingles, firsts = _batch_shingles(words, lengths)
    values = _A * shingles  # NUM_PERM x shingles, arithmetic mod 2^64
    values += _B
    # The minimum of the 64-bit values has the minimum top half: shift once, after the min.
    return (np.minimum.reduceat(values, firsts, axis=1) >> _SHIFT32).T.astype(np.uint32)


def _batch_shingles(words: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The shingle hashes of several word lists laid out list by list (its words, then its
    pairs), and where each list begins."""
    starts = np.cumsum(lengths) - lengths  # of each list in `words`
    firsts = np.cumsum(2 * lengths - 1) - (2 * lengths - 1)  # of each list in `shingles`
    shift = np.repeat(firsts - starts, lengths)  # word at g goes to g + shift[g]
    at = np.arange(len(words))
    shingles = np.empty(int((2 * lengths - 1).sum()), dtype=np.uint64)
    shingles[at + shift] = words
    # The pair (g, g + 1) for every word g but the last of its list, placed after its list's
    # words: at g + shift[g] + length of the list.
    paired = np.ones(len(words), dtype=bool)
    paired[starts + lengths - 1] = False
    firsts_of_pairs = (at + shift + np.repeat(lengths, lengths))[paired]
    left = words[paired]
    right = words[1:][paired[:-1]]
    shingles[firsts_of_pairs] = (((left << _SHIFT32) | right) * _PAIR_MUL) >> _SHIFT32
    return shingles, firsts


def fingerprint(title: str, summary: str) -> tuple[int, ...]:
    """The MinHash signature (NUM_PERM 32-bit values, version 2) of a title and lede."""
    return tuple(_signature_rows([normalize(title, summary)])[0].tolist())


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """An article's signature (version 2) and its LSH band keys."""

    signature: tuple[int, ...]
    bands: tuple[BandKey, ...]


def fingerprints(texts: Sequence[tuple[str, str]]) -> list[Fingerprint]:
    """`fingerprint` of each (title, summary) with its band keys, the whole batch at once."""
    rows = _signature_rows([normalize(title, summary) for title, summary in texts])
    keys = _band_keys(rows, SIGNATURE_VERSION)
    return [Fingerprint(tuple(sig), k) for sig, k in zip(rows.tolist(), keys, strict=True)]


def _hash32(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=4).digest(), "big")


def fingerprint_v1(title: str, summary: str) -> tuple[int, ...]:
    """The legacy (version 1) signature, for stories stored before version 2."""
    hashes = [_hash32(s) for s in shingles(normalize(title, summary))]
    if not hashes:
        return _EMPTY
    return tuple(min((a * h + b) % _PRIME for h in hashes) & _MASK32 for a, b in _PERMS_V1)


def jaccard_estimate(a: Sequence[int], b: Sequence[int]) -> float:
    if a == _EMPTY or b == _EMPTY:
        return 0.0  # no words at all: nothing to compare
    if len(a) != len(b):
        raise ValueError(f"signatures of {len(a)} and {len(b)} values")
    same: int = sum(map(operator.eq, a, b))  # compared in C, not a generator step each
    return same / NUM_PERM


# One key per band: a byte (signature version * BANDS + band), then the band's ROWS 32-bit rows
# big-endian: what the int of the same bits was before, but cut by numpy for a whole batch in
# one pass (a Python int was built shift by shift, about 25 us per signature).
BandKey = bytes
_BAND_IDS: Final = np.arange(BANDS, dtype=np.uint8)
_KEY_BYTES: Final = 1 + ROWS * 4


def _band_keys(rows: np.ndarray, version: int) -> list[tuple[BandKey, ...]]:
    """The LSH keys of each signature of an (n, NUM_PERM) array."""
    n = len(rows)
    keys = np.empty((n, BANDS, _KEY_BYTES), dtype=np.uint8)
    keys[:, :, 0] = version * BANDS + _BAND_IDS
    keys[:, :, 1:] = rows.astype(">u4").view(np.uint8).reshape(n, BANDS, _KEY_BYTES - 1)
    return [tuple(k) for k in keys.view(f"V{_KEY_BYTES}").reshape(n, BANDS).tolist()]


def _bands(signature: Sequence[int], version: int) -> tuple[BandKey, ...]:
    return _band_keys(np.array([signature], dtype=np.uint32), version)[0]


_SIGNATURE_BYTES: Final = struct.Struct(f">{NUM_PERM}I")  # 32-bit values, big-endian


def signature_hex(signature: Sequence[int]) -> str:
    return _SIGNATURE_BYTES.pack(*signature).hex()  # 8 hex digits a value


def signature_from_hex(text: str) -> tuple[int, ...]:
    if len(text) != NUM_PERM * 8:
        raise ValueError(f"a signature has {NUM_PERM * 8} hex digits, got {len(text)}")
    return _SIGNATURE_BYTES.unpack(bytes.fromhex(text))


@dataclass(frozen=True, slots=True)
class StoryState:
    """What the alerter remembers of a story (the value of the alerter-state topic)."""

    story_id: str
    alert_id: str
    revision: int
    first_fetched: datetime  # the story's window starts here
    signature: tuple[int, ...]  # of the story's first copy
    sources: tuple[AlertSource, ...]
    categories: tuple[str, ...]
    score: float
    signature_version: int = SIGNATURE_VERSION
    # The signature's LSH keys once known (the book fills them in): not part of the record.
    bands: tuple[BandKey, ...] = field(default=(), compare=False, repr=False)

    def article_ids(self) -> set[str]:
        return {s.article_id for s in self.sources}


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where an article goes: `story` as it becomes, `duplicate` when it already belongs to it."""

    story: StoryState
    new_story: bool
    duplicate: bool


@dataclass(slots=True)
class _Stories:
    """Stories by id, with the two indexes a lookup needs: article id -> story id, and LSH band
    -> story ids. `legacy` counts the stories with a version 1 signature."""

    stories: dict[str, StoryState] = field(default_factory=dict)
    by_article: dict[str, str] = field(default_factory=dict)
    # Most keys belong to one story: that story's id itself, a set only once a key is shared
    # (an empty set costs about 200 bytes, and a story has BANDS keys).
    index: dict[BandKey, str | set[str]] = field(default_factory=dict)
    legacy: int = 0

    def __len__(self) -> int:
        return len(self.stories)

    def put(self, story: StoryState) -> None:
        if not story.bands:
            story = replace(story, bands=_bands(story.signature, story.signature_version))
        old = self.stories.get(story.story_id)
        if old is None:
            story_id = story.story_id
            # Most keys are new: those are added in one C call; the few held already by
            # another story become (or join) a set.
            shared = {key: self.index[key] for key in self.index.keys() & story.bands}
            self.index.update(dict.fromkeys(story.bands, story_id))
            for key, ids in shared.items():
                if ids == story_id:
                    continue
                if isinstance(ids, str):
                    self.index[key] = {ids, story_id}
                else:
                    ids.add(story_id)
                    self.index[key] = ids
            self.legacy += story.signature_version == 1
        self.stories[story.story_id] = story
        for source in story.sources:
            self.by_article[source.article_id] = story.story_id

    def drop(self, story_id: str) -> None:
        story = self.stories.pop(story_id)
        self.legacy -= story.signature_version == 1
        for key in story.bands or _bands(story.signature, story.signature_version):
            ids = self.index.get(key)
            if ids == story_id:
                del self.index[key]
            elif isinstance(ids, set):
                ids.discard(story_id)
                if len(ids) == 1:
                    self.index[key] = ids.pop()
        for source in story.sources:
            if self.by_article.get(source.article_id) == story_id:
                del self.by_article[source.article_id]

    def candidates(self, keys: Iterable[BandKey]) -> set[str]:
        found: set[str] = set()
        # The keys held at all, looked up in C: most articles share no band with any story.
        for key in self.index.keys() & keys:
            ids = self.index[key]
            if isinstance(ids, str):
                found.add(ids)
            else:
                found |= ids
        return found


class Pending(_Stories):
    """Stories changed by the batch in flight, not committed yet: they win over the book."""

    def add(self, story: StoryState) -> None:
        if story.revision > 1 and story.story_id not in self.stories:
            # A grown story of the book: its signature is the book's, indexed there already.
            self.stories[story.story_id] = story
            for source in story.sources:
                self.by_article[source.article_id] = story.story_id
            return
        self.put(story)


def _with_bands(stories: Iterable[StoryState]) -> list[StoryState]:
    """The stories, each with its band keys: those missing (read from the state topic) are
    cut for all stories of a signature version at once."""
    stories = list(stories)
    for version in (1, SIGNATURE_VERSION):
        missing = [
            i for i, s in enumerate(stories) if not s.bands and s.signature_version == version
        ]
        if missing:
            rows = np.array([stories[i].signature for i in missing], dtype=np.uint32)
            for i, keys in zip(missing, _band_keys(rows, version), strict=True):
                stories[i] = replace(stories[i], bands=keys)
    return stories


@dataclass(slots=True)
class StoryBook:
    """Live stories with an LSH index. Stories older than the window are forgotten."""

    window: timedelta
    threshold: float
    _live: _Stories = field(default_factory=_Stories)
    _latest: datetime | None = None
    # (first_fetched, story id) of every live story, a min-heap: expiry pops the old ones
    # instead of scanning the whole book after every batch.
    _starts: list[tuple[datetime, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self._live)

    @property
    def stories(self) -> dict[str, StoryState]:
        return self._live.stories

    def assign(
        self,
        classified: Classified,
        *,
        story_id_for: str,
        alert_id_for: str,
        overlay: Pending | None = None,
        fingerprinted: Fingerprint | None = None,
    ) -> Assignment:
        """The story this article belongs to, as it would be with the article (a dry run).

        `overlay` holds stories changed earlier in the same (uncommitted) batch; they win over
        the book. A new story gets `story_id_for` / `alert_id_for`. `fingerprinted` is the
        article's fingerprint when the caller has it already (`fingerprints` of its batch).
        """
        article = classified.article
        overlay = overlay if overlay is not None else Pending()
        known = self._story_of_article(article.id, overlay)
        if known is not None:
            return Assignment(known, new_story=False, duplicate=True)
        if fingerprinted is None:
            (fingerprinted,) = fingerprints([(article.title, article.summary)])
        sig = fingerprinted.signature
        signatures = {SIGNATURE_VERSION: sig}
        keys: tuple[BandKey, ...] = fingerprinted.bands
        if self._live.legacy or overlay.legacy:
            signatures[1] = fingerprint_v1(article.title, article.summary)
            keys += _bands(signatures[1], 1)
        best = self._best_match(signatures, keys, article.fetched, overlay)
        source = AlertSource(
            article_id=article.id, source=article.source, url=article.url, feed=article.feed
        )
        if best is None:
            story = StoryState(
                story_id=story_id_for,
                alert_id=alert_id_for,
                revision=1,
                first_fetched=article.fetched,
                signature=sig,
                sources=(source,),
                categories=tuple(classified.categories),
                score=classified.score,
                bands=fingerprinted.bands,
            )
            return Assignment(story, new_story=True, duplicate=False)
        grown = replace(
            best,
            revision=best.revision + 1,
            sources=(*best.sources, source),
            categories=tuple(dict.fromkeys((*best.categories, *classified.categories))),
            score=max(best.score, classified.score),
        )
        return Assignment(grown, new_story=False, duplicate=False)

    def _story_of_article(self, article_id: str, overlay: Pending) -> StoryState | None:
        story_id = overlay.by_article.get(article_id) or self._live.by_article.get(article_id)
        if story_id is None:
            return None
        return overlay.stories.get(story_id) or self._live.stories.get(story_id)

    def _best_match(
        self,
        signatures: dict[int, tuple[int, ...]],
        keys: Sequence[BandKey],
        fetched: datetime,
        overlay: Pending,
    ) -> StoryState | None:
        candidates = self._live.candidates(keys)
        if overlay.index:
            candidates |= overlay.candidates(keys)
        best: tuple[float, datetime, str] | None = None
        chosen: StoryState | None = None
        for story_id in candidates:
            story = overlay.stories.get(story_id) or self._live.stories.get(story_id)
            if story is None or abs(fetched - story.first_fetched) > self.window:
                continue
            similarity = jaccard_estimate(signatures[story.signature_version], story.signature)
            if similarity < self.threshold:
                continue
            # Most similar first; on a tie the older story, then the smaller id: deterministic.
            rank = (-similarity, story.first_fetched, story.story_id)
            if best is None or rank < best:
                best, chosen = rank, story
        return chosen

    def apply(self, stories: Iterable[StoryState]) -> list[str]:
        """Record committed story states; returns the ids of stories that fell out of the window."""
        for story in _with_bands(stories):
            if story.story_id not in self._live.stories:
                heapq.heappush(self._starts, (story.first_fetched, story.story_id))
            self._live.put(story)
            if self._latest is None or story.first_fetched > self._latest:
                self._latest = story.first_fetched
        return self.expire()

    def expire(self) -> list[str]:
        """Forget stories whose window closed before the newest story began (event time, so
        replaying the same input always groups the same way)."""
        if self._latest is None:
            return []
        horizon = self._latest - self.window
        gone = []
        while self._starts and self._starts[0][0] < horizon:
            _, story_id = heapq.heappop(self._starts)
            if story_id in self._live.stories:
                self._live.drop(story_id)
                gone.append(story_id)
        return gone


# --- State records (the alerter-state topic: key = story id, value = this JSON) ----------------

STATE_SCHEMA: Final = "newsmon.alerter-state.v1"


def story_to_json(story: StoryState) -> bytes:
    document = {
        "schema": STATE_SCHEMA,
        "story_id": story.story_id,
        "alert_id": story.alert_id,
        "revision": story.revision,
        "first_fetched": story.first_fetched.isoformat(),
        "signature": signature_hex(story.signature),
        "signature_version": story.signature_version,
        # A source's fields are plain strings: its __dict__ (pydantic keeps the fields there)
        # is its JSON, without a model_dump per source.
        "sources": [s.__dict__ for s in story.sources],
        "categories": list(story.categories),
        "score": story.score,
    }
    return orjson.dumps(document)


def story_from_json(payload: bytes) -> StoryState:
    """A state record back; raises ValueError when it is not one. A record without
    `signature_version` was written before version 2: its signature is version 1."""
    try:
        doc = orjson.loads(payload)
        if doc.get("schema") != STATE_SCHEMA:
            raise ValueError(f"not a {STATE_SCHEMA} record")
        first = datetime.fromisoformat(doc["first_fetched"])
        if first.tzinfo is None:
            raise ValueError("first_fetched has no UTC offset")
        version = doc.get("signature_version", 1)
        if version not in (1, SIGNATURE_VERSION) or isinstance(version, bool):
            raise ValueError(f"unknown signature_version {version!r}")
        return StoryState(
            story_id=str(doc["story_id"]),
            alert_id=str(doc["alert_id"]),
            revision=int(doc["revision"]),
            first_fetched=first,
            signature=signature_from_hex(doc["signature"]),
            sources=tuple(AlertSource.model_validate(s) for s in doc["sources"]),
            categories=tuple(str(c) for c in doc["categories"]),
            score=float(doc["score"]),
            signature_version=version,
        )
    except (KeyError, TypeError, AttributeError, ValidationError) as exc:
        raise ValueError(f"bad alerter state record: {exc}") from None
