"""Run every benchmark module (bench/bench_*.py, each with `run() -> str` returning Markdown)
and write BENCHMARKS.md with the machine and the date, so figures are never quoted without them.
Speed is only ever measured here, never asserted in tests."""

from __future__ import annotations

import importlib
import os
import platform
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "BENCHMARKS.md"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{_cpu_model()}, {os.cpu_count()} cores{mem}; {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}"
    )


def _load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except (OSError, IndexError):
        return "unknown"


def _sections(text: str) -> dict[str, str]:
    """The `## ` sections of a BENCHMARKS.md, by title (what comes before the first is dropped)."""
    found: dict[str, str] = {}
    for chunk in re.split(r"(?m)^(?=## )", text)[1:]:
        title = chunk.splitlines()[0]
        found[title] = chunk.strip()
    return found


def main(argv: list[str]) -> int:
    # `python -m bench e2e stages` runs bench_e2e and bench_stages only; their sections replace
    # the same sections of BENCHMARKS.md and the others are kept as they were.
    wanted = {a if a.startswith("bench_") else f"bench_{a}" for a in argv}
    modules = sorted(p.stem for p in HERE.glob("bench_*.py"))
    sections = _sections(OUT.read_text(encoding="utf-8")) if wanted and OUT.exists() else {}
    for name in modules:
        if wanted and name not in wanted:
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        load = _load()
        module = importlib.import_module(f"bench.{name}")
        section = module.run().strip()
        title = section.splitlines()[0]
        stamp = f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {load} at start."
        sections[title] = section.replace("\n\n", f"\n\n{stamp}\n\n", 1)
    header = (
        "# Benchmarks\n\n"
        f"Written by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.\n\n"
        f"Machine: {machine()}.\n\n"
        "Every figure below was measured in the same run as its baseline; each section says "
        "when it was measured and the machine's 1-minute load average then (other work on the "
        "machine takes cores from the benchmark).\n"
    )
    body = "\n\n".join(sections.values())
    OUT.write_text(header + "\n" + body + "\n", encoding="utf-8")
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
