"""Every setting of newsmon, in one place, with its default.

Sources, strongest first: keyword arguments (tests), environment variables `NEWSMON_*`,
`*_FILE` variables for secrets, then a TOML file named by `NEWSMON_CONFIG_FILE` (keys are the
field names below, e.g. `kafka_bootstrap = "broker:9092"`). Settings are frozen once built.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Annotated, Any, Literal

from newsmon.shared.services import RUN_METRICS_PORT, SERVICES
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["SERVICE_METRICS_PORTS", "Settings", "Topics"]

# Default /metrics ports per process (from the table of services), so that services started
# side by side on one host do not collide; `newsmon run` serves one endpoint.
SERVICE_METRICS_PORTS = {"run": RUN_METRICS_PORT, **{s.name: s.metrics_port for s in SERVICES}}


class Topics:
    """Topic names are part of the public contract (see README, "Topics and messages")."""

    def __init__(self, prefix: str) -> None:
        self.articles = f"{prefix}.articles.v1"
        self.classified = f"{prefix}.classified.v1"
        self.alerts = f"{prefix}.alerts.v1"
        self.dlq = f"{prefix}.dlq.v1"
        # The feed list (compacted, key = feed name): created by the fetcher with its own
        # partition count (feeds_topic_partitions), so not among the pipeline topics below.
        self.feeds = f"{prefix}.feeds.v1"
        # State topics (compacted, one writer each; shared/statetopic.py): created by their
        # service with their own settings, so not among the pipeline topics below either.
        self.fetcher_state = f"{prefix}.fetcher-state.v1"
        self.alerter_state = f"{prefix}.alerter-state.v1"
        self.notifier_state = f"{prefix}.notifier-state.v1"

    def all(self) -> tuple[str, ...]:
        return (self.articles, self.classified, self.alerts, self.dlq)


def _config_file() -> Path | None:
    value = os.environ.get("NEWSMON_CONFIG_FILE")
    return Path(value) if value else None


def _read_secret(settings: BaseSettings, field: str, path: Path | None) -> None:
    """Fill a secret from its *_FILE (a mounted Secret) unless it was given directly. Trailing
    newlines are dropped: `echo secret > file` and Kubernetes Secret files often end in one."""
    if getattr(settings, field) is None and path is not None:
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"{field}_file: cannot read {path}: {exc.strerror or exc}") from exc
        object.__setattr__(settings, field, SecretStr(secret))


def kafka_security_problems(settings: Settings) -> list[str]:
    """What cannot work in the Kafka security settings, each naming the variable to fix.
    Checked at start-up so a typo is one clear error, not a client that retries forever."""
    protocol = settings.kafka_security_protocol
    problems: list[str] = []
    if protocol.startswith("SASL_"):
        if not settings.kafka_sasl_username:
            problems.append(f"{protocol} needs NEWSMON_KAFKA_SASL_USERNAME")
        if settings.kafka_sasl_password is None:
            problems.append(
                f"{protocol} needs NEWSMON_KAFKA_SASL_PASSWORD or NEWSMON_KAFKA_SASL_PASSWORD_FILE"
            )
    elif settings.kafka_sasl_username or settings.kafka_sasl_password is not None:
        problems.append(
            f"a SASL user or password is set but NEWSMON_KAFKA_SECURITY_PROTOCOL={protocol} "
            "does not use SASL (SASL_SSL or SASL_PLAINTEXT)"
        )
    tls_files = {
        "NEWSMON_KAFKA_SSL_CAFILE": settings.kafka_ssl_cafile,
        "NEWSMON_KAFKA_SSL_CERTFILE": settings.kafka_ssl_certfile,
        "NEWSMON_KAFKA_SSL_KEYFILE": settings.kafka_ssl_keyfile,
    }
    given = [name for name, path in tls_files.items() if path is not None]
    if given and protocol not in ("SSL", "SASL_SSL"):
        problems.append(
            f"{', '.join(given)} set but NEWSMON_KAFKA_SECURITY_PROTOCOL={protocol} does not use "
            "TLS (SSL or SASL_SSL)"
        )
    problems += [
        f"{name}={path}: no such file"
        for name, path in tls_files.items()
        if path and not path.is_file()
    ]
    if settings.kafka_ssl_keyfile is not None and settings.kafka_ssl_certfile is None:
        problems.append("NEWSMON_KAFKA_SSL_KEYFILE needs NEWSMON_KAFKA_SSL_CERTFILE")
    isr = settings.topic_min_insync_replicas
    if isr is not None and isr > settings.topic_replication:
        problems.append(
            f"NEWSMON_TOPIC_MIN_INSYNC_REPLICAS={isr} exceeds NEWSMON_TOPIC_REPLICATION="
            f"{settings.topic_replication}: no write could ever succeed"
        )
    return problems


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NEWSMON_", frozen=True, extra="forbid", validate_default=True
    )

    # --- Kafka -------------------------------------------------------------------------
    kafka_bootstrap: str | None = Field(
        None,
        description="Kafka bootstrap servers (host:port,...). Unset: `newsmon run` starts a "
        "local broker on 127.0.0.1:kafka_local_port and uses it.",
    )
    kafka_local_port: int = Field(9092, description="Port of the local broker started by newsmon")
    kafka_local_dir: Path = Field(
        Path(".cache/kafka"), description="Jars (lib/), data and logs of the local broker"
    )
    kafka_local_heap: str = Field("512m", description="JVM heap of the local broker")
    topic_prefix: str = Field("newsmon", description="Topics are <prefix>.articles.v1 etc.")
    topic_partitions: int = Field(3, ge=1, description="Partitions of topics newsmon creates")
    topic_replication: int = Field(1, ge=1, description="Replication factor of created topics")
    topic_min_insync_replicas: int | None = Field(
        None,
        ge=1,
        description="min.insync.replicas of created topics (unset: the broker's default); with "
        "acks=all a write fails rather than land on fewer replicas than this",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How every Kafka client connects: TLS (SSL), SASL, both, neither"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism (with a SASL_* protocol)"
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (secret)")
    kafka_sasl_password_file: Path | None = Field(
        None, description="File holding the SASL password (for secret mounts)"
    )
    kafka_ssl_cafile: Path | None = Field(
        None,
        description="PEM file of the CA(s) that signed the brokers' certificates "
        "(unset: the system's CAs)",
    )
    kafka_ssl_certfile: Path | None = Field(
        None, description="PEM client certificate (chain), for brokers that require one"
    )
    kafka_ssl_keyfile: Path | None = Field(
        None, description="PEM private key of the client certificate (unset: in the certfile)"
    )
    kafka_ssl_key_password: SecretStr | None = Field(
        None, description="Password of an encrypted client key (secret)"
    )
    kafka_ssl_key_password_file: Path | None = Field(
        None, description="File holding the client key's password (for secret mounts)"
    )
    kafka_ssl_check_hostname: bool = Field(
        True,
        description="Check that the broker's certificate names the host connected to "
        "(the certificate is verified against the CA either way)",
    )
    kafka_transactions: bool = Field(
        True,
        description="Classifier and alerter consume-transform-produce in Kafka transactions "
        "(exactly-once for read_committed readers). Off: at-least-once with idempotent ids.",
    )
    instance_id: str = Field(
        default_factory=socket.gethostname,
        description="Names this replica in transactional ids; give each replica its own",
    )
    batch_size: int = Field(200, ge=1, description="Max records a consumer takes per poll")
    kafka_linger_ms: int = Field(
        # 0: every producer queues a whole batch (a poll's items, a pipeline batch's outputs)
        # before it yields to aiokafka's sender, then waits for the acknowledgements; a linger
        # only delays that batch (README, Latency and throughput).
        0,
        ge=0,
        description="Milliseconds a producer waits to fill a batch before sending it (more: "
        "fewer, larger requests when sends trickle in; 0: each batch goes out at once)",
    )
    kafka_max_batch_bytes: int = Field(
        262_144,
        ge=1024,
        description="Largest producer batch per partition, bytes (aiokafka's default, 16 KiB, "
        "holds about ten verdicts; 256 KiB: fewer requests, more items per CPU-second, "
        "BENCHMARKS.md)",
    )
    kafka_compression: Literal["none", "gzip", "lz4", "zstd"] = Field(
        "none", description="Compression of produced batches (CPU for bytes)"
    )
    event_loop: Literal["asyncio", "uvloop"] = Field(
        "asyncio", description="Event loop of the newsmon process: Python's asyncio or uvloop"
    )
    kafka_session_timeout_s: float = Field(
        10.0,
        ge=1,
        description="Consumer-group session timeout: a replica silent this long (killed, "
        "frozen, cut off) loses its partitions to the others; the broker bounds it "
        "(group.min/max.session.timeout.ms, 6-1800 s by default)",
    )

    @model_validator(mode="after")
    def _check_kafka_security(self) -> Settings:
        _read_secret(self, "kafka_sasl_password", self.kafka_sasl_password_file)
        _read_secret(self, "kafka_ssl_key_password", self.kafka_ssl_key_password_file)
        problems = kafka_security_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # --- Fetcher -----------------------------------------------------------------------
    feeds_file: Path = Field(
        Path("deploy/feeds.toml"),
        description="TOML list of feeds, imported into the feeds topic when a fetcher starts",
    )
    feeds_topic_partitions: int = Field(
        24,
        ge=1,
        description="Partitions of the feeds topic when the fetcher creates it: the most "
        "fetcher replicas that get work (never change it on an existing topic)",
    )
    poll_interval_s: float = Field(
        300.0, gt=0, description="Default seconds between polls of a feed"
    )
    fetch_connect_timeout_s: float = Field(10.0, gt=0, description="Seconds to open a connection")
    fetch_read_timeout_s: float = Field(
        20.0, gt=0, description="Longest silence while reading a response"
    )
    fetch_total_timeout_s: float = Field(30.0, gt=0, description="Deadline for one whole fetch")
    fetch_max_bytes: int = Field(10 * 1024 * 1024, gt=0, description="Largest feed body accepted")
    fetch_concurrency: int = Field(
        8,
        ge=1,
        description="Feeds refreshed at the same time (a poll holds its slot through fetch, "
        "parse and publish)",
    )
    fetch_contact: str = Field(
        "", description="URL or e-mail put in the User-Agent so feed owners can reach you"
    )
    dedupe_capacity: int = Field(100_000, ge=1, description="Article ids remembered for dedup")
    poll_interval_max_s: float = Field(
        3600.0,
        gt=0,
        description="Longest seconds between polls of a healthy feed (the adaptive interval "
        "lies between poll_interval_s and this)",
    )
    fetch_backoff_max_s: float = Field(
        7200.0, gt=0, description="Longest pause between retries of a failing feed"
    )
    fetch_per_host_concurrency: int = Field(
        2, ge=1, description="Requests in flight to one host at the same time"
    )
    fetch_parse_workers: Annotated[int, Field(ge=0)] | Literal["auto"] = Field(
        "auto",
        description="Processes that parse feed bodies; auto: one per core when there is more "
        "than one core, else 0 (a thread of the fetcher process, which holds the GIL the "
        "event loop needs)",
    )
    fetch_max_redirects: int = Field(5, ge=0, description="Redirects followed per fetch")
    fetch_allow_hosts: str = Field(
        "",
        description="Comma-separated hosts or CIDRs the fetcher may reach although they are "
        "not public (loopback, private, link-local ...); everything else non-public is refused",
    )
    fetch_full_text: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Fetch article pages for their full text: auto = for feeds whose items are "
        "short, on = for every feed, off = never; a feed's own full_text wins except over off",
    )
    fetch_full_text_concurrency: int = Field(
        4, ge=1, description="Article pages fetched at the same time (across all feeds)"
    )
    fetch_full_text_timeout_s: float = Field(
        10.0, gt=0, description="Deadline for fetching one article page"
    )

    websub: bool = Field(
        False,
        description="Subscribe to the WebSub hubs that feeds advertise and publish pushed items "
        "at once (polling continues at the max interval); off by default since hubs must reach "
        "websub_callback_url from the internet",
    )
    websub_callback_url: str | None = Field(
        None,
        description="Public base URL of the WebSub callback: <url>/<token> must reach "
        "/websub/<token> on the service's HTTP port (metrics_port)",
    )
    websub_lease_s: int = Field(
        864_000,
        ge=60,
        description="Lease asked of WebSub hubs (seconds); renewed at 80% of the lease granted",
    )

    @model_validator(mode="after")
    def _check_websub(self) -> Settings:
        url = self.websub_callback_url
        if url is not None and not url.lower().startswith(("http://", "https://")):
            raise ValueError(f"websub_callback_url must be an http(s) URL, not {url!r}")
        if self.websub and not url:
            raise ValueError(
                "NEWSMON_WEBSUB is on but NEWSMON_WEBSUB_CALLBACK_URL is unset: hubs need a "
                "public URL to call back"
            )
        return self

    # --- Classifier --------------------------------------------------------------------
    classifier_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="Score from which an article matches (unset: model's)"
    )

    # --- Alerter / Slack ---------------------------------------------------------------
    slack_webhook_url: SecretStr | None = Field(
        None, description="Slack incoming-webhook URL (secret). Unset: no Slack messages"
    )
    slack_webhook_url_file: Path | None = Field(
        None, description="File holding the webhook URL (for secret mounts)"
    )
    slack_max_attempts: int = Field(
        6, ge=1, description="Tries per Slack message before backing off"
    )
    slack_category_webhooks: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Per-category Slack webhooks (secret), JSON object category -> URL, e.g. "
        '{"troops": "https://hooks.slack.com/..."}; alerts of no listed category go to '
        "slack_webhook_url",
    )
    slack_category_webhooks_file: Path | None = Field(
        None, description="File holding the per-category webhooks JSON (for secret mounts)"
    )
    slack_min_interval_s: float = Field(
        1.0, ge=0, description="Least seconds between two messages to one webhook (Slack: 1/s)"
    )
    slack_post_updates: bool = Field(
        True,
        description="Post alert updates (later copies of a story) as a short Slack message; "
        "false: only the first alert of a story is posted",
    )
    alert_routes_file: Path | None = Field(
        None,
        description="TOML file of alert routing rules ([[route]] tables). Unset: every alert "
        "to <prefix>.alerts.v1 plus one topic per category",
    )
    alert_group_window_s: float = Field(
        48 * 3600.0,
        gt=0,
        description="Copies of a story fetched within this many seconds of its first copy "
        "update its alert instead of raising a new one",
    )
    alert_group_threshold: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Estimated Jaccard similarity of title+lede word shingles from which two "
        "articles are the same story",
    )

    @model_validator(mode="after")
    def _read_alerter_secret_files(self) -> Settings:
        path = self.slack_category_webhooks_file
        if not self.slack_category_webhooks and path is not None:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
            ):
                raise ValueError(f"{path}: expected a JSON object of category -> webhook URL")
            webhooks = {k: SecretStr(v.strip()) for k, v in raw.items()}
            object.__setattr__(self, "slack_category_webhooks", webhooks)
        return self

    # --- Web (newsmon web) ---------------------------------------------------------------
    web_host: str = Field(
        "127.0.0.1",
        description="Address the analysts' web page listens on; any address other than "
        "loopback requires web_token",
    )
    web_port: int = Field(8480, ge=0, le=65535, description="Port of the analysts' web page")
    web_token: SecretStr | None = Field(
        None,
        description="Read-only access token (secret) of the web page: sent as `Authorization: "
        "Bearer <token>` or as the password of HTTP basic auth (any user name). Optional on "
        "loopback, required otherwise",
    )
    web_token_file: Path | None = Field(
        None, description="File holding web_token (for secret mounts)"
    )
    web_max_stories: int = Field(
        20_000, ge=1, description="Stories the web page keeps in memory (oldest forgotten first)"
    )

    @model_validator(mode="after")
    def _read_web_token_file(self) -> Settings:
        if self.web_token is None and self.web_token_file is not None:
            secret = self.web_token_file.read_text(encoding="utf-8").strip()
            object.__setattr__(self, "web_token", SecretStr(secret))
        return self

    # --- Operations --------------------------------------------------------------------
    metrics_host: str = Field("127.0.0.1", description="Address /metrics listens on")
    metrics_port: int | None = Field(
        None, description="Port of /metrics (default per service: run 9400, fetcher 9401, ...)"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level")
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="auto: text on a terminal, JSON lines otherwise"
    )
    shutdown_timeout_s: float = Field(10.0, gt=0, description="Budget to drain on SIGTERM")

    @model_validator(mode="after")
    def _read_secret_files(self) -> Settings:
        _read_secret(self, "slack_webhook_url", self.slack_webhook_url_file)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    def metrics_port_for(self, service: str) -> int:
        return (
            self.metrics_port if self.metrics_port is not None else SERVICE_METRICS_PORTS[service]
        )

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some settings changed, validated like the original."""
        return type(self).model_validate({**self.model_dump(), **changes})

    def describe(self) -> dict[str, str]:
        """Every setting as operators see it: secrets masked."""
        shown: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            shown[name] = "***" if isinstance(value, SecretStr) else str(value)
        return shown
