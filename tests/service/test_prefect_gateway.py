"""The service's gateway to Prefect: each account sees and does in the Prefect UI what its
role and CLSM allow, and every decision made there names the person."""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlmodel import Session, select
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from models.core import db
from models.core.audit import case_events
from models.core.gateway import GatewayAction
from models.core.people import Clsm, Organisation
from tests.immersion.test_prefect_ui import _sync
from tests.saisine.test_saisine_flow import intake_parameters, setup_cell, the_saisine
from tests.support.browser import (
    PASSWORD,
    account,
    chromium,
    open_prefect_ui,
    prefect_field,
)
from tests.support.prefect_stack import (
    PrefectStack,
    run,
    run_env,
    settle,
    state_of,
    wait_for_state,
)
from tests.support.service_kit import ServiceProcess, login_data

pytestmark = [pytest.mark.prefect, pytest.mark.browser]


@contextmanager
def logged_in(service: ServiceProcess, email: str) -> Iterator[httpx.Client]:
    """An HTTP client logged in at the service, holding Prefect's CSRF token as the UI does."""
    with httpx.Client(base_url=service.url, timeout=60) as client:
        answer = client.post("/login", data=login_data(client, email, PASSWORD))
        assert answer.status_code == 303, answer.text
        token = client.get("/prefect/api/csrf-token", params={"client": "t"})
        assert token.status_code == 200, token.text
        client.headers.update(
            {"Prefect-Csrf-Token": token.json()["token"], "Prefect-Csrf-Client": "t"}
        )
        yield client


def listed(client: httpx.Client) -> set[str]:
    answer = client.post("/prefect/api/flow_runs/filter", json={"limit": 200})
    assert answer.status_code == 200, answer.text
    return {r["id"] for r in answer.json()}


def events_about(client: httpx.Client) -> str:
    """The events the account may read, as text (flow-run ids appear in their resources)."""
    answer = client.post("/prefect/api/events/filter", json={"filter": {}, "limit": 50})
    assert answer.status_code == 200, answer.text
    return json.dumps(answer.json()["events"])


def raw_get(service: ServiceProcess, client: httpx.Client, path: str) -> tuple[int, str]:
    """GET a path byte for byte (httpx would normalise it), with the client's session."""
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=60)
    try:
        connection.request(
            "GET", path, headers={"Cookie": f"clsm_session={client.cookies['clsm_session']}"}
        )
        answer = connection.getresponse()
        return answer.status, answer.read().decode(errors="replace")
    finally:
        connection.close()


def runs_filter(run_id: UUID) -> dict[str, Any]:
    return {"flow_run_id": {"any_": [str(run_id)]}}


@contextmanager
def live(service: ServiceProcess, client: httpx.Client, path: str) -> Iterator[ClientConnection]:
    """A websocket of the Prefect API through the gateway, authenticated as the UI does (the
    UI sends no token: it has none; the gateway puts the server's secret in)."""
    url = service.url.replace("http", "ws", 1) + f"/prefect/api/{path}"
    cookie = f"clsm_session={client.cookies['clsm_session']}"
    with connect(
        url, subprotocols=[Subprotocol("prefect")], additional_headers={"Cookie": cookie}
    ) as socket:
        socket.send(json.dumps({"type": "auth", "token": None}))
        assert json.loads(socket.recv(timeout=30)) == {"type": "auth_success"}
        yield socket


def test_roles_and_clsms_in_the_prefect_ui(prefect_stack: PrefectStack, db_url: str) -> None:
    auditor = account("auditor", "poitiers", "Paul Audit")
    other = account("coordinator", "niort", "Nora Niort")
    run_id = _sync(
        run("probe-ask/probe-ask", {"case_id": 8}, run_env(db_url), tags=["clsm:poitiers"])
    )
    _sync(settle([run_id], "PAUSED", timeout=300))
    paused = _sync(state_of(run_id))
    with ServiceProcess(db_url) as service:
        # anonymous: to the login page, and nothing from the API
        anonymous = httpx.get(f"{service.url}/prefect/runs/flow-run/{run_id}", timeout=30)
        assert anonymous.status_code == 303
        assert anonymous.headers["location"] == f"/login?next=/prefect/runs/flow-run/{run_id}"
        assert httpx.post(f"{service.url}/prefect/api/flow_runs/filter", json={}).status_code == 401
        with pytest.raises(InvalidStatus):
            connect(service.url.replace("http", "ws", 1) + "/prefect/api/logs/out")

        # the auditor sees the run, and every write is refused in French
        with logged_in(service, auditor) as client:
            assert str(run_id) in listed(client)
            refused = client.post(
                f"/prefect/api/flow_runs/{run_id}/resume", json={"run_input": {"count": 1}}
            )
            assert refused.status_code == 403
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert "audit" in refused.json()["detail"]
            cancel = client.post(
                f"/prefect/api/flow_runs/{run_id}/set_state",
                json={"state": {"type": "CANCELLING"}},
            )
            assert cancel.status_code == 403
            assert client.delete(f"/prefect/api/flow_runs/{run_id}").status_code == 403
            assert str(run_id) in events_about(client)
            # live logs through the gateway's websocket, the secret added by the gateway
            with live(service, client, "logs/out") as socket:
                socket.send(json.dumps({"type": "filter", "filter": runs_filter(run_id)}))
                with pytest.raises(TimeoutError):
                    socket.recv(timeout=2)  # open and quiet: no log yet, no refusal

        # a coordinator of another CLSM: not listed, and by id as if it did not exist
        with logged_in(service, other) as client:
            assert str(run_id) not in listed(client)
            assert client.get(f"/prefect/api/flow_runs/{run_id}").status_code == 404
            assert client.get(f"/prefect/api/flow_runs/{run_id}/graph-v2").status_code == 404
            logs = client.post(
                "/prefect/api/logs/filter",
                json={"logs": {"flow_run_id": {"any_": [str(run_id)]}}},
            )
            assert logs.status_code == 404
            resume = client.post(
                f"/prefect/api/flow_runs/{run_id}/resume", json={"run_input": {"count": 1}}
            )
            assert resume.status_code == 404
            assert str(run_id) not in events_about(client)
            # nor by a path that the server would resolve elsewhere (sent as is, undecoded)
            for sneaky in (
                f"/prefect/..%2fapi/flow_runs/{run_id}",
                f"/prefect/api/x/..%2fflow_runs/{run_id}",
            ):
                raw = raw_get(service, client, sneaky)
                assert raw[0] == 404 and str(run_id) not in raw[1]
            with live(service, client, "logs/out") as socket:
                socket.send(json.dumps({"type": "filter", "filter": runs_filter(run_id)}))
                with pytest.raises(ConnectionClosed):
                    socket.recv(timeout=30)
            # the installation's settings are the admins'
            assert client.post("/prefect/api/variables/", json={"name": "x"}).status_code == 403

        # in the browser the auditor clicks Resume and submits: refused, nothing changes
        with chromium() as browser:
            page = open_prefect_ui(browser, service.url, auditor, f"/runs/flow-run/{run_id}")
            page.get_by_role("button", name=re.compile("Resume", re.I)).first.click(timeout=60_000)
            prefect_field(page, "Décision de la coordination").wait_for(timeout=30_000)
            with page.expect_response(re.compile(r"/resume$")) as answer:
                page.get_by_role("button", name=re.compile("^Valider$|^Resume$", re.I)).last.click()
            assert answer.value.status == 403
    after = _sync(state_of(run_id))
    assert after is not None and after.id == paused.id and after.is_paused()
    with Session(db.get_engine()) as session:
        assert session.exec(select(GatewayAction)).all() == []
        assert case_events(session, "session", 8) == []


def deployment_id(client: httpx.Client, name: str) -> str:
    answer = client.get(f"/prefect/api/deployments/name/{name}")
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def launch(
    client: httpx.Client, deployment: str, parameters: dict[str, Any], db_url: str
) -> httpx.Response:
    return client.post(
        f"/prefect/api/deployments/{deployment}/create_flow_run",
        json={"parameters": parameters, "job_variables": {"env": run_env(db_url)}},
    )


def poitiers_id(session: Session) -> int | None:
    return session.exec(select(Clsm.id).where(Clsm.slug == "poitiers")).first()


def test_a_coordinator_launches_a_saisine_of_their_own_clsm_only(
    prefect_stack: PrefectStack, db_url: str
) -> None:
    setup_cell()  # the cell of Poitiers
    coordinator = account("coordinator", "poitiers", "Inès Moreau")
    with ServiceProcess(db_url) as service, logged_in(service, coordinator) as client:
        saisine = deployment_id(client, "saisine/saisine")
        # the launch forms offer the account's own CLSM and its structures, not typed names
        with Session(db.get_engine()) as session:
            network = sorted(
                o.name
                for o in session.exec(select(Organisation).where(Organisation.active)).all()
                if o.clsm_id == poitiers_id(session)
            )
        assert network
        immersion = client.get("/prefect/api/deployments/name/immersion-session/immersion-session")
        fitted = immersion.json()["parameter_openapi_schema"]["properties"]
        assert fitted["clsm"]["enum"] == ["poitiers"]
        assert fitted["structures"]["items"]["enum"] == network
        assert "dans la liste" in fitted["structures"]["description"]  # not "une par ligne"
        listed_forms = client.post("/prefect/api/deployments/filter", json={}).json()
        intake = next(d for d in listed_forms if d["name"] == "saisine")["parameter_openapi_schema"]
        assert '"enum": ["poitiers"]' in json.dumps(intake)
        foreign = intake_parameters()
        foreign["intake"]["clsm"] = "niort"
        refused = launch(client, saisine, foreign, db_url)
        assert refused.status_code == 403
        assert "poitiers" in refused.json()["detail"]
        launched = launch(client, saisine, intake_parameters(), db_url)
        assert launched.status_code == 201, launched.text
        run_id = UUID(launched.json()["id"])
        assert "clsm:poitiers" in launched.json()["tags"]
        _sync(wait_for_state(run_id, "PAUSED", timeout=300))  # waits for the description
        assert str(run_id) in listed(client)
        cancelled = client.post(
            f"/prefect/api/flow_runs/{run_id}/set_state", json={"state": {"type": "CANCELLING"}}
        )
        assert cancelled.status_code in (200, 201), cancelled.text
    saisine_row = the_saisine(run_id)
    assert saisine_row.id is not None
    with Session(db.get_engine()) as session:
        opened = case_events(session, "saisine", saisine_row.id)[0]
        cancel = [
            e
            for e in case_events(session, "saisine", saisine_row.id)
            if e.action.startswith("run.")
        ]
    assert (opened.actor_label, opened.channel) == ("Inès Moreau (coordination)", "prefect-ui")
    assert [(e.action, e.actor_label) for e in cancel] == [
        ("run.cancel-requested", "Inès Moreau (coordination)")
    ]


def test_the_prefect_ui_opens_on_its_dashboard(prefect_stack: PrefectStack, db_url: str) -> None:
    """The address `make up` prints (/prefect/) opens the UI whose run pages hold the forms,
    never a blank page: the server would send a new browser to its newer UI (/v2/)."""
    coordinator = account("coordinator", "poitiers", "Inès Moreau")
    with ServiceProcess(db_url) as service, chromium() as browser:
        page = open_prefect_ui(browser, service.url, coordinator, "/")
        page.wait_for_url(re.compile(r"/prefect/dashboard"), timeout=60_000)
        # the UI rendered (a blank page has neither the menu nor the page's title)
        page.get_by_text("Work Pools", exact=True).first.wait_for(timeout=60_000)
        page.get_by_text("Dashboard").first.wait_for(timeout=60_000)
        page.goto(f"{service.url}/prefect/v2/runs")
        page.wait_for_url(re.compile(r"/prefect/runs"), timeout=60_000)
        assert "/v2" not in page.url
