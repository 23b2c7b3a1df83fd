"""Story grouping: near-duplicate articles (one story reprinted by several outlets) share a story.

Pure code, no I/O. An article's *fingerprint* is a MinHash signature of the word shingles of its
normalised title and lede; two articles whose estimated Jaccard similarity reaches the
threshold, fetched within the window of the story's first copy, belong to the same story.

MinHash (Broder, "On the resemblance and containment of documents", 1997): for random hash
permutations h_i, P[min h_i(A) = min h_i(B)] = J(A, B), so the share of equal signature slots
estimates the Jaccard similarity. Permutations are (a*x + b) mod p with p = 2^61 - 1, cut to 32
bits, as datasketch does (ekzhu.com/datasketch/minhash.html). Candidates are found with LSH
banding (Leskovec, Rajaraman, Ullman, "Mining of Massive Datasets", ch. 3.4): 32 bands of 4 rows
make a pair with J = 0.5 a candidate with probability 1 - (1 - 0.5^4)^32 = 0.87, J = 0.6 with
0.99 and J = 0.2 with 0.05; candidates are then checked against the threshold on all 128 slots.

`StoryBook` holds the live stories. `assign` is a dry run: it says which story an article joins
and what the story becomes, without changing the book; `apply` records that. The alerter
applies changes only once the Kafka transaction that carries them has committed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final

from newsmon.shared.messages import AlertSource, Classified
from pydantic import ValidationError

__all__ = [
    "BANDS",
    "NUM_PERM",
    "Assignment",
    "StoryBook",
    "StoryState",
    "fingerprint",
    "jaccard_estimate",
    "normalise",
    "shingles",
    "story_from_json",
    "story_to_json",
]

NUM_PERM: Final = 128
BANDS: Final = 32
ROWS: Final = NUM_PERM // BANDS
LEDE_WORDS: Final = 60  # the lede: the summary's first words; later paragraphs vary by outlet
_PRIME: Final = (1 << 61) - 1
_MASK32: Final = (1 << 32) - 1
# Fixed seed: signatures must be the same on every replica and after every restart, since they
# are stored in the state topic.
_rng = random.Random(20240618)
_PERMS: Final[tuple[tuple[int, int], ...]] = tuple(
    (_rng.randrange(1, _PRIME), _rng.randrange(0, _PRIME)) for _ in range(NUM_PERM)
)
_EMPTY: Final = (_MASK32,) * NUM_PERM

_WORD = re.compile(r"\w+")
# Wire-copy decorations that outlets add or drop ("UPDATE 2-", "(LEAD)", "EXCLUSIVE:").
_DECORATION = re.compile(r"^\s*(?:\((?:lead|update|urgent)\)|update\s*\d*\s*[-:]|exclusive\s*:)\s*")


def normalise(title: str, summary: str) -> list[str]:
    """Words of the title and the lede: NFKC, case-folded, accents and punctuation dropped."""
    title = _DECORATION.sub("", title.casefold())
    text = f"{title} {summary.casefold()}"
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    words = _WORD.findall(unicodedata.normalize("NFC", stripped))
    title_words = len(_WORD.findall(title))
    return words[: title_words + LEDE_WORDS]


def shingles(words: Sequence[str]) -> set[str]:
    """Word bigrams (and the words themselves, so very short texts still compare)."""
    grams = {f"{a} {b}" for a, b in itertools.pairwise(words)}
    return grams | set(words)


def _hash32(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=4).digest(), "big")


def fingerprint(title: str, summary: str) -> tuple[int, ...]:
    """The MinHash signature (NUM_PERM 32-bit values) of a title and lede."""
    hashes = [_hash32(s) for s in shingles(normalise(title, summary))]
    if not hashes:
        return _EMPTY
    return tuple(min((a * h + b) % _PRIME for h in hashes) & _MASK32 for a, b in _PERMS)


def jaccard_estimate(a: Sequence[int], b: Sequence[int]) -> float:
    if a == _EMPTY or b == _EMPTY:
        return 0.0  # no words at all: nothing to compare
    return sum(1 for x, y in zip(a, b, strict=True) if x == y) / NUM_PERM


def _bands(signature: Sequence[int]) -> Iterator[tuple[int, tuple[int, ...]]]:
    for band in range(BANDS):
        yield band, tuple(signature[band * ROWS : (band + 1) * ROWS])


def signature_hex(signature: Sequence[int]) -> str:
    return "".join(f"{v:08x}" for v in signature)


def signature_from_hex(text: str) -> tuple[int, ...]:
    if len(text) != NUM_PERM * 8:
        raise ValueError(f"a signature has {NUM_PERM * 8} hex digits, got {len(text)}")
    return tuple(int(text[i : i + 8], 16) for i in range(0, len(text), 8))


@dataclass(frozen=True, slots=True)
class StoryState:
    """What the alerter remembers of a story (the value of the alerter-state topic)."""

    story_id: str
    alert_id: str
    revision: int
    first_fetched: datetime  # the story's window starts here
    signature: tuple[int, ...]
    sources: tuple[AlertSource, ...]
    categories: tuple[str, ...]
    score: float

    def article_ids(self) -> set[str]:
        return {s.article_id for s in self.sources}


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where an article goes: `story` as it becomes, `duplicate` when it already belongs to it."""

    story: StoryState
    new_story: bool
    duplicate: bool


@dataclass(slots=True)
class StoryBook:
    """Live stories with an LSH index. Stories older than the window are forgotten."""

    window: timedelta
    threshold: float
    stories: dict[str, StoryState] = field(default_factory=dict)
    _index: dict[tuple[int, tuple[int, ...]], set[str]] = field(default_factory=dict)
    _by_article: dict[str, str] = field(default_factory=dict)
    _latest: datetime | None = None

    def __len__(self) -> int:
        return len(self.stories)

    def assign(
        self,
        classified: Classified,
        *,
        story_id_for: str,
        alert_id_for: str,
        overlay: dict[str, StoryState] | None = None,
        signature: tuple[int, ...] | None = None,
    ) -> Assignment:
        """The story this article belongs to, as it would be with the article (a dry run).

        `overlay` holds stories changed earlier in the same (uncommitted) batch; they win over
        the book. A new story gets `story_id_for` / `alert_id_for`.
        """
        article = classified.article
        overlay = overlay or {}
        known = self._story_of_article(article.id, overlay)
        if known is not None:
            return Assignment(known, new_story=False, duplicate=True)
        sig = signature if signature is not None else fingerprint(article.title, article.summary)
        best = self._best_match(sig, article.fetched, overlay)
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

    def _story_of_article(
        self, article_id: str, overlay: dict[str, StoryState]
    ) -> StoryState | None:
        for story in overlay.values():
            if article_id in story.article_ids():
                return story
        story_id = self._by_article.get(article_id)
        if story_id is None:
            return None
        return overlay.get(story_id) or self.stories.get(story_id)

    def _best_match(
        self, sig: tuple[int, ...], fetched: datetime, overlay: dict[str, StoryState]
    ) -> StoryState | None:
        candidates: set[str] = set()
        for key in _bands(sig):
            candidates |= self._index.get(key, set())
        pool = [overlay.get(c) or self.stories[c] for c in candidates if c in self.stories]
        pool += [s for s in overlay.values() if s.story_id not in self.stories]
        best: tuple[float, datetime, str] | None = None
        chosen: StoryState | None = None
        for story in pool:
            if abs(fetched - story.first_fetched) > self.window:
                continue
            similarity = jaccard_estimate(sig, story.signature)
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
            old = self.stories.get(story.story_id)
            if old is None:
                for key in _bands(story.signature):
                    self._index.setdefault(key, set()).add(story.story_id)
            self.stories[story.story_id] = story
            for source in story.sources:
                self._by_article[source.article_id] = story.story_id
            if self._latest is None or story.first_fetched > self._latest:
                self._latest = story.first_fetched
        return self.expire()

    def expire(self) -> list[str]:
        """Forget stories whose window closed before the newest story began (event time, so
        replaying the same input always groups the same way)."""
        if self._latest is None:
            return []
        horizon = self._latest - self.window
        gone = [sid for sid, s in self.stories.items() if s.first_fetched < horizon]
        for story_id in gone:
            self._forget(story_id)
        return gone

    def _forget(self, story_id: str) -> None:
        story = self.stories.pop(story_id)
        for key in _bands(story.signature):
            ids = self._index.get(key)
            if ids is not None:
                ids.discard(story_id)
                if not ids:
                    del self._index[key]
        for source in story.sources:
            if self._by_article.get(source.article_id) == story_id:
                del self._by_article[source.article_id]


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
        "sources": [s.model_dump(mode="json") for s in story.sources],
        "categories": list(story.categories),
        "score": story.score,
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def story_from_json(payload: bytes) -> StoryState:
    """A state record back; raises ValueError when it is not one."""
    try:
        doc = json.loads(payload)
        if doc.get("schema") != STATE_SCHEMA:
            raise ValueError(f"not a {STATE_SCHEMA} record")
        first = datetime.fromisoformat(doc["first_fetched"])
        if first.tzinfo is None:
            raise ValueError("first_fetched has no UTC offset")
        return StoryState(
            story_id=str(doc["story_id"]),
            alert_id=str(doc["alert_id"]),
            revision=int(doc["revision"]),
            first_fetched=first,
            signature=signature_from_hex(doc["signature"]),
            sources=tuple(AlertSource.model_validate(s) for s in doc["sources"]),
            categories=tuple(str(c) for c in doc["categories"]),
            score=float(doc["score"]),
        )
    except (KeyError, TypeError, AttributeError, ValidationError) as exc:
        raise ValueError(f"bad alerter state record: {exc}") from None
