"""The Prefect server itself refuses whoever does not hold its secret."""

from __future__ import annotations

import httpx
import pytest

from tests.support.env import PREFECT_API_URL, PREFECT_AUTH
from tests.support.prefect_stack import PrefectStack

pytestmark = pytest.mark.prefect

SECRET = httpx.BasicAuth(*PREFECT_AUTH.split(":", 1))
EVIL = "http://evil.example"


def _csrf_headers() -> dict[str, str]:
    token = httpx.get(
        f"{PREFECT_API_URL}/csrf-token", params={"client": "t"}, auth=SECRET, timeout=10
    ).json()["token"]
    return {"Prefect-Csrf-Token": token, "Prefect-Csrf-Client": "t"}


def test_without_the_secret_reads_and_writes_get_401(prefect_stack: PrefectStack) -> None:
    run_id = "3f2b8f0e-0000-4000-8000-000000000001"
    # (a write also needs Prefect's CSRF token, which only the secret obtains: given here,
    # so that what refuses the calls below is the missing secret itself)
    csrf = _csrf_headers()
    calls = [
        ("GET", f"/flow_runs/{run_id}", None),
        ("GET", "/csrf-token?client=x", None),
        ("POST", "/flow_runs/filter", {}),
        ("POST", f"/flow_runs/{run_id}/resume", {"run_input": {}}),
        ("POST", f"/flow_runs/{run_id}/set_state", {"state": {"type": "CANCELLING"}}),
    ]
    for method, path, body in calls:
        for auth in (None, ("clsm", "guess")):
            answer = httpx.request(
                method, PREFECT_API_URL + path, json=body, headers=csrf, auth=auth, timeout=10
            )
            assert answer.status_code == 401, (method, path, answer.text)
    # the machine's own health probe stays open; with the secret a read passes
    assert httpx.get(f"{PREFECT_API_URL}/health", timeout=10).status_code == 200
    listing = httpx.post(
        f"{PREFECT_API_URL}/flow_runs/filter", json={}, headers=csrf, auth=SECRET, timeout=10
    )
    assert listing.status_code == 200


def test_a_foreign_origin_gets_no_cors_grant(prefect_stack: PrefectStack) -> None:
    preflight = httpx.options(
        f"{PREFECT_API_URL}/flow_runs/filter",
        headers={
            "Origin": EVIL,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
        timeout=10,
    )
    assert preflight.status_code == 400
    assert preflight.headers.get("access-control-allow-origin") not in ("*", EVIL)
    simple = httpx.get(
        f"{PREFECT_API_URL}/health", headers={"Origin": EVIL}, auth=SECRET, timeout=10
    )
    assert simple.headers.get("access-control-allow-origin") not in ("*", EVIL)


def test_json_sent_as_text_plain_is_refused_by_csrf_protection(
    prefect_stack: PrefectStack,
) -> None:
    """The cross-site "simple request" a hostile page could send: refused, even with the
    secret, for want of Prefect's CSRF token."""
    answer = httpx.post(
        f"{PREFECT_API_URL}/flow_runs/filter",
        content=b"{}",
        headers={"Content-Type": "text/plain", "Origin": EVIL},
        auth=SECRET,
        timeout=10,
    )
    assert answer.status_code == 403
    assert "CSRF" in answer.text
    assert answer.headers.get("access-control-allow-origin") not in (EVIL,)
