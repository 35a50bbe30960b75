"""Double submissions: many links, each POSTed twice in parallel, record one answer each."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest
from sqlmodel import Session, col, select

from models.core import db
from models.core.audit import AuditEvent
from tests.support.figures import record, scale
from tests.support.service_kit import (
    VALID_ANSWER,
    ServiceProcess,
    build_world,
    new_link,
    register_kinds,
)

pytestmark = pytest.mark.reliability


def test_parallel_double_submissions_record_one_answer_each(
    any_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_kinds(monkeypatch)
    count = scale(100, 10)
    with db.session_scope() as session:
        world = build_world(session)
        tokens = [new_link(session, world) for _ in range(count)]

    async def submit_twice(client: httpx.AsyncClient, token: str) -> list[int]:
        responses = await asyncio.gather(
            *(client.post(f"/r/{token}", data=VALID_ANSWER) for _ in range(2))
        )
        return [r.status_code for r in responses]

    async def submit_all(base_url: str) -> list[list[int]]:
        limits = httpx.Limits(max_connections=40)
        async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:
            return list(await asyncio.gather(*(submit_twice(client, t) for t in tokens)))

    with ServiceProcess(any_db_url) as service:
        results = asyncio.run(submit_all(service.url))
    with Session(db.get_engine()) as session:
        answers = Counter(
            (e.payload or {}).get("link_id")
            for e in session.exec(select(AuditEvent).where(col(AuditEvent.action) == "probe.ready"))
        )
    statuses = Counter(tuple(sorted(pair)) for pair in results)
    record(
        "double_submissions",
        dialect=any_db_url.split(":")[0],
        links=count,
        posts=2 * count,
        answers_recorded=sum(answers.values()),
        status_pairs={f"{a}+{b}": n for (a, b), n in statuses.items()},
    )
    assert statuses == {(200, 410): count}
    assert len(answers) == count and set(answers.values()) == {1}
