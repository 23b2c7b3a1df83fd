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
  functions at once with numpy: about 10x faster than version 1 (BENCHMARKS.md).
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
import random
import re
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
    "Pending",
    "StoryBook",
    "StoryState",
    "fingerprint",
    "fingerprint_v1",
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

_PRIME: Final = (1 << 61) - 1  # version 1 only
_rng = random.Random(20240618)
_PERMS_V1: Final[tuple[tuple[int, int], ...]] = tuple(
    (_rng.randrange(1, _PRIME), _rng.randrange(0, _PRIME)) for _ in range(NUM_PERM)
)

_WORD = re.compile(r"\w+")
# Wire-copy decorations that outlets add or drop ("UPDATE 2-", "(LEAD)", "EXCLUSIVE:").
_DECORATION = re.compile(r"^\s*(?:\((?:lead|update|urgent)\)|update\s*\d*\s*[-:]|exclusive\s*:)\s*")


@functools.cache
def _combining_marks() -> re.Pattern[str]:
    """Every character with a non-zero canonical combining class (what `unicodedata.combining`
    tests), as one character class: a C-level scan instead of a Python test per character.
    Built once (about 0.1 s of CPU); the table follows the interpreter's Unicode version."""
    marks = [cp for cp in range(sys.maxunicode + 1) if unicodedata.combining(chr(cp))]
    ranges: list[tuple[int, int]] = []
    for cp in marks:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    return re.compile("[" + "".join(f"{chr(a)}-{chr(b)}" for a, b in ranges) + "]")


def normalize(title: str, summary: str) -> list[str]:
    """Words of the title and the lede: NFKC, case-folded, accents and punctuation dropped."""
    title = _DECORATION.sub("", title.casefold())
    text = f"{title} {summary.casefold()}"
    if not text.isascii():  # ASCII text is the same in every normal form and has no accents
        # NFKD(NFKC(x)) = NFKD(x) (UAX #15, "Normalization Forms"): one decomposition suffices.
        stripped = _combining_marks().sub("", unicodedata.normalize("NFKD", text))
        text = unicodedata.normalize("NFC", stripped)
    words = _WORD.findall(text)
    title_words = len(_WORD.findall(title))
    return words[: title_words + LEDE_WORDS]


def shingles(words: Sequence[str]) -> set[str]:
    """Word bigrams (and the words themselves, so very short texts still compare)."""
    grams = {f"{a} {b}" for a, b in itertools.pairwise(words)}
    return grams | set(words)


def _shingle_hashes(words: Sequence[str]) -> np.ndarray:
    """32-bit hashes (in uint64) of the words and of the word bigrams (`shingles`, version 2).
    A repeated shingle repeats its hash, which leaves every minimum unchanged."""
    word_hashes = np.fromiter(
        (zlib.crc32(w.encode("utf-8")) for w in words), dtype=np.uint64, count=len(words)
    )
    pairs = (word_hashes[:-1] << _SHIFT32) | word_hashes[1:]
    return np.concatenate((word_hashes, (pairs * _PAIR_MUL) >> _SHIFT32))


def fingerprint(title: str, summary: str) -> tuple[int, ...]:
    """The MinHash signature (NUM_PERM 32-bit values, version 2) of a title and lede."""
    words = normalize(title, summary)
    if not words:
        return _EMPTY
    values = _A * _shingle_hashes(words)  # NUM_PERM x shingles, arithmetic mod 2^64
    values += _B
    # The minimum of the 64-bit values has the minimum top half: shift once, after the min.
    return tuple((values.min(axis=1) >> _SHIFT32).tolist())


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
    return sum(1 for x, y in zip(a, b, strict=True) if x == y) / NUM_PERM


# One int per band: (signature version * BANDS + band) above the band's ROWS 32-bit rows. An int
# instead of a (band, rows) tuple of tuples: about a third of the memory per key.
BandKey = int
_ROW_BITS: Final = 32
_BAND_SHIFT: Final = ROWS * _ROW_BITS


@functools.lru_cache(maxsize=4096)
def _bands(signature: tuple[int, ...], version: int) -> tuple[BandKey, ...]:
    """The LSH keys of a signature. Cached: a story's keys are looked up when its first copy
    is assigned, then again when it is staged and committed."""
    first = version * BANDS
    keys = []
    for band in range(BANDS):
        key = first + band
        for row in signature[band * ROWS : (band + 1) * ROWS]:
            key = (key << _ROW_BITS) | row
        keys.append(key)
    return tuple(keys)


def signature_hex(signature: Sequence[int]) -> str:
    return np.array(signature, dtype=">u4").tobytes().hex()  # 8 hex digits a value, big-endian


def signature_from_hex(text: str) -> tuple[int, ...]:
    if len(text) != NUM_PERM * 8:
        raise ValueError(f"a signature has {NUM_PERM * 8} hex digits, got {len(text)}")
    return tuple(np.frombuffer(bytes.fromhex(text), dtype=">u4").tolist())


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
        old = self.stories.get(story.story_id)
        if old is None:
            story_id = story.story_id
            for key in _bands(story.signature, story.signature_version):
                ids = self.index.get(key)
                if ids is None or ids == story_id:
                    self.index[key] = story_id
                elif isinstance(ids, str):
                    self.index[key] = {ids, story_id}
                else:
                    ids.add(story_id)
            self.legacy += story.signature_version == 1
        self.stories[story.story_id] = story
        for source in story.sources:
            self.by_article[source.article_id] = story.story_id

    def drop(self, story_id: str) -> None:
        story = self.stories.pop(story_id)
        self.legacy -= story.signature_version == 1
        for key in _bands(story.signature, story.signature_version):
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

    def candidates(self, signatures: dict[int, tuple[int, ...]]) -> set[str]:
        found: set[str] = set()
        for version, sig in signatures.items():
            for key in _bands(sig, version):
                ids = self.index.get(key)
                if isinstance(ids, str):
                    found.add(ids)
                elif ids:
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
        signature: tuple[int, ...] | None = None,
    ) -> Assignment:
        """The story this article belongs to, as it would be with the article (a dry run).

        `overlay` holds stories changed earlier in the same (uncommitted) batch; they win over
        the book. A new story gets `story_id_for` / `alert_id_for`. `signature` is the
        article's fingerprint when the caller has it already.
        """
        article = classified.article
        overlay = overlay if overlay is not None else Pending()
        known = self._story_of_article(article.id, overlay)
        if known is not None:
            return Assignment(known, new_story=False, duplicate=True)
        sig = signature if signature is not None else fingerprint(article.title, article.summary)
        signatures = {SIGNATURE_VERSION: sig}
        if self._live.legacy or overlay.legacy:
            signatures[1] = fingerprint_v1(article.title, article.summary)
        best = self._best_match(signatures, article.fetched, overlay)
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
        self, signatures: dict[int, tuple[int, ...]], fetched: datetime, overlay: Pending
    ) -> StoryState | None:
        candidates = self._live.candidates(signatures) | overlay.candidates(signatures)
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
        for story in stories:
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
        "sources": [s.model_dump(mode="json") for s in story.sources],
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
