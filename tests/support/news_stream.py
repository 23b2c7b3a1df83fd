"""A steady stream of feed items for long-running tests: a real local HTTP feed whose items
appear over time, each carrying a token (`K03x07`: batch 3, item 7) that follows it through
the pipeline into the alert title and the Slack message.

Matching items are written to be separate stories (next to no words in common, so the
alerter's near-duplicate grouping never joins two of them): each should raise exactly one
alert. Noise items (weather, sport) should raise none.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from tests.support.feed_builder import Item, rss
from tests.support.http_stub import HttpStub, Reply, Seen, http_stub

__all__ = ["TOKEN", "Batch", "FeedStream", "feed_stream", "story_words", "token_in"]

TOKEN = re.compile(r"\bK(\d{2})x(\d{2})\b")
# Words for story texts: ten numbered variants of each, so two stories share almost no word.
_WORDS = (
    "artillery",
    "drones",
    "pyongyang",
    "moscow",
    "shells",
    "missiles",
    "brigade",
    "border",
    "treaty",
    "summit",
    "sanctions",
    "satellite",
    "engineers",
    "casualties",
    "wounded",
    "captured",
    "soldiers",
    "convoy",
    "railway",
    "port",
    "tanks",
    "rockets",
    "defence",
    "ministry",
    "intelligence",
    "parliament",
    "envoy",
    "delegation",
    "factory",
    "ammunition",
)
_NOISE = (
    "Heatwave warning for southern Spain as temperatures climb",
    "Late winner sends the home side top of the league",
    "Recipe: a weeknight lentil and spinach dal",
    "City council approves a new cycle lane on the high street",
)
FEED_PATH = "/stream.xml"
_FEED_WINDOW = 60  # items a feed document carries, newest first, as real feeds do


def token_in(text: str) -> str | None:
    found = TOKEN.search(text)
    return found.group(0) if found else None


@dataclass(frozen=True)
class Batch:
    """The items of one test phase: `expected` are the tokens that must each alert once."""

    number: int
    expected: tuple[str, ...]
    noise: tuple[str, ...]


def story_words(seed: str | int, count: int) -> list[str]:
    """`count` words for the text of story `seed`, the same on every call: two stories share
    almost no word, so they never group by chance. ("kursk" is not among them: every story of
    the stream names the Kursk region.)"""
    return random.Random(seed).sample([f"{w}{k}" for w in _WORDS for k in range(10)], count)


def _story(token: str) -> tuple[str, str]:
    words = story_words(token, 18)
    title = f"North Korean troops sent to Russia, {token}: {' '.join(words[:6])}"
    summary = (
        f"North Korean soldiers were deployed to Russia's Kursk region, officials said. "
        f"{' '.join(words[6:])}."
    )
    return title, summary


class FeedStream:
    """Items released over time on `url`; `release()` paces one batch."""

    def __init__(self, stub: HttpStub) -> None:
        self._items: list[Item] = []
        self.released_at: dict[str, float] = {}  # token -> time.monotonic() of its release
        self._batches = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.stub = stub  # its request log tells which feed URLs were polled
        self.url = stub.route(FEED_PATH, self._reply)

    def _reply(self, seen: Seen) -> Reply:
        del seen
        items = list(reversed(self._items[-_FEED_WINDOW:]))
        return Reply(200, rss(items, title="Fault stream"), {"Content-Type": "application/rss+xml"})

    def new_batch(self, matching: int, noise: int = 0) -> Batch:
        self._batches += 1
        number = self._batches
        tokens = [f"K{number:02d}x{n:02d}" for n in range(matching + noise)]
        return Batch(number, tuple(tokens[:matching]), tuple(tokens[matching:]))

    def _item(self, token: str, batch: Batch, base: str) -> Item:
        if token in batch.expected:
            title, summary = _story(token)
        else:
            title = f"{_NOISE[int(token[-2:]) % len(_NOISE)]} ({token})"
            summary = "Nothing to do with North Korea or Russia."
        return Item(
            url=f"{base}/{token}",
            title=title,
            summary=summary,
            guid=f"fault-stream-{token}",
            published=datetime.now(UTC).replace(microsecond=0),
        )

    def order(self, batch: Batch) -> list[str]:
        """The batch's tokens in release order: matching and noise mixed."""
        return _interleave(batch.expected, batch.noise)

    def release(self, batch: Batch, tokens: Sequence[str], *, every_s: float) -> asyncio.Task[None]:
        """Publish these items of the batch one by one, `every_s` apart, in the background."""
        base = "http://127.0.0.1/fault-stream"

        async def pace() -> None:
            for token in tokens:
                self._items.append(self._item(token, batch, base))
                self.released_at[token] = time.monotonic()
                await asyncio.sleep(every_s)

        task = asyncio.create_task(pace(), name=f"stream-batch-{batch.number}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _interleave(first: Sequence[str], second: Sequence[str]) -> list[str]:
    out: list[str] = []
    step = max(1, len(first) // max(1, len(second)))
    rest = list(second)
    for i, token in enumerate(first, 1):
        out.append(token)
        if i % step == 0 and rest:
            out.append(rest.pop(0))
    return out + rest


@contextmanager
def feed_stream() -> Iterator[FeedStream]:
    with http_stub() as stub:
        yield FeedStream(stub)
