"""Benchmarks: `make bench` runs them all; `python -m bench.run NAME...` runs some.

Each benchmark compares, in the same run, our way and the alternative a user would otherwise
pick; it writes bench/results/<name>.json (figures, targets met or not, machine, date,
versions) and the summary table is printed at the end and kept in bench/README.md.

`--smoke` runs every benchmark with tiny counts into a temporary directory (the test suite
does this so that none rots); figures of a smoke run mean nothing and are never kept.
Benchmarks are measurements, never test assertions.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.postgres import PostgresServer
    from tests.support.prefect_stack import PrefectStack

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
README = ROOT / "bench" / "README.md"

# name -> "module:function"; each function takes a Context and returns a Result.
BENCHMARKS: dict[str, str] = {
    "waiting_cost": "bench.waiting:waiting_cost",
    "answer_latency": "bench.waiting:answer_latency",
    "mail_fanout": "bench.mail_fanout:mail_fanout",
    "history_volume": "bench.history:history_volume",
    "chain_verification": "bench.history:chain_verification",
    "whole_session": "bench.whole:whole_session",
    "scale_out": "bench.whole:scale_out",
    "waiting_on_postgresql": "bench.installation:waiting_on_postgresql",
    "link_resolution": "bench.scenarios:link_resolution",
    "year": "bench.year:year",
}

PACKAGES = [
    "prefect",
    "fastapi",
    "uvicorn",
    "sqlalchemy",
    "sqlmodel",
    "aiosmtplib",
    "aiosmtpd",
    "psycopg",
    "httpx",
]


# -- what a benchmark returns ---------------------------------------------------------
@dataclass
class Target:
    """One target of the issue: `figure` measured against `goal`, met or not."""

    name: str
    goal: str
    figure: float | None
    unit: str
    met: bool
    note: str = ""


@dataclass
class Result:
    figures: dict[str, Any]
    targets: list[Target] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# -- the context a benchmark runs in ----------------------------------------------------
class Context:
    """Scale, a temporary directory, fresh databases and Prefect stacks for benchmarks."""

    def __init__(
        self,
        tmp: Path,
        *,
        smoke: bool = False,
        stack: PrefectStack | None = None,
        postgres: PostgresServer | None = None,
    ) -> None:
        self.tmp = tmp
        self.smoke = smoke
        self._shared_stack = stack
        self._postgres = postgres
        self._own_postgres: PostgresServer | None = None
        self._databases = 0
        self.prefect_database_url = ""

    def scale(self, full: int, smoke: int) -> int:
        return smoke if self.smoke else full

    def postgres(self) -> PostgresServer:
        if self._postgres is None:
            from tests.support.postgres import PostgresServer

            self._own_postgres = self._postgres = PostgresServer(self.tmp / "postgres")
            self._postgres.start()
        return self._postgres

    def database(self, kind: str = "sqlite") -> str:
        """A fresh migrated app database ("sqlite" or "postgresql"), made this process's own."""
        from models.core import db
        from models.core.settings import get_settings
        from service.cli import migrate

        self._databases += 1
        if kind == "sqlite":
            url = f"sqlite:///{self.tmp / f'bench-{self._databases}.db'}"
        else:
            url = self.postgres().create_database()
        migrate(url)
        os.environ["CLSM_DATABASE_URL"] = url
        get_settings.cache_clear()
        db._engine_for.cache_clear()
        return url

    @contextmanager
    def prefect(self, database: str = "sqlite") -> Iterator[PrefectStack]:
        """A Prefect server with the deployments and one process worker; its own database
        on SQLite (a fresh file) or on PostgreSQL (a fresh database, as in production).

        In the test suite the session's shared stack is reused; otherwise a fresh one is
        started for this benchmark and stopped after it.
        """
        if self._shared_stack is not None:
            yield self._shared_stack
            return
        from tests.support.prefect_stack import PrefectStack

        key = "PREFECT_SERVER_DATABASE_CONNECTION_URL"
        saved = os.environ.get(key)
        self._databases += 1
        if database == "postgresql":
            url = self.postgres().create_database().replace("+psycopg", "+asyncpg", 1)
        else:
            url = f"sqlite+aiosqlite:///{self.tmp / f'prefect-{self._databases}.db'}"
        os.environ[key] = url
        self.prefect_database_url = url
        stack = PrefectStack()
        try:
            stack.start_server()  # inside: a server interrupted while starting is stopped too
            stack.deploy()
            stack.start_worker()
            yield stack
        finally:
            stack.stop()
            if saved is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = saved

    def close(self) -> None:
        if self._own_postgres is not None:
            import gc

            from sqlalchemy.engine import Engine

            for engine in [o for o in gc.get_objects() if isinstance(o, Engine)]:
                engine.dispose()
            self._own_postgres.stop()


# -- helpers shared by benchmarks -------------------------------------------------------
def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100) by linear interpolation; values need not be sorted."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def distribution(values: list[float], unit: str = "ms", digits: int = 1) -> dict[str, Any]:
    """p50, p95, max and mean of a list of durations or sizes, with their count and unit."""
    return {
        "count": len(values),
        "unit": unit,
        "p50": round(percentile(values, 50), digits),
        "p95": round(percentile(values, 95), digits),
        "max": round(max(values), digits) if values else None,
        "mean": round(statistics.fmean(values), digits) if values else None,
    }


@contextmanager
def settings_env(**values: str) -> Iterator[None]:
    """CLSM_* settings of this process set to values for the block, then restored."""
    from models.core.settings import get_settings

    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """fn's result and its wall time in seconds."""
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


# -- the machine and the versions -------------------------------------------------------
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
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if commit:
            found["clsm_commit"] = commit
    except OSError:
        pass
    return found


# -- running and reporting --------------------------------------------------------------
def load(name: str) -> Callable[[Context], Result]:
    module_name, function = BENCHMARKS[name].split(":")
    scenario: Callable[[Context], Result] = getattr(importlib.import_module(module_name), function)
    return scenario


def run_one(name: str, ctx: Context, out: Path) -> dict[str, Any]:
    """Run one benchmark and write its JSON document; a crash is recorded, not hidden."""
    print(f"== {name}", flush=True)
    started = time.perf_counter()
    document: dict[str, Any] = {
        "benchmark": name,
        "at": datetime.now(UTC).isoformat(),
        "smoke": ctx.smoke,
        "machine": machine(),
        "versions": versions(),
    }
    try:
        result = load(name)(ctx)
        document.update(
            figures=result.figures,
            targets=[asdict(t) for t in result.targets],
            settings=result.settings,
            notes=result.notes,
        )
    except Exception:  # a failing benchmark must not stop the others; its error is kept
        document["error"] = traceback.format_exc()
        print(document["error"], file=sys.stderr, flush=True)
    document["wall_seconds"] = round(time.perf_counter() - started, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(document.get("targets", document.get("error")), ensure_ascii=False))
    return document


def _figure(target: dict[str, Any]) -> str:
    value = target["figure"]
    if value is None:
        return "—"
    text = f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{text} {target['unit']}".strip()


def summary(documents: list[dict[str, Any]]) -> str:
    """The Markdown table of every target of these documents."""
    lines = [
        "| benchmark | target | goal | figure | met |",
        "|---|---|---|---|---|",
    ]
    for document in documents:
        if "error" in document:
            lines.append(f"| {document['benchmark']} | — | — | error (see JSON) | no |")
            continue
        if not document.get("targets"):
            lines.append(f"| {document['benchmark']} | — | figures only | see JSON | — |")
        for target in document.get("targets", []):
            met = "yes" if target["met"] else "**no**"
            lines.append(
                f"| {document['benchmark']} | {target['name']} | {target['goal']} "
                f"| {_figure(target)} | {met} |"
            )
    return "\n".join(lines)


BEGIN = "<!-- summary:begin -->"
END = "<!-- summary:end -->"


def keep_summary(documents: list[dict[str, Any]]) -> None:
    """Write the table of the latest results between the markers of bench/README.md."""
    if not README.exists():
        return
    everything = []
    for name in BENCHMARKS:
        path = RESULTS / f"{name}.json"
        if path.exists():
            everything.append(json.loads(path.read_text()))
    run_at = max((d["at"] for d in documents or everything), default="")
    minutes = sum(float(d.get("wall_seconds") or 0) for d in everything) / 60
    block = (
        f"{BEGIN}\nLatest figures (`make bench`, {run_at[:16].replace('T', ' ')} UTC, "
        f"{machine()['cores']} cores; the benchmarks took {minutes:.1f} min in all):\n\n"
        f"{summary(everything)}\n{END}"
    )
    text = README.read_text()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        README.write_text(head + block + tail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmarks du moteur CLSM")
    parser.add_argument("names", nargs="*", help="benchmarks à lancer (tous par défaut)")
    parser.add_argument("--smoke", action="store_true", help="petits effectifs, résultats jetés")
    parser.add_argument("--out", type=Path, help="dossier des résultats JSON")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"benchmark inconnu : {', '.join(unknown)} (connus : {', '.join(BENCHMARKS)})")

    tmp = Path(tempfile.mkdtemp(prefix="clsm-bench-"))
    from tests.support import env as test_env

    test_env.apply()  # free ports, own Prefect home: never the developer's installation
    os.environ["CLSM_VAR_DIR"] = str(tmp / "var")
    out = args.out or (tmp / "results" if args.smoke else RESULTS)
    ctx = Context(tmp, smoke=args.smoke)
    documents = []
    started = time.perf_counter()
    try:
        for name in args.names or list(BENCHMARKS):
            documents.append(run_one(name, ctx, out))
    finally:
        ctx.close()
        shutil.rmtree(tmp, ignore_errors=True)
    table = summary(documents)
    print(f"\n{table}\n\n{len(documents)} benchmarks in {time.perf_counter() - started:.0f} s")
    if out == RESULTS:
        keep_summary(documents)
    return 1 if any("error" in d for d in documents) else 0


if __name__ == "__main__":
    sys.exit(main())
