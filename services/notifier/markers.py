"""Delivery markers: what the notifiers have posted to Slack, so a replayed alert is not
posted twice (why they exist: see the docstring of services/notifier/app.py).

One marker per alert revision and webhook, key `<alert_id>.r<revision>.<webhook label>`, on
the compacted topic `<prefix>.notifier-state.v1`, written with acks=all. All of the topic's
handling lives in this module, so the storage can change without touching the notifier.
"""

from __future__ import annotations

import json
import logging
import time

from aiokafka import AIOKafkaProducer
from newsmon.shared.clock import Clock
from newsmon.shared.messages import Alert, utc_now
from newsmon.shared.settings import Settings, Topics
from newsmon.shared.statetopic import StateTopic, ensure_state_topic, read_latest, write

__all__ = [
    "MARKER_RETENTION_MS",
    "DeliveryMarkers",
    "delivery_key",
    "ensure_marker_topic",
    "marker_topic",
    "notifier_state_topic",
]

log = logging.getLogger("newsmon.notifier")

# Markers older than this are dropped by the broker; an alert replayed later than that from
# the alerts topic (a reset of the group's offsets) would be posted again, on purpose.
MARKER_RETENTION_MS = 30 * 86400 * 1000


def notifier_state_topic(settings: Settings) -> str:
    return settings.topics.notifier_state


def marker_topic(topics: Topics) -> StateTopic:
    """Compacted and time-limited; plain acks=all writes (not transactional)."""
    return StateTopic(topics.notifier_state, retention_ms=MARKER_RETENTION_MS)


def delivery_key(alert: Alert, label: str) -> str:
    return f"{alert.alert_id}.r{alert.revision}.{label}"


async def ensure_marker_topic(settings: Settings) -> None:
    """Create the compacted marker topic if it is missing."""
    await ensure_state_topic(settings, marker_topic(settings.topics))


class DeliveryMarkers:
    """The markers read so far plus those this notifier wrote; `producer` writes new ones."""

    def __init__(
        self, topics: Topics, producer: AIOKafkaProducer, clock: Clock = time.monotonic
    ) -> None:
        self.producer = producer
        self.topic = marker_topic(topics)
        self.clock = clock
        # Key -> when it was remembered, oldest first. Forgotten after the markers' retention,
        # as the broker forgets them: a notifier that runs for months stays bounded (one key per
        # alert message delivered) and behaves as one restarted then would.
        self.delivered: dict[str, float] = {}
        # Delivered (Slack said 2xx) but the marker is not acknowledged yet: written again
        # before the alert's offset is committed.
        self._unmarked: dict[str, bytes] = {}

    async def load(self, kafka: Settings) -> None:
        """Markers written by any replica, so far (`kafka`: how to reach the cluster)."""
        records = await read_latest(kafka, self.topic)
        now = self.clock()
        for key, value in records.items():
            if value:
                self.delivered[key.decode("utf-8", "replace")] = now
        log.info("%d delivered alert messages remembered", len(self.delivered))

    def unmarked(self, key: str) -> bool:
        """Delivered, but its marker was not acknowledged yet (call `write` again)."""
        return key in self._unmarked

    def delivered_before(self, key: str) -> bool:
        return key in self.delivered

    async def remember(self, key: str, alert: Alert, label: str, outcome: str) -> None:
        marker = {
            "alert_id": alert.alert_id,
            "revision": alert.revision,
            "webhook": label,
            "outcome": outcome,
            "at": utc_now().isoformat(),
        }
        # Remembered here first: if the marker is not acknowledged (broker away), the retry
        # of this alert writes it again instead of posting to Slack a second time.
        self.note_delivered(key)
        self._unmarked[key] = json.dumps(marker).encode()
        await self.write(key)

    def note_delivered(self, key: str) -> None:
        """Remember `key` as delivered now; forget those older than the markers' retention."""
        now = self.clock()
        self.delivered.pop(key, None)  # re-inserted last: the dict stays in time order
        self.delivered[key] = now
        horizon = now - MARKER_RETENTION_MS / 1000
        while self.delivered:
            oldest, at = next(iter(self.delivered.items()))
            if at >= horizon:
                break
            del self.delivered[oldest]

    async def write(self, key: str) -> None:
        """Write the marker of `key` (raises KafkaError when not acknowledged: kept for a
        later `write`)."""
        await write(self.producer, self.topic, key, self._unmarked[key])
        del self._unmarked[key]
