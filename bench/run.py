"""Benchmarks: `make bench`. Each scenario runs its variants side by side in one process and
writes the figures, with a description of the machine, to bench/results/<name>.json.

Figures are medians of several repetitions; they are measurements, never test assertions.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "load_average": os.getloadavg(),
    }


def measure(fn: Callable[[], int], repeat: int = 5) -> dict[str, Any]:
    """Run fn `repeat` times; fn returns the number of operations it did."""
    durations: list[float] = []
    operations = 0
    peak = 0
    for _ in range(repeat):
        tracemalloc.start()
        start = time.perf_counter()
        operations = fn()
        durations.append(time.perf_counter() - start)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    median = statistics.median(durations)
    return {
        "operations": operations,
        "median_seconds": round(median, 4),
        "min_seconds": round(min(durations), 4),
        "max_seconds": round(max(durations), 4),
        "ops_per_second": round(operations / median, 1) if median else None,
        "peak_python_memory_kib": round(peak / 1024, 1),
        "repeat": repeat,
    }


def write(name: str, figures: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    document = {
        "benchmark": name,
        "at": datetime.now(UTC).isoformat(),
        "machine": machine(),
        "results": figures,
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(document["results"], indent=2, ensure_ascii=False))
    return path


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="clsm-bench-"))
    os.environ["CLSM_VAR_DIR"] = str(tmp / "var")
    os.environ["CLSM_ENV"] = "test"
    from bench import scenarios

    try:
        for name, scenario in scenarios.ALL.items():
            if len(sys.argv) > 1 and name not in sys.argv[1:]:
                continue
            print(f"== {name}")
            write(name, scenario(tmp, measure))
    finally:
        scenarios.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
