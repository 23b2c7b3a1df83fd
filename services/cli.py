"""The `newsmon` command line: run the services, watch topics, manage the local broker."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import textwrap
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from newsmon import __version__
from newsmon.shared.lifecycle import run_main
from newsmon.shared.logging import configure_logging
from newsmon.shared.services import SERVICE_NAMES, SERVICES, Service
from newsmon.shared.settings import Settings, Topics
from pydantic import ValidationError

__all__ = ["main"]

DESCRIPTION = """\
newsmon watches news feeds for stories about North Korea-Russia military cooperation
(North Korean troops in Russia, munitions and missiles for Russia, Russian military
technology for North Korea, the 2024 treaty, summits) and publishes alerts to Kafka
topics and Slack.

Pipeline: fetcher -> newsmon.articles.v1 -> classifier -> newsmon.classified.v1
          -> alerter -> newsmon.alerts.v1 -> notifier -> Slack

Start here:
  newsmon run                      everything in one process (starts a local Kafka
                                   broker when NEWSMON_KAFKA_BOOTSTRAP is unset)
  newsmon tail newsmon.alerts.v1   print alerts as JSON lines
  newsmon web                      the alerts page on http://127.0.0.1:8480/

Configuration comes from NEWSMON_* environment variables or a TOML file named by
NEWSMON_CONFIG_FILE; `newsmon config` prints every setting with its current value.
"""

EPILOG = "Each command has its own --help. Docs: README.md (Configuration, Topics and messages)."


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        ]
        raise SystemExit("newsmon: invalid configuration:\n" + "\n".join(lines)) from None
    except OSError as exc:
        raise SystemExit(f"newsmon: cannot read configuration: {exc}") from None


def _configure_logs(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)


def cmd_serve(args: argparse.Namespace) -> int:
    from newsmon.runner import serve

    settings = _settings()
    _configure_logs(settings)
    names = list(SERVICE_NAMES) if args.command == "run" else [args.command]
    if "fetcher" in names:
        _check_feeds_file(settings)
    if "web" in names:
        _check_web_access(settings)
    start_broker = args.command == "run" and not settings.kafka_bootstrap
    main = serve(settings, names, process_name=args.command, start_broker=start_broker)
    return run_main(main, settings.event_loop)


def _check_feeds_file(settings: Settings) -> None:
    """A broken feeds file is a one-line error before anything starts, not a traceback."""
    from newsmon.fetcher.feeds import FeedsFileError, load_feeds

    try:
        load_feeds(settings.feeds_file)
    except (FeedsFileError, OSError) as exc:
        raise SystemExit(f"newsmon: {exc}") from None


def _check_web_access(settings: Settings) -> None:
    """The web page beyond loopback without a token is refused before anything starts."""
    from newsmon.shared.errors import ConfigError
    from newsmon.web.app import web_token

    try:
        web_token(settings)
    except ConfigError as exc:
        raise SystemExit(f"newsmon: {exc}") from None


def _decode_value(value: bytes | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value.decode("utf-8", errors="replace")


def record_as_json(record: Any) -> str:
    return json.dumps(
        {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": record.timestamp,
            "key": record.key.decode("utf-8", errors="replace") if record.key else None,
            "headers": {k: bytes(v).decode("utf-8", errors="replace") for k, v in record.headers},
            "value": _decode_value(record.value),
        },
        ensure_ascii=False,
    )


async def _tail(
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool,
    limit: int | None,
    idle_timeout_s: float | None,
    since: datetime | None = None,
    follow: bool = True,
    keep: Callable[[Any], bool] = lambda value: True,
    show: Callable[[Any], None] | None = None,
) -> int:
    from aiokafka import TopicPartition
    from newsmon.shared.broker import broker_ready
    from newsmon.shared.kafka import make_reader, security_kwargs, seek_to_time, stop_consumer

    bootstrap = settings.kafka_bootstrap or ""
    security = security_kwargs(settings)
    if not await broker_ready(bootstrap, security=security):
        print(f"newsmon tail: waiting for Kafka at {bootstrap} ...", file=sys.stderr, flush=True)
        while True:
            await asyncio.sleep(1.0)
            if await broker_ready(bootstrap, security=security):
                break
    # A live tail (without --follow: to the ends it saw at start, by the same position rule
    # as shared/statetopic.py); not the state-topic reader, as it also stops on --max and
    # --idle-timeout and prints as it goes.
    consumer = make_reader(
        settings,
        client_id="newsmon-tail",
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    printed = 0
    loop = asyncio.get_running_loop()
    last = loop.time()
    try:
        tps = [
            TopicPartition(topic, p) for p in await _topic_partitions(settings, topic, wait=follow)
        ]
        consumer.assign(tps)
        if since is not None:
            await seek_to_time(consumer, tps, int(since.timestamp() * 1000))
        elif from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        ends = await consumer.end_offsets(tps)
        while limit is None or printed < limit:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    last = loop.time()
                    if not keep(_decode_value(record.value)):
                        continue
                    if show is not None:
                        show(_decode_value(record.value))
                    else:
                        print(record_as_json(record), flush=True)
                    printed += 1
                    if limit is not None and printed >= limit:
                        break
            if idle_timeout_s is not None and loop.time() - last > idle_timeout_s:
                break
            if not follow and all([await _at_end(consumer, tp, ends[tp]) for tp in tps]):
                break
    finally:
        await stop_consumer(consumer)
    return 0


async def _topic_partitions(settings: Settings, topic: str, *, wait: bool) -> list[int]:
    """The topic's partitions; a topic not created yet is waited for (said once) when
    following, an error otherwise."""
    from newsmon.shared.statetopic import wait_for_partitions

    def missing() -> None:
        if not wait:
            raise SystemExit(f"newsmon tail: topic {topic} does not exist")
        print(f"newsmon tail: waiting for topic {topic} ...", file=sys.stderr, flush=True)

    return await wait_for_partitions(settings, topic, every_s=1.0, on_missing=missing)


async def _at_end(consumer: Any, tp: Any, end: int) -> bool:
    return bool(await consumer.position(tp) >= end)


def cmd_tail(args: argparse.Namespace) -> int:
    from newsmon.operator import TailFilter, console_for, pretty_alert
    from newsmon.runner import local_bootstrap
    from newsmon.shared.errors import KafkaAccessError

    settings = _settings()
    configure_logging("WARNING", "text")
    flt = TailFilter(
        frozenset(args.category or ()), frozenset(args.lang or ()), frozenset(args.feed or ())
    )
    console = console_for()

    def show(value: Any) -> None:
        for line in pretty_alert(value):
            console.print(line)
        console.print()

    try:
        return asyncio.run(
            _tail(
                settings.with_overrides(kafka_bootstrap=local_bootstrap(settings)),
                args.topic,
                from_beginning=not args.new_only,
                limit=args.max,
                idle_timeout_s=args.idle_timeout,
                since=args.since,
                follow=args.follow,
                keep=flt.matches,
                show=show if args.pretty else None,
            )
        )
    except KafkaAccessError as exc:
        print(f"newsmon tail: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


def _time_arg(text: str) -> datetime:
    from newsmon.operator import parse_time

    try:
        return parse_time(text, datetime.now(UTC))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_broker(args: argparse.Namespace) -> int:
    from newsmon.shared.broker import LocalKafka, broker_ready

    settings = _settings()
    _configure_logs(settings)
    broker = LocalKafka(
        settings.kafka_local_dir, port=settings.kafka_local_port, heap=settings.kafka_local_heap
    )
    if args.action == "start":
        if asyncio.run(broker_ready(broker.bootstrap)):
            print(f"a Kafka broker already answers on {broker.bootstrap}")
            return 0
        broker.start(detach=True)
        took = asyncio.run(broker.wait_ready())
        print(
            f"Kafka broker ready on {broker.bootstrap} in {took:.1f}s (log: {broker.log_file}); "
            "stop it with `make kafka-stop`"
        )
    elif args.action == "stop":
        pid = broker.running_pid()
        broker.stop()
        print(f"stopped Kafka broker (pid {pid})" if pid else "no local Kafka broker was running")
    else:
        pid = broker.running_pid()
        ready = asyncio.run(broker_ready(broker.bootstrap))
        print(
            f"pid: {pid or '-'}  bootstrap: {broker.bootstrap}  ready: {'yes' if ready else 'no'}"
        )
        return 0 if ready else 1
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from newsmon.shared.dashboard import render

    text = render()
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    settings = _settings()
    for name, value in settings.describe().items():
        field = type(settings).model_fields[name]
        print(f"NEWSMON_{name.upper():<30} = {value:<40} {field.description or ''}".rstrip())
    return 0


def _run_list() -> str:
    """ "fetcher, classifier, ... and web": what `newsmon run` starts, from the table."""
    *first, last = SERVICE_NAMES
    return f"{', '.join(first)} and {last}"


def _service_description(row: Service) -> str:
    topics = Topics("newsmon")  # the default NEWSMON_TOPIC_PREFIX
    reads = ", ".join(getattr(topics, name) for name in row.consumes)
    # Wrapped here: the examples epilog makes the formatter keep the text as it is.
    return textwrap.fill(
        f"{row.help}. Reads {reads} (topic names with the default NEWSMON_TOPIC_PREFIX); "
        f"/metrics on NEWSMON_METRICS_HOST:{row.metrics_port} unless NEWSMON_METRICS_PORT is set.",
        width=79,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsmon",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"newsmon {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(
        name: str, help_: str, func: Callable[[argparse.Namespace], int]
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    add(
        "run",
        f"run {_run_list()} in one process "
        "(starts a local Kafka broker when NEWSMON_KAFKA_BOOTSTRAP is unset)",
        cmd_serve,
    )
    for row in SERVICES:
        add(row.name, row.help, cmd_serve).description = _service_description(row)

    tail = add("tail", "print a topic's messages as JSON lines (Ctrl-C stops)", cmd_tail)
    tail.add_argument("topic", help="e.g. newsmon.alerts.v1")
    tail.add_argument("--new-only", action="store_true", help="skip what is already in the topic")
    tail.add_argument("--max", type=int, default=None, help="exit after N messages")
    tail.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="exit when no message came for this long",
    )
    tail.add_argument(
        "--since",
        type=_time_arg,
        default=None,
        metavar="TIME",
        help="start at this time: 30m, 1h, 2d, or an ISO 8601 time (default: the beginning)",
    )
    tail.add_argument(
        "--follow",
        "-f",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep printing new messages (default); --no-follow exits at the topic's end",
    )
    tail.add_argument("--category", action="append", help="only alerts of this category")
    tail.add_argument("--lang", action="append", help="only messages in this language (ISO 639-1)")
    tail.add_argument("--feed", action="append", help="only messages of this feed")
    tail.add_argument(
        "--pretty",
        action="store_true",
        help="print alerts as people read them: headline, outlet, categories, evidence",
    )

    broker = add("broker", "start, stop or check the local Kafka broker (127.0.0.1)", cmd_broker)
    broker.add_argument("action", choices=["start", "stop", "status"])

    add("config", "print every setting (NEWSMON_*) with its value and meaning", cmd_config)

    dashboard = add(
        "dashboard", "write the Grafana dashboard JSON (generated from code)", cmd_dashboard
    )
    dashboard.description = (
        "Prints the newsmon Grafana dashboard as JSON, or writes it to a file: "
        "`newsmon dashboard -o deploy/grafana/dashboards/newsmon.json` refreshes the "
        "provisioned copy after a change to shared/dashboard.py."
    )
    dashboard.add_argument("-o", "--output", default="-", help="file to write, or - for stdout")

    _add_optional_commands(sub)
    from newsmon.operator import add_examples

    add_examples(sub.choices)
    return parser


def _add_optional_commands(sub: Any) -> None:
    """Commands whose modules bring their own argument parsing."""
    from newsmon.classifier.cli import add_subcommands as add_classify

    add_classify(sub)
    _add_routes_command(sub)
    from newsmon.fetcher.cli import add_subcommands as add_fetch

    add_fetch(sub)
    from newsmon.operator import add_subcommands as add_operator

    add_operator(sub)
    preview = sub.add_parser(
        "slack-preview",
        help="print the exact Slack webhook payload for an alert JSON",
        description="Reads one alert (JSON, or JSON lines) from FILE or stdin and prints the "
        "Slack webhook payload newsmon would post for it.",
    )
    preview.add_argument("file", nargs="?", default="-", help="alert JSON file, or - for stdin")
    preview.set_defaults(func=cmd_slack_preview)


def _add_routes_command(sub: Any) -> None:
    """`newsmon routes check`: the CLI side of alert routing (alerter/routes.py stays pure)."""
    routes = sub.add_parser(
        "routes",
        help="show where alerts are routed (NEWSMON_ALERT_ROUTES_FILE)",
        description="Alert routing rules: every alert goes to <prefix>.alerts.v1, and rules "
        "(NEWSMON_ALERT_ROUTES_FILE, else the built-in per-category table) add topics.",
    )
    actions = routes.add_subparsers(dest="routes_action", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="print the topics a sample alert would go to",
        description="Reads an alert (the JSON itself, a file, or stdin) -- a full alert or "
        'just {"categories": [...], "score": 0.9, "lang": "en", "source": "Yonhap"} -- and '
        "prints one line per topic: the topic, a tab, the rule that chose it.",
    )
    check.add_argument(
        "alert_json", nargs="?", default=None, metavar="ALERT_JSON", help="JSON, FILE or -"
    )
    check.set_defaults(func=cmd_routes_check)


def cmd_routes_check(args: argparse.Namespace) -> int:
    from newsmon.alerter.routes import check_command

    settings = _settings()
    return check_command(
        args.alert_json, settings.alert_routes_file, settings.topic_prefix, sys.stdout, sys.stderr
    )


def cmd_slack_preview(args: argparse.Namespace) -> int:
    from newsmon.notifier.slack import preview_command

    return preview_command(args.file, sys.stdout, sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
