"""History at volume: the history page and JSON of a case with 10,000 events among 100,000,
and how fast the audit chains are verified.

The trail is built with the project's own hashing (`models.core.audit.digest` and the chain hash
of `record_event`) and inserted in bulk; `verify_all` passes on it. The case with many
events is a real immersion session of the coordinator's CLSM; the other events belong to
900 other cases. Events of all cases are interleaved in time, as they arrive in real life.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import Any

from bench.run import Context, Result, Target, distribution

PASSWORD = "mot-de-passe-du-banc"
OTHER_CASES = 900


@dataclass
class Trail:
    url: str
    case_type: str
    case_id: int
    case_events: int
    events: int
    email: str
    setup_seconds: float


# -- the trail ------------------------------------------------------------------------
def _payload(action: str, n: int) -> dict[str, Any]:
    if action == "mail.sent":
        return {
            "template": "immersion_preparation",
            "outbox_id": n,
            "contact_id": n % 500 + 1,
            "message_id": f"<outbox-{n}-{n:016x}@clsm.localhost>",
            "attempts": 1,
        }
    if action == "history.read":
        return {"format": "html", "filters": {"page": n % 7 + 1}}
    if action == "application.submitted":
        return {"number": n, "organisation": "Centre hospitalier Henri Laborit", "wishes": [2, 3]}
    return {"step": action, "n": n, "note": "Réponse enregistrée par la personne référente"}


ACTIONS = ["mail.sent", "history.read", "application.submitted", "step.answered", "case.read"]


def _chain(
    case_type: str, case_id: int, first_seq: int, prev_hash: str, count: int, start: datetime
) -> list[dict[str, Any]]:
    """`count` rows continuing a chain (one an hour), hashed by the project's own code."""
    from models.core.audit import Actor, _link_hash, audit_keys, canonical, digest, seal

    actors = [
        Actor.system("outbox"),
        Actor.user(1, "Camille Coordination"),
        Actor.contact(7, "Éloïse"),
    ]
    keys = audit_keys()
    rows = []
    for n in range(count):
        seq = first_seq + n
        action = ACTIONS[seq % len(ACTIONS)]
        actor = actors[seq % len(actors)]
        names = (actor.kind.value, actor.label, actor.ref, actor.channel.value)
        payload = json.loads(canonical(_payload(action, seq)))  # as record_event stores it
        at = start + timedelta(hours=n, microseconds=seq)
        row = dict(
            zip(("actor_kind", "actor_label", "actor_ref", "channel"), names, strict=True),
            case_type=case_type,
            case_id=case_id,
            seq=seq,
            at=at,
            action=action,
            payload=payload,
            payload_digest=digest(payload),
            prev_hash=prev_hash,
        )
        row["hash"] = prev_hash = _link_hash(
            prev_hash, case_type, case_id, seq, at, names, action, row["payload_digest"]
        )
        row["key_id"], row["mac"] = seal(prev_hash, keys)
        rows.append(row)
    return rows


def build_trail(ctx: Context, kind: str, total: int, in_case: int) -> Trail:
    """A fresh database: a coordinator, their immersion session holding `in_case` events,
    and other cases up to `total` events in all."""
    from sqlalchemy import func, insert
    from sqlmodel import col, select

    from models.core import clock
    from models.core.audit import Actor, AuditEvent, verify_all
    from models.core.db import session_scope
    from models.core.enums import Role
    from models.immersion.call import create_session
    from models.immersion.tables import ImmersionSessionCreate
    from tests import factories
    from tests.support.immersion import STRUCTURES, build_clsm, session_dates

    started = time.perf_counter()
    url = ctx.database(kind)
    with session_scope() as session:
        owner, _orgs = build_clsm(session)
        coordinator = factories.user(session, owner, Role.COORDINATOR, PASSWORD)
        row = create_session(
            session=session,
            data=ImmersionSessionCreate(
                title="Immersions 2025 — session de printemps",
                clsm_slug=owner.slug,
                structures=STRUCTURES,
                **session_dates(clock.now(session)),
            ),
            flow_run_id=str(uuid.uuid4()),
            actor=Actor.system(),
        )
        assert row.id is not None
        case_id, email = row.id, coordinator.email
        last = session.exec(
            select(AuditEvent).where(
                AuditEvent.case_type == "session", AuditEvent.case_id == case_id
            )
        ).one()
        existing = session.exec(select(func.count()).select_from(AuditEvent)).one()

    start = datetime.now(UTC) - timedelta(days=400)
    events = _chain("session", case_id, last.seq + 1, last.hash, in_case - last.seq, start)
    others = total - existing - len(events)
    per_case = others // OTHER_CASES
    for n in range(OTHER_CASES):
        count = per_case + (1 if n < others % OTHER_CASES else 0)
        case_type = "saisine" if n % 2 else "session"
        other_id = 10_000 + n  # no such session: only their events matter here
        first = start + timedelta(minutes=37 * n)
        events.extend(_chain(case_type, other_id, 1, "0" * 64, count, first))
    events.sort(key=itemgetter("at"))  # interleaved in time, as in real life
    with session_scope() as session:
        for chunk in range(0, len(events), 10_000):
            session.execute(insert(AuditEvent), events[chunk : chunk + 10_000])
    with session_scope() as session:
        report = verify_all(session)
        assert report.ok, report.breaks[:3]
        in_big = session.exec(
            select(func.count())
            .select_from(AuditEvent)
            .where(col(AuditEvent.case_type) == "session", col(AuditEvent.case_id) == case_id)
        ).one()
    return Trail(
        url=url,
        case_type="session",
        case_id=case_id,
        case_events=in_big,
        events=report.events,
        email=email,
        setup_seconds=round(time.perf_counter() - started, 1),
    )


def use_database(url: str) -> None:
    """Make `url` this process's application database."""
    from models.core import db
    from models.core.settings import get_settings

    os.environ["CLSM_DATABASE_URL"] = url
    get_settings.cache_clear()
    db._engine_for.cache_clear()


# -- the indexes ------------------------------------------------------------------------
def audit_indexes(url: str) -> list[dict[str, Any]]:
    """The indexes on audit_event, as the migration created them."""
    from sqlalchemy import inspect

    from models.core.db import make_engine

    engine = make_engine(url)
    try:
        inspector = inspect(engine)
        found = [
            {"name": i["name"], "columns": i["column_names"], "unique": bool(i["unique"])}
            for i in inspector.get_indexes("audit_event")
        ]
        found += [
            {"name": u["name"], "columns": u["column_names"], "unique": True}
            for u in inspector.get_unique_constraints("audit_event")
        ]
    finally:
        engine.dispose()
    return found


def naive_copy(url: str, tmp: Path) -> str:
    """A copy of the SQLite database whose audit_event has only its primary key."""
    from models.core.audit_triggers import GUARDED_COLUMNS, audit_trigger_statements
    from models.core.db import make_engine

    make_engine(url).dispose()
    source = Path(url.removeprefix("sqlite:///"))
    with sqlite3.connect(source) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    target = tmp / f"naive-{source.name}"
    shutil.copyfile(source, target)
    connection = sqlite3.connect(target, isolation_level=None)
    try:
        ddl = connection.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'audit_event'"
        ).fetchone()[0]
        # the same columns, without UNIQUE (case_type, case_id, seq) and without indexes
        columns = re.sub(
            r",\s*CONSTRAINT uq_audit_case_seq UNIQUE \([^)]*\)",
            "",
            ddl[ddl.index("(") + 1 : ddl.rindex(")")],
        )
        connection.execute("BEGIN")
        connection.execute(f"CREATE TABLE audit_naive ({columns})")
        connection.execute("INSERT INTO audit_naive SELECT * FROM audit_event")
        connection.execute("DROP TABLE audit_event")
        connection.execute("ALTER TABLE audit_naive RENAME TO audit_event")
        for statement in audit_trigger_statements("sqlite", GUARDED_COLUMNS):
            connection.execute(statement)
        connection.execute("COMMIT")
        connection.execute("VACUUM")
    finally:
        connection.close()
    return f"sqlite:///{target}"


# -- history_volume ----------------------------------------------------------------------
def _plans(url: str, case_type: str, case_id: int) -> dict[str, str]:
    """SQLite's plan for the page query and the chain read of the history page."""
    connection = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        queries = {
            "page": "SELECT * FROM audit_event WHERE case_type = ? AND case_id = ? "
            "ORDER BY seq LIMIT 50 OFFSET 5000",
            "count": "SELECT count(*) FROM audit_event WHERE case_type = ? AND case_id = ?",
            "actions": "SELECT DISTINCT action FROM audit_event WHERE case_type = ? "
            "AND case_id = ? ORDER BY action",
        }
        return {
            name: " / ".join(
                str(row[3])
                for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}", (case_type, case_id))
            )
            for name, sql in queries.items()
        }
    finally:
        connection.close()


def _measure(trail: Trail, rounds: int) -> dict[str, Any]:
    """p50/p95 of each variant, requests interleaved round-robin, logged in as coordinator."""
    from fastapi.testclient import TestClient

    from service.main import create_app
    from tests.support.service_kit import login_data

    base = f"/cases/{trail.case_type}/{trail.case_id}/history"
    api = f"/api/cases/{trail.case_type}/{trail.case_id}/history"
    middle = trail.case_events // 50 // 2
    variants = {
        "html_first": f"{base}?page=1",
        "html_middle": f"{base}?page={middle}",
        "html_last": f"{base}?page=100000",  # clamped to the last page
        "json_first": f"{base}.json?page=1",
        "json_last": f"{base}.json?page=100000",
        "api_middle": f"{api}?page={middle}",
    }
    durations: dict[str, list[float]] = {name: [] for name in variants}
    cpu_ms: dict[str, list[float]] = {name: [] for name in variants}  # app and client
    with TestClient(create_app()) as client:
        login = client.post(
            "/login", data=login_data(client, trail.email, PASSWORD), follow_redirects=False
        )
        assert login.status_code == 303, login.text
        for name, path in variants.items():  # warm up (templates, caches) and check
            response = client.get(path)
            assert response.status_code == 200, (name, response.text[:300])
            if "json" in name or "api" in name:
                assert response.json()["chain"]["ok"], response.json()["chain"]
        for _ in range(rounds):
            for name, path in variants.items():
                start, cpu = time.perf_counter(), time.process_time()
                response = client.get(path)
                durations[name].append((time.perf_counter() - start) * 1000)
                cpu_ms[name].append((time.process_time() - cpu) * 1000)
                assert response.status_code == 200, (name, response.status_code)
    return {
        name: {**distribution(values), "cpu_ms": distribution(cpu_ms[name])}
        for name, values in durations.items()
    }


def history_volume(ctx: Context) -> Result:
    """History page and JSON of a case with 10,000 events among 100,000, indexed or not."""
    total = ctx.scale(100_000, 2_000)
    in_case = ctx.scale(10_000, 500)
    rounds = ctx.scale(200, 10)
    naive_rounds = ctx.scale(20, 5)

    trail = build_trail(ctx, "sqlite", total, in_case)
    indexes = audit_indexes(trail.url)
    naive_url = naive_copy(trail.url, ctx.tmp)
    plans = {"ours": _plans(trail.url, trail.case_type, trail.case_id)}
    plans["naive"] = _plans(naive_url, trail.case_type, trail.case_id)

    started = time.perf_counter()
    ours = _measure(trail, rounds)
    ours_seconds = time.perf_counter() - started
    use_database(naive_url)
    started = time.perf_counter()
    naive = _measure(trail, naive_rounds)
    naive_seconds = time.perf_counter() - started
    use_database(trail.url)

    worst = max(ours.values(), key=lambda d: d["p95"])
    worst_name = next(name for name, d in ours.items() if d is worst)
    targets = [
        Target(
            "history p95, worst of HTML/JSON/API pages",
            "p95 < 100 ms",
            worst["p95"],
            "ms",
            met=worst["p95"] < 100,
            note=f"{worst_name}; naive schema: {naive[worst_name]['p95']} ms",
        )
    ]
    return Result(
        figures={
            "ours": ours,
            "naive_schema": naive,
            "ratio_p95_naive_over_ours": {
                name: round(naive[name]["p95"] / ours[name]["p95"], 1) for name in ours
            },
            "query_plans": plans,
            "setup_seconds": trail.setup_seconds,
            "measure_seconds": {"ours": round(ours_seconds, 1), "naive": round(naive_seconds, 1)},
        },
        targets=targets,
        settings={
            "events_in_database": trail.events,
            "events_in_the_case": trail.case_events,
            "other_cases": OTHER_CASES,
            "per_page": 50,
            "requests_per_variant": {"ours": rounds, "naive_schema": naive_rounds},
            "client": "FastAPI TestClient in-process, logged in as the CLSM's coordinator",
            "database": "sqlite (file, WAL)",
            "indexes_ours": indexes,
            "naive_schema": "the same audit_event table with only its primary key "
            "(no UNIQUE (case_type, case_id, seq), no index)",
        },
        notes=[
            "Every read is itself audited: each request appends a history.read event to "
            "the case (the case grows by one event per request) and verifies its whole chain.",
            "Variants are requested round-robin so that noise spreads evenly over them.",
            "cpu_ms is this process's CPU time per request (the app runs in the client's "
            "process): a check on wall times taken on a busy machine.",
            "Where the time goes (profiled, quiet machine, ~45 ms a request): reading the "
            "case's whole chain to verify it, ~25 ms for its 10,000 rows (SQLite's own "
            "fetch, found through uq_audit_case_seq: the events of a case are spread over "
            "the table), ~3 ms comparing them with the rows verified before (only new rows "
            "are hashed), ~5 ms for the list of actions (filters), the page itself < 1 ms. "
            "The chain is read through the driver's cursor: SQLAlchemy's row objects doubled "
            "that part (54 ms), and the p95 was 112 ms. gc.freeze() at the service's start "
            "keeps Python's full collections (set off by those rows) short.",
        ],
    )


# -- chain_verification ------------------------------------------------------------------
def _naive_verify(case_type: str, case_id: int, limit: int) -> int:
    """What a user would write: one query per event, checked against the previous one."""
    from sqlmodel import select

    from models.core.audit import GENESIS, AuditEvent, _chain_hash, digest
    from models.core.db import session_scope

    prev = GENESIS
    checked = 0
    with session_scope() as session:
        for seq in range(1, limit + 1):
            event = session.exec(
                select(AuditEvent).where(
                    AuditEvent.case_type == case_type,
                    AuditEvent.case_id == case_id,
                    AuditEvent.seq == seq,
                )
            ).one()
            ok = (
                event.prev_hash == prev
                and (event.payload is None or digest(event.payload) == event.payload_digest)
                and _chain_hash(prev, event) == event.hash
            )
            assert ok, seq
            prev = event.hash
            checked += 1
    return checked


def _rates(trail: Trail, repeat: int, naive_events: int) -> dict[str, Any]:
    from models.core import audit
    from models.core.audit import verify_all, verify_case
    from models.core.db import session_scope

    use_database(trail.url)
    all_seconds: list[float] = []
    for _ in range(repeat):
        with session_scope() as session:
            start = time.perf_counter()
            report = verify_all(session)
            all_seconds.append(time.perf_counter() - start)
        assert report.ok and report.events == trail.events
    cold: list[float] = []  # nothing known yet: every event hashed
    warm: list[float] = []  # chain verified before in this process (what a page re-read costs)
    for _ in range(repeat):
        audit._INTACT = audit._IntactChains(audit._INTACT.limit)
        for seconds in (cold, warm):
            with session_scope() as session:
                start = time.perf_counter()
                assert verify_case(session, trail.case_type, trail.case_id) is None
                seconds.append(time.perf_counter() - start)
    start = time.perf_counter()
    checked = _naive_verify(trail.case_type, trail.case_id, naive_events)
    naive_seconds = time.perf_counter() - start
    best_all, best_cold, best_warm = min(all_seconds), min(cold), min(warm)
    return {
        "verify_all": {
            "events": trail.events,
            "seconds": round(best_all, 3),
            "events_per_second": round(trail.events / best_all),
        },
        "verify_case_cold": {
            "events": trail.case_events,
            "seconds": round(best_cold, 3),
            "events_per_second": round(trail.case_events / best_cold),
        },
        "verify_case_warm": {
            "events": trail.case_events,
            "seconds": round(best_warm, 4),
            "events_per_second": round(trail.case_events / best_warm),
        },
        "naive_one_query_per_event": {
            "events": checked,
            "seconds": round(naive_seconds, 3),
            "events_per_second": round(checked / naive_seconds),
        },
    }


def chain_verification(ctx: Context) -> Result:
    """Events verified per second: verify_all / verify_case against one query per event."""
    total = ctx.scale(100_000, 2_000)
    in_case = ctx.scale(10_000, 500)
    repeat = ctx.scale(3, 1)
    naive_events = ctx.scale(5_000, 200)

    figures: dict[str, Any] = {}
    setup: dict[str, float] = {}
    for kind in ("sqlite", "postgresql"):
        trail = build_trail(ctx, kind, total, in_case)
        setup[kind] = trail.setup_seconds
        figures[kind] = _rates(trail, repeat, naive_events)
        figures[kind]["speedup_over_naive"] = round(
            figures[kind]["verify_all"]["events_per_second"]
            / figures[kind]["naive_one_query_per_event"]["events_per_second"],
            1,
        )
    figures["setup_seconds"] = setup
    targets = [
        Target(
            f"verify_all, {kind}",
            "≥ 100,000 events/s",
            float(figures[kind]["verify_all"]["events_per_second"]),
            "events/s",
            met=figures[kind]["verify_all"]["events_per_second"] >= 100_000,
            note=f"naive (one query per event): "
            f"{figures[kind]['naive_one_query_per_event']['events_per_second']} events/s",
        )
        for kind in ("sqlite", "postgresql")
    ]
    return Result(
        figures=figures,
        targets=targets,
        settings={
            "events": total,
            "events_in_the_largest_case": in_case,
            "other_cases": OTHER_CASES,
            "repeat": f"best of {repeat}",
            "naive_events": f"the first {naive_events} events of the largest case",
            "checks": "sequence, link to the previous event, payload digest, event hash",
        },
        notes=[
            "verify_all reads every chain in (case_type, case_id, seq) order and recomputes "
            "each payload digest and each event hash (SHA-256 of the canonical JSON).",
            "verify_all reads the trail once in insertion order (a sequential read); before, "
            "it loaded ORM objects through the (case, seq) index (one random lookup per "
            "event) and reached ~25,000 events/s here.",
            "Rows are read as stored (the payload's JSON text, the time as text: "
            "PostgreSQL formats it in SQL) and hashed as they are: the database keeps JSON in "
            "canonical form, so a payload's digest is the SHA-256 of its stored text, with no "
            "decoding (a text stored otherwise is decoded and checked the long way). Before "
            "that, decoding the time and the payload then encoding the payload again cost "
            "~5.5 µs of the ~13.5 µs per event, and the figures were 48,000 events/s (SQLite) "
            "on a quiet machine. What is left is pure Python on one core (reading the row, "
            "two SHA-256, formatting the event's canonical body), so the figure depends on how "
            "busy the machine is.",
            "verify_case_warm: the chain was verified before in this process; its rows are "
            "compared with the verified ones and only differing or new rows are hashed "
            "(what each history page read costs).",
        ],
    )
