"""Property-based fuzzing of every operation of the OpenAPI schema: no server error."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case

from models.core import db
from models.core.enums import Role
from service.main import create_app
from service.security import api_token_hash, new_api_token
from tests import factories
from tests.support.figures import record, scale
from tests.support.service_kit import build_world, new_link, register_kinds

pytestmark = pytest.mark.reliability


def test_every_api_operation_survives_generated_requests(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_kinds(monkeypatch)
    token = new_api_token()
    with db.session_scope() as session:
        world = build_world(session)
        admin = factories.user(session, None, Role.ADMIN)
        admin.api_token_hash = api_token_hash(token)
        new_link(session, world)
    app = create_app()
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    target = scale(10_000, 300)
    per_operation = math.ceil(target / len(operations))
    statuses: Counter[int] = Counter()
    server_errors: list[str] = []

    rounds = 0
    while sum(statuses.values()) < target and rounds < 20:  # small domains end early
        rounds += 1
        for operation in operations:
            _fuzz(operation, per_operation, token, statuses, server_errors)

    total = sum(statuses.values())
    record(
        "api_fuzzing",
        operations=len(operations),
        requests=total,
        rounds=rounds,
        server_errors=len(server_errors),
        statuses={str(k): v for k, v in sorted(statuses.items())},
    )
    assert server_errors == []
    assert total >= target


def _fuzz(
    operation: Any, examples: int, token: str, statuses: Counter[int], server_errors: list[str]
) -> None:
    """Send `examples` generated requests to one operation, counting the answers."""

    @settings(
        max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=operation.as_strategy())
    def exercise(case: Case) -> None:
        response = case.call(headers={"Authorization": f"Bearer {token}"})
        statuses[response.status_code] += 1
        if response.status_code >= 500:
            server_errors.append(f"{case.method} {case.formatted_path}: {response.status_code}")

    exercise()
