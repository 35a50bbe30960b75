"""Every benchmark runs with tiny counts, so that none rots (figures are thrown away)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.run import BENCHMARKS, Context, run_one, summary
from tests.support.figures import FULL

# Benchmarks that drive flows through Prefect reuse the session's shared server and worker.
NEEDS_PREFECT = {
    "waiting_cost",
    "answer_latency",
    "whole_session",
    "scale_out",
    "waiting_on_postgresql",
    "year",
}


# The benchmarks that drive cases through Prefect take minutes even tiny (a year of operation
# over ten): their smoke runs go with `make test-reliability` (and they run in full in
# `make bench`); the others run with `make test` too.
LONG = NEEDS_PREFECT
SMOKED = [
    pytest.param(name, marks=pytest.mark.reliability) if name in LONG else name
    for name in BENCHMARKS
    if FULL or name not in LONG
]


@pytest.mark.parametrize("name", SMOKED)
def test_benchmark_runs_and_reports_its_targets(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    stack = request.getfixturevalue("prefect_stack") if name in NEEDS_PREFECT else None
    postgres = request.getfixturevalue("postgres_server")
    ctx = Context(tmp_path, smoke=True, stack=stack, postgres=postgres)
    document = run_one(name, ctx, tmp_path / "results")

    assert "error" not in document, document.get("error")
    assert json.loads((tmp_path / "results" / f"{name}.json").read_text()) == document
    assert document["figures"], "a benchmark reports figures"
    assert document["machine"]["cores"] and document["versions"]["prefect"]
    for target in document["targets"]:
        assert target["figure"] is not None and math.isfinite(target["figure"]), target
        assert target["goal"] and isinstance(target["met"], bool)
    assert name in summary([document])
