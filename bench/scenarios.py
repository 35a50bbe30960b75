"""Link resolution: looking up a partner link by its token, SQLite and PostgreSQL side by side.

Not a target of the issue; kept because every answer starts with this lookup.
"""

from __future__ import annotations

import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from bench.run import Context, Result


def measure(fn: Callable[[], int], repeat: int) -> dict[str, Any]:
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
        "ops_per_second": round(operations / median, 1) if median else None,
        "peak_python_memory_kib": round(peak / 1024, 1),
        "repeat": repeat,
    }


def link_resolution(ctx: Context) -> Result:
    """Looking up a partner link by its token among many, valid and unknown tokens."""
    from models.core.db import session_scope
    from models.core.enums import CaseType
    from models.core.links import find_link, issue_link, link_token
    from models.core.people import Clsm, Contact, Organisation

    results: dict[str, Any] = {}
    for kind in ("sqlite", "postgresql"):
        ctx.database(kind)
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
                for _ in range(ctx.scale(2000, 500))
            ]

        def lookup(tokens: list[str] = tokens) -> int:
            with session_scope() as session:
                for token in tokens[:500]:
                    assert find_link(session, token) is not None
                    assert find_link(session, token[::-1]) is None
            return 1000

        results[kind] = {"lookup_1000_tokens_among_2000": measure(lookup, ctx.scale(3, 1))}
    return Result(figures=results)
