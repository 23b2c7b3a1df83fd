"""Where a fetcher under test publishes: in memory, the process boundary to Kafka replaced."""

from __future__ import annotations

from newsmon.fetcher.state import FeedState
from newsmon.shared.messages import Article


class ListSink:
    """Keeps every published article and each feed's latest saved state (a copy made through
    JSON, as the state topic would hold it)."""

    def __init__(self) -> None:
        self.articles: list[Article] = []
        self.states: dict[str, FeedState] = {}

    async def publish(self, articles: list[Article]) -> None:
        self.articles.extend(articles)

    async def save_state(self, feed: str, state: FeedState) -> None:
        self.states[feed] = FeedState.from_json(state.to_json())
