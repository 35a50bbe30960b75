"""Figures of the reliability scenarios: printed, and written to bench/results in full runs.

`make test-reliability` sets RELIABILITY_COUNTS=full (the counts of the issue); `make test`
runs the same scenarios with small counts so that none of them rots.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

from tests.support.env import ROOT

FULL = os.environ.get("RELIABILITY_COUNTS") == "full"


def scale(full: int, small: int) -> int:
    return full if FULL else small


_figures: dict[str, dict[str, Any]] = {}


def record(scenario: str, **figures: Any) -> None:
    if "dialect" in figures:
        figures["dialect"] = str(figures["dialect"]).split("+")[0]
        scenario = f"{scenario}[{figures['dialect']}]"
    _figures[scenario] = figures
    print(f"\n[fiabilité] {scenario}: {json.dumps(figures, ensure_ascii=False)}")


def write() -> None:
    if not _figures or not FULL:
        return
    from bench.run import machine

    path = ROOT / "bench" / "results" / "reliability.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    existing: dict[str, Any] = {}
    if path.exists():
        existing = json.loads(path.read_text()).get("results", {})
    document = {
        "benchmark": "reliability",
        "at": datetime.now(UTC).isoformat(),
        "machine": machine(),
        "results": {**existing, **_figures},
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
