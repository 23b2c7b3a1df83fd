"""`newsmon fetch` and `newsmon feeds ...`: the fetcher for people and scripts.

`fetch` and `feeds check` never touch Kafka. `feeds list|add|remove|import-opml|export-opml`
work on the feeds topic (the live list every fetcher replica follows, fleet.py) when
NEWSMON_KAFKA_BOOTSTRAP is set, else on the feeds file (imported into the topic when a fetcher
starts); `--file PATH` always means that file.

The command functions take their inputs and text streams and return exit codes, so tests call
them directly; cli.py wires them into the `newsmon` command line.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from aiokafka.errors import KafkaError
from newsmon.shared.messages import Article
from newsmon.shared.settings import Settings
from pydantic import ValidationError

from .failures import FailureKind, FetchError, failure_of
from .feeds import (
    FeedConfig,
    FeedRecord,
    FeedsFileError,
    derive_name,
    dump_feeds,
    feeds_from_opml,
    feeds_to_opml,
    load_feeds,
    parse_feeds,
)
from .fleet import read_feeds, write_feeds
from .http import fetch, make_client
from .parse import FeedParseError, ParsedFeed, parse_feed
from .ssrf import AllowList

__all__ = [
    "feeds_add",
    "feeds_check",
    "feeds_export",
    "feeds_import",
    "feeds_list",
    "feeds_remove",
    "fetch_command",
    "settings_or_none",
    "topic_feeds_add",
    "topic_feeds_import",
    "topic_feeds_list",
    "topic_feeds_remove",
]


def _article_line(article: Article) -> str:
    return article.model_dump_json(by_alias=True)


async def _fetch_one(
    target: str, settings: Settings, allow: AllowList
) -> tuple[ParsedFeed, dict[str, float | int | str]]:
    """Fetch (or read) and parse one input; the figures say how it went."""
    path = Path(target)
    is_url = target.startswith(("http://", "https://"))
    started = time.perf_counter()
    info: dict[str, float | int | str] = {}
    if not is_url:
        try:
            body = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise FetchError(FailureKind.FILE, f"cannot read file: {exc.strerror or exc}") from None
        url, content_type, final = (await asyncio.to_thread(path.resolve)).as_uri(), None, None
    else:
        async with make_client(
            connect_s=settings.fetch_connect_timeout_s,
            read_s=settings.fetch_read_timeout_s,
            contact=settings.fetch_contact,
            allow=allow,
        ) as client:
            result = await fetch(
                client,
                target,
                max_bytes=settings.fetch_max_bytes,
                deadline_s=settings.fetch_total_timeout_s,
                max_redirects=settings.fetch_max_redirects,
            )
        body, url, content_type, final = result.body, target, result.content_type, result.final_url
        info.update(status=result.status, redirects=result.redirects, wire_bytes=result.raw_bytes)
    info["fetch_ms"] = round((time.perf_counter() - started) * 1000, 1)
    info["bytes"] = len(body)
    try:
        feed = FeedConfig(name=derive_name(url), url=url)
    except ValueError:
        feed = FeedConfig(name="feed", url="https://feed.invalid/")
    started = time.perf_counter()
    parsed = await asyncio.to_thread(
        lambda: parse_feed(
            body,
            feed=feed,
            fetched_at=datetime.now(UTC),
            content_type=content_type,
            base_url=final,
        )
    )
    info["parse_ms"] = round((time.perf_counter() - started) * 1000, 1)
    info["items"] = len(parsed.articles)
    info["skipped"] = len(parsed.skipped)
    return parsed, info


def settings_or_none(err: TextIO) -> Settings | None:
    try:
        return Settings()
    except (ValidationError, OSError) as exc:
        print(f"newsmon: invalid configuration: {exc}".splitlines()[0], file=err)
        return None


def fetch_command(
    targets: list[str], out: TextIO, err: TextIO, settings: Settings | None = None
) -> int:
    """Print every input's articles as JSON lines; 0 when every input parsed, else 1."""
    settings = settings or settings_or_none(err)
    if settings is None:
        return 2
    allow = AllowList.parse(settings.fetch_allow_hosts)
    failed = 0
    for target in targets:
        try:
            parsed, _ = asyncio.run(_fetch_one(target, settings, allow))
        except (FetchError, FeedParseError) as exc:
            print(f"newsmon fetch: {target}: {exc} ({failure_of(exc).kind})", file=err)
            failed += 1
            continue
        for article in parsed.articles:
            print(_article_line(article), file=out)
    return 1 if failed else 0


def feeds_check(url: str, out: TextIO, err: TextIO, settings: Settings | None = None) -> int:
    """Fetch once and print what would be published, with timings."""
    settings = settings or settings_or_none(err)
    if settings is None:
        return 2
    try:
        parsed, info = asyncio.run(
            _fetch_one(url, settings, AllowList.parse(settings.fetch_allow_hosts))
        )
    except (FetchError, FeedParseError) as exc:
        print(f"newsmon feeds check: {url}: {exc} ({failure_of(exc).kind})", file=err)
        return 1
    figures = "  ".join(f"{k}={v}" for k, v in info.items())
    print(f"# {parsed.title or '(untitled)'}  {figures}", file=out)
    if parsed.hub_url:
        print(f"# WebSub hub: {parsed.hub_url}", file=out)
    for skipped in parsed.skipped:
        print(f"# skipped entry {skipped.index}: {skipped.reason}", file=out)
    for article in parsed.articles:
        print(_article_line(article), file=out)
    return 0


def _load(path: Path, err: TextIO) -> list[FeedConfig] | None:
    if not path.exists():
        return []
    try:
        return load_feeds(path)
    except FeedsFileError as exc:
        print(f"newsmon feeds: {exc}", file=err)
        return None


def feeds_list(path: Path, out: TextIO, err: TextIO) -> int:
    feeds = _load(path, err)
    if feeds is None:
        return 1
    _print_feeds(feeds, out)
    return 0


def _print_feeds(feeds: list[FeedConfig], out: TextIO) -> None:
    for f in feeds:
        interval = f"{f.interval_min_s or '-'}..{f.interval_max_s or '-'}"
        full = {None: "auto", True: "on", False: "off"}[f.full_text]
        state = "" if f.enabled else "  (disabled)"
        print(
            f"{f.name:<24} {f.url}  lang={f.lang or '-'} interval={interval} full_text={full}"
            f"{state}",
            file=out,
        )


def _append(path: Path, new: list[FeedConfig], existing: list[FeedConfig], err: TextIO) -> int:
    """Append `new` as [[feed]] tables (comments in the file are kept), validated first."""
    old_text = path.read_text(encoding="utf-8") if path.exists() else ""
    text = old_text.rstrip("\n") + ("\n\n" if old_text.strip() else "") + dump_feeds(new)
    try:
        parse_feeds(text, source=str(path))
    except FeedsFileError as exc:
        print(f"newsmon feeds: {exc}", file=err)
        return 1
    path.write_text(text, encoding="utf-8")
    return 0


def feeds_add(path: Path, feed: FeedConfig, out: TextIO, err: TextIO) -> int:
    feeds = _load(path, err)
    if feeds is None:
        return 1
    code = _append(path, [feed], feeds, err)
    if code == 0:
        print(f"added {feed.name} ({feed.url}) to {path}", file=out)
    return code


def feeds_remove(path: Path, name: str, out: TextIO, err: TextIO) -> int:
    feeds = _load(path, err)
    if feeds is None:
        return 1
    kept = [f for f in feeds if f.name != name]
    if len(kept) == len(feeds):
        print(f"newsmon feeds remove: no feed named {name!r} in {path}", file=err)
        return 1
    header = f"# newsmon feeds (rewritten by `newsmon feeds remove {name}`)\n\n"
    path.write_text(header + dump_feeds(kept), encoding="utf-8")
    print(f"removed {name} from {path}", file=out)
    return 0


def _new_feeds(incoming: list[FeedConfig], existing: list[FeedConfig]) -> list[FeedConfig]:
    """The feeds of `incoming` whose URL is not in `existing`, renamed -2, -3 ... where their
    name is taken."""
    urls = {f.url for f in existing}
    names = {f.name for f in existing}
    new: list[FeedConfig] = []
    for feed in incoming:
        if feed.url in urls:
            continue
        name, n = feed.name, 1
        while name in names:
            n += 1
            name = f"{feed.name[:60]}-{n}"
        names.add(name)
        urls.add(feed.url)
        new.append(replace(feed, name=name))
    return new


def _read_opml(opml: Path, err: TextIO) -> list[FeedConfig] | None:
    try:
        return feeds_from_opml(opml.read_bytes())
    except (FeedsFileError, OSError) as exc:
        print(f"newsmon feeds import-opml: {opml}: {exc}", file=err)
        return None


def feeds_import(path: Path, opml: Path, out: TextIO, err: TextIO) -> int:
    feeds = _load(path, err)
    if feeds is None:
        return 1
    incoming = _read_opml(opml, err)
    if incoming is None:
        return 1
    new = _new_feeds(incoming, feeds)
    code = _append(path, new, feeds, err) if new else 0
    if code == 0:
        skipped = len(incoming) - len(new)
        print(f"imported {len(new)} feeds into {path} ({skipped} already present)", file=out)
    return code


def feeds_export(path: Path, out: TextIO, err: TextIO) -> int:
    feeds = _load(path, err)
    if feeds is None:
        return 1
    out.write(feeds_to_opml(feeds))
    return 0


# --- the same on the feeds topic (NEWSMON_KAFKA_BOOTSTRAP set) ----------------------------------


async def _with_access_checked(settings: Settings, work: Any) -> Any:
    """`work`, once one connection showed that Kafka accepts our credentials and TLS settings
    (a refusal is then KafkaAccessError, said as such, rather than "Unable to bootstrap")."""
    from newsmon.shared.broker import check_access
    from newsmon.shared.kafka import security_kwargs

    try:
        await check_access(settings.kafka_bootstrap or "", security=security_kwargs(settings))
    except BaseException:
        work.close()  # never started: no "coroutine was never awaited" warning
        raise
    return await work


def _topic_call(settings: Settings, what: str, err: TextIO, work: Any) -> Any:
    """Run `work` (a coroutine) against Kafka; one line and None when Kafka fails."""
    from newsmon.shared.errors import KafkaAccessError

    try:
        return asyncio.run(_with_access_checked(settings, work))
    except KafkaAccessError as exc:
        print(f"newsmon feeds {what}: {exc}", file=err)
        return None
    except (KafkaError, OSError) as exc:
        print(
            f"newsmon feeds {what}: Kafka at {settings.kafka_bootstrap}: "
            f"{type(exc).__name__}: {exc}",
            file=err,
        )
        return None


def topic_feeds_list(settings: Settings, out: TextIO, err: TextIO, *, opml: bool = False) -> int:
    records = _topic_call(settings, "list", err, read_feeds(settings))
    if records is None:
        return 1
    feeds = [r.feed for _, r in sorted(records.items())]
    if opml:
        out.write(feeds_to_opml(feeds))
    else:
        _print_feeds(feeds, out)
    return 0


def topic_feeds_add(settings: Settings, feed: FeedConfig, out: TextIO, err: TextIO) -> int:
    records = _topic_call(settings, "add", err, read_feeds(settings))
    if records is None:
        return 1
    same_url = next((r.feed.name for r in records.values() if r.feed.url == feed.url), None)
    if feed.name in records or same_url is not None:
        taken = (
            f"a feed named {feed.name!r}" if feed.name in records else f"{feed.url} as {same_url}"
        )
        print(
            f"newsmon feeds add: {settings.topics.feeds} has {taken}: remove it first, or "
            "give another --name",
            file=err,
        )
        return 1
    if _topic_call(settings, "add", err, write_feeds(settings, [FeedRecord(feed)])) is None:
        return 1
    print(f"added {feed.name} ({feed.url}) to {settings.topics.feeds}", file=out)
    return 0


def topic_feeds_remove(
    settings: Settings, name: str, path: Path | None, out: TextIO, err: TextIO
) -> int:
    """Remove `name` from the topic, and from the feeds file `path` when it lists it there (or
    the next fetcher start would import it again)."""
    records = _topic_call(settings, "remove", err, read_feeds(settings))
    if records is None:
        return 1
    if name not in records:
        print(f"newsmon feeds remove: no feed named {name!r} in {settings.topics.feeds}", file=err)
        return 1
    if _topic_call(settings, "remove", err, write_feeds(settings, removals=[name])) is None:
        return 1
    print(f"removed {name} from {settings.topics.feeds}", file=out)
    listed = path is not None and path.exists() and name in {f.name for f in _load(path, err) or []}
    if path is not None and listed:
        return feeds_remove(path, name, out, err)
    if records[name].origin == "file":
        print(
            f"note: {name} came from a feeds file: delete it there too, or the next fetcher "
            "start imports it again",
            file=err,
        )
    return 0


def topic_feeds_import(settings: Settings, opml: Path, out: TextIO, err: TextIO) -> int:
    incoming = _read_opml(opml, err)
    if incoming is None:
        return 1
    records = _topic_call(settings, "import-opml", err, read_feeds(settings))
    if records is None:
        return 1
    new = _new_feeds(incoming, [r.feed for r in records.values()])
    if new:
        records_new = [FeedRecord(f) for f in new]
        if _topic_call(settings, "import-opml", err, write_feeds(settings, records_new)) is None:
            return 1
    skipped = len(incoming) - len(new)
    print(
        f"imported {len(new)} feeds into {settings.topics.feeds} ({skipped} already present)",
        file=out,
    )
    return 0
