"""The command line of the fetcher: `newsmon fetch` and `newsmon feeds ...` (argument parsing
only; the commands themselves are in commands.py, `feeds health` in newsmon.operator)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from newsmon.shared.settings import Settings

from .commands import (
    feeds_add,
    feeds_check,
    feeds_export,
    feeds_import,
    feeds_list,
    feeds_remove,
    fetch_command,
    settings_or_none,
    topic_feeds_add,
    topic_feeds_import,
    topic_feeds_list,
    topic_feeds_remove,
)
from .feeds import FeedConfig, derive_name

__all__ = ["add_subcommands"]


def _run_fetch(args: argparse.Namespace) -> int:
    return fetch_command(args.inputs, sys.stdout, sys.stderr)


def _run_feeds(args: argparse.Namespace) -> int:
    out, err = sys.stdout, sys.stderr
    if args.action == "check":
        return feeds_check(args.url, out, err)
    if args.action == "health":
        from newsmon.operator import cmd_feeds_health

        return cmd_feeds_health()
    feed: FeedConfig | None = None
    if args.action == "add":
        try:
            feed = FeedConfig(
                name=args.name or derive_name(args.url),
                url=args.url,
                interval_min_s=args.interval_min,
                interval_max_s=args.interval_max,
                full_text=args.full_text,
                lang=args.lang,
            )
        except ValueError as exc:
            print(f"newsmon feeds add: {exc}", file=err)
            return 1
    settings = settings_or_none(err)
    if settings is None:
        return 2
    if args.file is None and settings.kafka_bootstrap:
        return _run_on_topic(args, settings, feed, out, err)
    path = Path(args.file) if args.file is not None else settings.feeds_file
    if args.action == "list":
        return feeds_list(path, out, err)
    if args.action == "export-opml":
        return feeds_export(path, out, err)
    if args.action == "import-opml":
        return feeds_import(path, Path(args.opml), out, err)
    if args.action == "remove":
        return feeds_remove(path, args.name, out, err)
    assert feed is not None
    return feeds_add(path, feed, out, err)


def _run_on_topic(
    args: argparse.Namespace, settings: Settings, feed: FeedConfig | None, out: TextIO, err: TextIO
) -> int:
    if args.action in ("list", "export-opml"):
        return topic_feeds_list(settings, out, err, opml=args.action == "export-opml")
    if args.action == "import-opml":
        return topic_feeds_import(settings, Path(args.opml), out, err)
    if args.action == "remove":
        return topic_feeds_remove(settings, args.name, settings.feeds_file, out, err)
    assert feed is not None
    return topic_feeds_add(settings, feed, out, err)


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `fetch` and `feeds` on the `newsmon` CLI's subparsers."""
    fetch_p = subparsers.add_parser(
        "fetch",
        help="fetch/parse feeds (URLs or files) and print Article JSON lines, without Kafka",
        description="Fetch each URL (or read each file), parse it and print the normalized "
        "Article messages as JSON lines on stdout. One stderr line per failing input; exit "
        "code 0 when every input parsed, 1 otherwise. The SSRF guard applies "
        "(NEWSMON_FETCH_ALLOW_HOSTS).",
    )
    fetch_p.add_argument("inputs", nargs="+", metavar="URL_OR_PATH")
    fetch_p.set_defaults(func=_run_fetch)

    feeds = subparsers.add_parser(
        "feeds",
        help="list, add, remove, import/export (OPML) or check feeds",
        description="Manage the feeds. With NEWSMON_KAFKA_BOOTSTRAP set: the feeds topic "
        "<prefix>.feeds.v1, which running fetchers follow at once (no restart); `remove` also "
        "deletes the feed from NEWSMON_FEEDS_FILE when it is listed there. Without it, or with "
        "--file: the feeds file, which a fetcher imports into the topic when it starts.",
    )
    feeds.add_argument(
        "--file",
        default=None,
        help="work on this feeds file instead of the feeds topic (default without "
        "NEWSMON_KAFKA_BOOTSTRAP: NEWSMON_FEEDS_FILE)",
    )
    actions = feeds.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="print the configured feeds")
    add = actions.add_parser("add", help="add a feed")
    add.add_argument("url")
    add.add_argument("--name", default=None)
    add.add_argument("--lang", default=None)
    add.add_argument("--interval-min", type=float, default=None, metavar="SECONDS")
    add.add_argument("--interval-max", type=float, default=None, metavar="SECONDS")
    add.add_argument("--full-text", action=argparse.BooleanOptionalAction, default=None)
    remove = actions.add_parser("remove", help="remove a feed by name")
    remove.add_argument("name")
    imp = actions.add_parser("import-opml", help="add the feeds of an OPML file")
    imp.add_argument("opml", metavar="FILE")
    actions.add_parser("export-opml", help="print the feeds as OPML")
    check = actions.add_parser("check", help="fetch once; print what would be published")
    check.add_argument("url")
    actions.add_parser(
        "health",
        help="per-feed health from Kafka: last success, last new item, errors in a row and "
        "why, interval, items in the last 24 h",
    )
    feeds.set_defaults(func=_run_feeds)
