"""Where feed bodies are parsed: a worker thread of the fetcher process (the default) or a pool
of worker processes (NEWSMON_FETCH_PARSE_WORKERS > 0).

parse_feed is pure Python and CPU-bound (about 10 ms for a 30-item feed, up to hundreds of ms
for big ones). In a thread it holds the GIL the event loop needs: with several parses in
flight, timers and sockets wake tens of ms late and the fetcher is capped at one core. In
worker processes the loop only pickles the body out and the articles back (bench_fetcher.py
measures both).

Workers are started by a forkserver (not fork: the fetcher has threads and sockets open), so
each imports only the parsing modules. A worker that dies (killed, out of memory) breaks the
pool: the parse in flight fails as a FeedParseError, counted like any parse failure and retried
at the feed's next poll, and the next parse starts a fresh pool. A fetcher that dies without
closing the pool (kill -9, out of memory) takes its workers with it: each one watches the
fetcher's process (`_exit_with`) and exits when it is gone, instead of living on as an orphan
(the pool's queues keep a worker blocked forever: it holds both ends of its own pipe).
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import select
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import Literal

from .feeds import FeedConfig
from .items import Memo
from .parse import FeedParseError, ParsedFeed, parse_feed

__all__ = ["FeedParser", "parse_workers"]


def parse_workers(setting: int | Literal["auto"]) -> int:
    """Worker processes for NEWSMON_FETCH_PARSE_WORKERS: `auto` is one per core this process
    may run on when there is more than one, else 0 (the thread: a lone core gains nothing
    from processes but pays the pickling)."""
    if setting != "auto":
        return setting
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return cores if cores and cores > 1 else 0


def _exit_with(parent: int) -> None:
    """Worker initializer: exit this process as soon as process `parent` ends.

    A daemon thread waits on a pidfd of `parent` (Linux 5.3+: readable once it has exited,
    reaped or not); elsewhere it checks every second. The worker is a child of the
    forkserver, not of the fetcher, so PR_SET_PDEATHSIG or os.getppid() would watch the
    wrong process."""
    threading.Thread(target=_watch, args=(parent,), name="parent-watch", daemon=True).start()


def _watch(parent: int) -> None:
    try:
        pidfd = os.pidfd_open(parent)
    except (AttributeError, OSError):  # not Linux, an old kernel, or already gone
        while _alive(parent):
            time.sleep(1.0)
    else:
        select.select([pidfd], [], [])
    os._exit(0)  # the fetcher is gone: nobody will ever read what this worker parses


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else (pid reused): not our fetcher
        return False
    return True


class FeedParser:
    """Runs parse_feed off the event loop: in a thread (`workers == 0`) or in `workers`
    processes, started on first use. Close it when done (`close`, or `with`)."""

    def __init__(self, workers: int = 0) -> None:
        if workers < 0:
            raise ValueError(f"workers must be 0 or more, got {workers}")
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self.restarts = 0  # pools replaced after a worker died

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("forkserver"),
                initializer=_exit_with,
                initargs=(os.getpid(),),
            )
        return self._pool

    async def parse(
        self,
        body: bytes,
        *,
        feed: FeedConfig,
        fetched_at: datetime,
        content_type: str | None = None,
        base_url: str | None = None,
        memo: Memo | None = None,
    ) -> ParsedFeed:
        """parse_feed(body, ...) off the loop; raises what parse_feed raises."""
        call = functools.partial(
            parse_feed,
            body,
            feed=feed,
            fetched_at=fetched_at,
            content_type=content_type,
            base_url=base_url,
            memo=memo,
        )
        if not self.workers:
            return await asyncio.to_thread(call)
        pool = self._executor()
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, call)
        except BrokenProcessPool:
            if self._pool is pool:  # the first parse to notice replaces the pool
                self._pool = None
                self.restarts += 1
                pool.shutdown(wait=False, cancel_futures=True)
            raise FeedParseError(
                "the parser process died while parsing this feed (killed or out of memory?)",
                retriable=True,
            ) from None

    def close(self) -> None:
        """Stop the worker processes (a parse still running finishes first)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> FeedParser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
