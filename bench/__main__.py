"""Run every benchmark module (bench/bench_*.py, each with `run() -> str` returning Markdown)
and write BENCHMARKS.md with the machine and the date, so figures are never quoted without them.
Speed is only ever measured here, never asserted in tests."""

from __future__ import annotations

import importlib
import os
import platform
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


def main(argv: list[str]) -> int:
    wanted = set(argv)
    modules = sorted(p.stem for p in HERE.glob("bench_*.py"))
    sections = []
    for name in modules:
        if wanted and name not in wanted:
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        module = importlib.import_module(f"bench.{name}")
        sections.append(module.run().strip())
    header = (
        "# Benchmarks\n\n"
        f"Written by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.\n\n"
        f"Machine: {machine()}.\n\n"
        "Every figure below was measured in the same run as its baseline.\n"
    )
    OUT.write_text(header + "\n" + "\n\n".join(sections) + "\n", encoding="utf-8")
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
