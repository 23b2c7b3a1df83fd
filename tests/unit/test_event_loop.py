"""NEWSMON_EVENT_LOOP: newsmon's main coroutine runs on the loop the setting names."""

from __future__ import annotations

import asyncio

import pytest
from newsmon.shared.lifecycle import run_main


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


@pytest.mark.parametrize(("choice", "module"), [("asyncio", "asyncio"), ("uvloop", "uvloop")])
def test_the_main_coroutine_runs_on_the_chosen_loop(choice: str, module: str) -> None:
    assert run_main(_loop_module(), choice).split(".")[0] == module  # type: ignore[arg-type]
