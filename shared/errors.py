"""One exception tree for newsmon. `retriable` tells callers whether trying again may help."""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "ConfigError",
    "KafkaAccessError",
    "NewsmonError",
    "PermanentError",
    "RetriableError",
]


class NewsmonError(Exception):
    retriable: bool = False


class RetriableError(NewsmonError):
    """A failure that may pass: network, timeouts, a 5xx, a broker that is restarting."""

    retriable = True


class PermanentError(NewsmonError):
    """Trying again gives the same result: bad input, a 4xx, a schema violation."""


class ConfigError(PermanentError):
    """The configuration cannot work; the message says which setting and why."""


class BrokerError(RetriableError):
    """The local Kafka broker could not be started or reached."""


class KafkaAccessError(ConfigError):
    """Kafka answered but refused us: wrong SASL credentials or mechanism, or a TLS handshake
    that fails (unknown CA, host name not in the certificate, a missing client certificate).
    Retrying cannot help, so services stop with this one error instead of retrying forever."""
