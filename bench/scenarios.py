"""Benchmark scenarios; each compares variants side by side (SQLite vs PostgreSQL, ...)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

Measure = Callable[[Callable[[], int], int], dict[str, Any]]

_servers: list[Any] = []


def _database(tmp: Path, kind: str) -> str:
    """A fresh migrated app database of the given kind; returns its URL."""
    from models import db
    from models.settings import get_settings
    from service.cli import migrate

    if kind == "sqlite":
        url = f"sqlite:///{tmp / f'bench-{len(os.listdir(tmp))}.db'}"
    else:
        if not _servers:
            from tests.support.postgres import PostgresServer

            server = PostgresServer(tmp / "postgres")
            server.start()
            _servers.append(server)
        url = _servers[0].create_database()
    migrate(url)
    os.environ["CLSM_DATABASE_URL"] = url
    get_settings.cache_clear()
    db._engine_for.cache_clear()
    return url


def audit_chain(tmp: Path, measure: Measure) -> dict[str, Any]:
    """Appending audit events (one transaction each) and verifying every chain."""
    from models.audit import Actor, record_event, verify_all
    from models.db import session_scope
    from models.enums import CaseType

    results: dict[str, Any] = {}
    for kind in ("sqlite", "postgresql"):
        _database(tmp, kind)
        counter = iter(range(1, 10**9))

        def append(n: int = 200, counter: Any = counter) -> int:
            case_id = next(counter)
            for i in range(n):
                with session_scope() as session:
                    record_event(
                        session=session,
                        case_type=CaseType.SAISINE,
                        case_id=case_id,
                        action="bench.step",
                        actor=Actor.system(),
                        payload={"i": i, "texte": "échange bilatéral"},
                    )
            return n

        def verify() -> int:
            with session_scope() as session:
                return verify_all(session).events

        results[kind] = {
            "append_200_events": measure(append, 3),
            "verify_all_chains": measure(verify, 3),
        }
    return results


def link_resolution(tmp: Path, measure: Measure) -> dict[str, Any]:
    """Looking up a partner link by its token among many, valid and unknown tokens."""
    from models.db import session_scope
    from models.enums import CaseType
    from models.links import find_link, issue_link, link_token
    from models.people import Clsm, Contact, Organisation

    results: dict[str, Any] = {}
    for kind in ("sqlite", "postgresql"):
        _database(tmp, kind)
        with session_scope() as session:
            clsm = Clsm(slug="bench", name="CLSM")
            session.add(clsm)
            session.flush()
            assert clsm.id is not None
            org = Organisation(clsm_id=clsm.id, name="Structure")
            session.add(org)
            session.flush()
            assert org.id is not None
            contact = Contact(organisation_id=org.id, name="P", email="p@example.org")
            session.add(contact)
            session.flush()
            assert contact.id is not None
            tokens = [
                link_token(
                    issue_link(
                        session=session,
                        contact_id=contact.id,
                        case_type=CaseType.SESSION,
                        case_id=1,
                        step="bench",
                    )
                )
                for _ in range(2000)
            ]

        def lookup(tokens: list[str] = tokens) -> int:
            with session_scope() as session:
                for token in tokens[:500]:
                    assert find_link(session, token) is not None
                    assert find_link(session, token[::-1]) is None
            return 1000

        results[kind] = {"lookup_1000_tokens_among_2000": measure(lookup, 3)}
    return results


def _rss_mib(pids: list[int]) -> float:
    import psutil

    total = 0
    for pid in pids:
        try:
            process = psutil.Process(pid)
            total += process.memory_info().rss
            total += sum(c.memory_info().rss for c in process.children(recursive=True))
        except psutil.NoSuchProcess:
            continue
    return round(total / 1024 / 1024, 1)


def suspended_runs(tmp: Path, measure: Measure) -> dict[str, Any]:
    """What waiting costs: processes and memory of Prefect with 0, then N suspended runs."""
    import asyncio

    from tests.support import env as test_env

    test_env.apply()
    os.environ["CLSM_VAR_DIR"] = str(tmp / "var")
    from tests.support.prefect_stack import PrefectStack, run, run_env, wait_for_state

    url = _database(tmp, "sqlite")
    stack = PrefectStack()
    stack.start_server()
    try:
        stack.deploy()
        stack.start_worker()
        assert stack.server is not None and stack.worker is not None
        pids = [stack.server.pid, stack.worker.pid]
        figures: dict[str, Any] = {}

        async def suspend(count: int, first: int) -> None:
            ids = [
                await run("probe-ask/probe-ask", {"case_id": first + i}, run_env(url))
                for i in range(count)
            ]
            for run_id in ids:
                await wait_for_state(run_id, "PAUSED", timeout=300)

        import psutil

        def processes() -> int:
            return sum(len(psutil.Process(p).children(recursive=True)) + 1 for p in pids)

        asyncio.run(suspend(1, 1))  # warm-up: first deployment pull
        figures["after_1_suspended"] = {"rss_mib": _rss_mib(pids), "processes": processes()}
        asyncio.run(suspend(20, 100))
        figures["after_21_suspended"] = {"rss_mib": _rss_mib(pids), "processes": processes()}
        return figures
    finally:
        stack.stop()


ALL: dict[str, Callable[[Path, Measure], dict[str, Any]]] = {
    "suspended_runs": suspended_runs,
    "audit_chain": audit_chain,
    "link_resolution": link_resolution,
}


def shutdown() -> None:
    for server in _servers:
        server.stop()
