"""The people's one door to Prefect: its UI and API under /prefect/, within each account's
role and CLSM, with the server's secret added here and never shown.

- /prefect/ui-settings is answered here: the UI talks to /prefect/api and asks for no
  credentials (the server's own answer would make it ask for the secret);
- /prefect/api/... is forwarded to the server's /api/... (HTTP streamed with httpx, the live
  websockets with `websockets`), /prefect/... to the UI's files;
- roles on every request: an auditor reads only; a coordinator reads and acts on the runs
  of their own CLSM (runs carry the tag `clsm:<slug>`: lists are narrowed to it, another
  CLSM's run answers 404 as if it did not exist) and launches a deployment only with their
  own CLSM as parameter; the settings of the installation (work pools, deployments,
  automations, blocks, concurrency, variables...) are for admins;
- every resume, cancellation and launch is recorded with the account before it is
  forwarded (models.gateway), so that the flow names the person in the audit trail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, Depends, HTTPException, Request, WebSocket
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from sqlmodel import Session
from starlette.background import BackgroundTask
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from models.core import db
from models.core.access import find_session
from models.core.enums import Role
from models.core.gateway import GatewayAction, GatewayKind, record_gateway_action
from models.core.people import Clsm, User
from models.core.settings import get_settings
from service import launch_forms
from service.deps import LoginRequired
from service.security import SESSION_COOKIE

PREFIX = "/prefect"
API_PREFIX = f"{PREFIX}/api"

router = APIRouter(prefix=PREFIX, include_in_schema=False)

# POST endpoints of Prefect's API that only read (filters, counts, pages, histories)
READ_ENDS = {
    "filter",
    "count",
    "paginate",
    "history",
    "lateness",
    "validate",
    "next-runs",
    "count-deployments",
    "count-task-runs",
    "counts",
}
CANCEL_STATES = {"CANCELLING", "CANCELLED"}
UUID = r"[0-9a-fA-F-]{36}"
RUN_PATH = re.compile(rf"^(?:ui/)?flow_runs/(?P<id>{UUID})(?:/|$)")
RESUME_PATH = re.compile(rf"^flow_runs/(?P<id>{UUID})/resume$")
SET_STATE_PATH = re.compile(rf"^flow_runs/(?P<id>{UUID})/set_state$")
LAUNCH_PATH = re.compile(rf"^deployments/{UUID}/create_flow_run$")
# single objects whose answer names their flow run (checked once read)
OWNED_PATH = re.compile(rf"^(?:task_runs|artifacts)/{UUID}$")
DEPLOYMENT_READ = re.compile(rf"^deployments/(?:{UUID}|name/[^/]+/[^/]+|filter|paginate)$")

HOP_HEADERS = {
    "host",
    "cookie",
    "authorization",
    "content-length",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "transfer-encoding",
    "origin",
    "referer",
    "proxy-authorization",
}
DROPPED_ANSWER_HEADERS = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "set-cookie",
    "server",
    "date",
    "content-length",
}
AUDITOR_REFUSAL = "Votre rôle (audit) permet de consulter, pas de modifier."
ADMIN_ONLY = "Ce réglage de l'installation est réservé à l'administration."


@dataclass(frozen=True)
class Visitor:
    """An account seen by the gateway: what it may see (every CLSM, or one tag)."""

    user: User
    tag: str | None  # `clsm:<slug>` of the account; None for an admin (every CLSM)

    @property
    def role(self) -> Role:
        return self.user.role

    def sees(self, run: dict[str, Any]) -> bool:
        return self.tag is None or self.tag in (run.get("tags") or [])


def _visitor_of(cookie: str) -> Visitor | None:
    """The account of a session cookie, read in a short transaction of its own (the
    gateway never holds the database while a request to Prefect is under way)."""
    if not cookie:
        return None
    with Session(db.get_engine(), expire_on_commit=False) as session:
        found = find_session(session, cookie)
        if found is None:
            return None
        user = session.get(User, found.user_id)
        if user is None or not user.active:
            return None
        if user.role is Role.ADMIN:
            return Visitor(user, None)
        clsm = session.get(Clsm, user.clsm_id) if user.clsm_id is not None else None
    # an account without a CLSM sees nothing: a tag no run carries
    return Visitor(user, f"clsm:{clsm.slug}" if clsm else "clsm:")


async def visitor(request: Request) -> Visitor:
    who = await run_in_threadpool(_visitor_of, request.cookies.get(SESSION_COOKIE, ""))
    if who is None:
        raise LoginRequired()
    return who


VisitorDep = Annotated[Visitor, Depends(visitor)]


# -- the server -------------------------------------------------------------------------
def _server_auth() -> httpx.BasicAuth:
    user, _, password = get_settings().prefect_auth.partition(":")
    return httpx.BasicAuth(user, password)


@contextlib.asynccontextmanager
async def _server() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=get_settings().prefect_server_url,
        auth=_server_auth(),
        timeout=httpx.Timeout(60, connect=5),
    ) as client:
        yield client


async def _read_run(run_id: str) -> dict[str, Any] | None:
    async with _server() as server:
        answer = await server.get(f"/api/flow_runs/{run_id}")
    if answer.status_code == 404:
        return None
    answer.raise_for_status()
    run: dict[str, Any] = answer.json()
    return run


async def _visible_run(who: Visitor, run_id: str) -> dict[str, Any]:
    """The run, if it exists and the account may see it; else 404 (the same answer)."""
    run = await _read_run(run_id)
    if run is None or not who.sees(run):
        raise HTTPException(404, "Ce run n'existe pas ou n'est pas de votre CLSM.")
    return run


def _plain(path: str) -> str:
    """The path, unless it has dot or empty segments: the server (httpx) would resolve them
    to another route than the one the rules were applied to."""
    segments = path.split("/")
    if any(part in (".", "..") for part in segments) or "" in segments[:-1] or "\\" in path:
        raise HTTPException(404)
    return path


# -- the UI's settings and files ----------------------------------------------------------
@router.get("/ui-settings")
async def ui_settings(request: Request, who: VisitorDep) -> JSONResponse:
    async with _server() as server:
        answer = await server.get(f"{PREFIX}/ui-settings")
    answer.raise_for_status()
    settings = answer.json()
    settings["api_url"] = f"{get_settings().base_url}{API_PREFIX}"
    settings["auth"] = None  # the gateway holds the secret: the UI must not ask for it
    settings.update(default_ui="v1", available_uis=["v1"], v2_base_url=None)
    return JSONResponse(settings)


# -- the API -----------------------------------------------------------------------------
def _is_read(method: str, path: str) -> bool:
    if method in ("GET", "HEAD"):
        return True
    parts = path.strip("/").split("/")
    return method == "POST" and (parts[-1] in READ_ENDS or "count-by" in parts)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body) if body else {}
    except ValueError:
        raise HTTPException(400, "Corps de requête JSON illisible.") from None


def _narrow(body: Any, tag: str, events: bool) -> Any:
    """A list query narrowed to the runs that carry `tag` (their events, for events)."""
    if not isinstance(body, dict):
        return body
    if events:
        query = body.get("filter") or {}
        related = query.get("related") or []
        related = related if isinstance(related, list) else [related]
        query["related"] = [*related, {"id": [f"prefect.tag.{tag}"]}]
        body["filter"] = query
        return body
    runs = body.get("flow_runs") or {}
    tags = runs.get("tags") or {}
    tags["all_"] = [*(tags.get("all_") or []), tag]
    runs["tags"] = tags
    body["flow_runs"] = runs
    return body


def _clsm_parameters(value: Any) -> Iterator[Any]:
    """Every value of a parameter named `clsm`, at any depth (e.g. intake.clsm)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "clsm":
                yield item
            else:
                yield from _clsm_parameters(item)
    elif isinstance(value, list):
        for item in value:
            yield from _clsm_parameters(item)


async def _record(who: Visitor, kind: GatewayKind, run_id: str = "", pause_key: str = "") -> int:
    def write() -> int:
        with Session(db.get_engine(), expire_on_commit=False) as session:
            action = record_gateway_action(
                session=session, user=who.user, kind=kind, flow_run_id=run_id, pause_key=pause_key
            )
            session.commit()
            assert action.id is not None
            return action.id

    return await run_in_threadpool(write)


async def _attach_run(action_id: int, run_id: str) -> None:
    def write() -> None:
        with Session(db.get_engine()) as session:
            action = session.get(GatewayAction, action_id)
            if action is not None:
                action.flow_run_id = run_id
                session.add(action)
                session.commit()

    await run_in_threadpool(write)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True
    base = urlsplit(get_settings().base_url)
    return origin.rstrip("/") == f"{base.scheme}://{base.netloc}"


async def _check_write(request: Request, who: Visitor, path: str, body: bytes) -> bytes:
    """Refuse what the account may not do; record what it does (before it is forwarded)."""
    if not _same_origin(request):
        raise HTTPException(403, "Requête venue d'un autre site : refusée.")
    if who.role is Role.AUDITOR:
        raise HTTPException(403, AUDITOR_REFUSAL)
    if found := RESUME_PATH.match(path):
        run = await _visible_run(who, found["id"])
        pause_key = ((run.get("state") or {}).get("state_details") or {}).get("pause_key") or ""
        await _record(who, GatewayKind.RESUME, found["id"], pause_key)
        return body
    if found := SET_STATE_PATH.match(path):
        state = (_json(body).get("state") or {}).get("type")
        if state in CANCEL_STATES or who.role is Role.ADMIN:
            await _visible_run(who, found["id"])
            if state in CANCEL_STATES:
                await _record(who, GatewayKind.CANCEL, found["id"])
            return body
        raise HTTPException(403, "Seule l'annulation d'un run est possible depuis votre compte.")
    if LAUNCH_PATH.match(path):
        return await _check_launch(who, body)
    if who.role is not Role.ADMIN:
        raise HTTPException(403, ADMIN_ONLY)
    return body


async def _check_launch(who: Visitor, body: bytes) -> bytes:
    launch = _json(body)
    clsms = set(map(str, _clsm_parameters(launch.get("parameters") or {})))
    if who.tag is not None and clsms != {who.tag.removeprefix("clsm:")}:
        raise HTTPException(
            403,
            "Vous ne pouvez lancer un processus que pour votre CLSM : indiquez son "
            f"identifiant « {who.tag.removeprefix('clsm:')} » dans le paramètre CLSM.",
        )
    if len(clsms) == 1:  # the run carries its CLSM from the start (its flow tags it too)
        launch["tags"] = sorted({*(launch.get("tags") or []), f"clsm:{clsms.pop()}"})
    return json.dumps(launch).encode()


async def _check_read(who: Visitor, path: str, request: Request, body: bytes) -> bytes:
    """Narrow the account's reads to its CLSM (nothing to do for an admin)."""
    if who.tag is None:
        return body
    if found := RUN_PATH.match(path):
        await _visible_run(who, found["id"])
    for name in ("flow_run_id", "flow_run_ids"):
        for run_id in request.query_params.getlist(name):
            await _visible_run(who, run_id)
    if request.method != "POST":
        return body
    parts = path.split("/")
    if parts[0] == "logs":
        query = _json(body)
        wanted = ((query.get("logs") or {}).get("flow_run_id") or {}).get("any_") or []
        if not wanted:
            raise HTTPException(403, "Journaux : précisez le run (de votre CLSM).")
        for run_id in wanted:
            await _visible_run(who, str(run_id))
        return body
    if parts[0] == "events":
        return json.dumps(_narrow(_json(body), who.tag, events=True)).encode()
    if parts[0] in ("flow_runs", "task_runs", "artifacts", "ui"):
        return json.dumps(_narrow(_json(body), who.tag, events=False)).encode()
    return body


# The UI the gateway serves: Prefect's first UI, whose run pages hold the Resume forms. (The
# server sends a browser without this cookie to its newer UI, which the gateway does not serve.)
UI_VERSION_COOKIE = "prefect_ui_version=v1"


def _forwarded_headers(request: Request) -> dict[str, str]:
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
    return {**headers, "cookie": UI_VERSION_COOKIE}


def _answer_headers(answer: httpx.Response) -> dict[str, str]:
    return {
        k: v
        for k, v in answer.headers.items()
        if k.lower() not in DROPPED_ANSWER_HEADERS and not k.lower().startswith("access-control")
    }


async def _forward(
    request: Request, target: str, body: bytes | None = None, buffered: bool = False
) -> tuple[Response, httpx.Response | None]:
    """Send the request on to the server; stream its answer back (or buffer it)."""
    client = httpx.AsyncClient(
        base_url=get_settings().prefect_server_url,
        auth=_server_auth(),
        timeout=httpx.Timeout(120, connect=5),
    )
    outgoing = client.build_request(
        request.method,
        target,
        params=str(request.query_params),
        headers=_forwarded_headers(request),
        content=body if body is not None else request.stream(),
    )
    try:
        answer = await client.send(outgoing, stream=True)
    except httpx.HTTPError:
        await client.aclose()
        raise HTTPException(503, "Le serveur Prefect ne répond pas ; réessayez.") from None
    if buffered:
        try:
            content = await answer.aread()
        finally:
            await answer.aclose()
            await client.aclose()
        headers = _answer_headers(answer)
        headers.pop("content-encoding", None)  # aread() decoded it
        return Response(content, answer.status_code, headers=headers), answer

    async def close() -> None:
        await answer.aclose()
        await client.aclose()

    return (
        StreamingResponse(
            answer.aiter_raw(),
            status_code=answer.status_code,
            headers=_answer_headers(answer),
            background=BackgroundTask(close),
        ),
        None,
    )


@router.api_route("/api/{path:path}", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
async def api(path: str, request: Request, who: VisitorDep) -> Response:
    path = _plain(path)
    body = await request.body()
    target = f"/api/{path}"
    if _is_read(request.method, path):
        body = await _check_read(who, path, request, body)
        if who.tag is not None and DEPLOYMENT_READ.match(path):
            return await _fitted_deployments(request, target, body, who)
        if who.tag is not None and OWNED_PATH.match(path):
            response, answer = await _forward(request, target, body, buffered=True)
            if answer is not None and answer.status_code == 200:
                owner = answer.json().get("flow_run_id")
                if owner:
                    await _visible_run(who, str(owner))
            return response
        response, _ = await _forward(request, target, body)
        return response
    body = await _check_write(request, who, path, body)
    if LAUNCH_PATH.match(path):
        action_id = await _record(who, GatewayKind.LAUNCH)
        response, answer = await _forward(request, target, body, buffered=True)
        if answer is not None and answer.status_code in (200, 201):
            await _attach_run(action_id, str(answer.json().get("id", "")))
        return response
    response, _ = await _forward(request, target, body)
    return response


async def _fitted_deployments(request: Request, target: str, body: bytes, who: Visitor) -> Response:
    """Deployments with their launch forms fitted to the account's CLSM (service.launch_forms)."""
    response, answer = await _forward(request, target, body, buffered=True)
    network = await run_in_threadpool(launch_forms.network_of, who.user)
    if answer is None or answer.status_code != 200 or network is None:
        return response
    return JSONResponse(launch_forms.fit_deployments(answer.json(), network))


@router.websocket("/api/{path:path}")
async def api_socket(path: str, websocket: WebSocket) -> None:
    """Live updates (events, logs): the server's socket, with the secret in its handshake."""
    if path not in ("events/out", "logs/out"):
        await websocket.close(code=1008, reason="Flux inconnu")
        return
    who = await run_in_threadpool(_visitor_of, websocket.cookies.get(SESSION_COOKIE, ""))
    if who is None:
        await websocket.close(code=1008, reason="Connexion nécessaire")
        return
    url = get_settings().prefect_api_url.replace("http", "ws", 1) + f"/{path}"
    if websocket.url.query:
        url += f"?{websocket.url.query}"
    offered = websocket.scope.get("subprotocols") or []
    try:
        upstream = await ws_connect(
            url,
            subprotocols=["prefect"] if "prefect" in offered else None,  # type: ignore[list-item]
            additional_headers={"Authorization": _server_auth_header()},
        )
    except (OSError, InvalidStatus):
        await websocket.close(code=1011, reason="Serveur Prefect indisponible")
        return
    await websocket.accept(subprotocol=upstream.subprotocol)
    async with upstream:
        await _relay(websocket, upstream, who, path)


def _server_auth_header() -> str:
    import base64

    return "Basic " + base64.b64encode(get_settings().prefect_auth.encode()).decode()


async def _relay(websocket: WebSocket, upstream: Any, who: Visitor, path: str) -> None:
    async def to_server() -> None:
        while True:
            text = await websocket.receive_text()
            message = json.loads(text)
            if isinstance(message, dict) and message.get("type") == "auth":
                message["token"] = get_settings().prefect_auth
            elif isinstance(message, dict) and message.get("type") == "filter" and who.tag:
                message = await _narrow_socket_filter(who, path, message)
            await upstream.send(json.dumps(message))

    async def to_browser() -> None:
        async for message in upstream:
            await websocket.send_text(message if isinstance(message, str) else message.decode())

    tasks = [asyncio.create_task(to_server()), asyncio.create_task(to_browser())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    except (ConnectionClosed, RuntimeError):
        pass
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await websocket.close()


async def _narrow_socket_filter(who: Visitor, path: str, message: dict[str, Any]) -> dict[str, Any]:
    assert who.tag is not None
    if path.startswith("events"):
        narrowed = _narrow({"filter": message.get("filter") or {}}, who.tag, events=True)
        return {**message, "filter": narrowed["filter"]}
    if path.startswith("logs"):
        query = message.get("filter") or {}
        wanted = (query.get("flow_run_id") or {}).get("any_") or []
        if not wanted:
            raise HTTPException(403)
        for run_id in wanted:
            await _visible_run(who, str(run_id))
    return message


@router.get("")
@router.get("/{path:path}")
async def ui_files(request: Request, who: VisitorDep, path: str = "") -> Response:
    """The UI's pages and files (the server serves them under /prefect/)."""
    if path == "v2" or path.startswith("v2/"):  # the newer UI is not served: same page in v1
        return RedirectResponse(f"{PREFIX}/{path[3:]}", status_code=307)
    last = path.rsplit("/", 1)[-1]
    page = "." not in last or last.endswith(".html")  # the UI's page, not one of its files
    response, answer = await _forward(request, f"{PREFIX}/{_plain(path)}", buffered=page)
    if answer is not None and answer.headers.get("content-type", "").startswith("text/html"):
        return _in_french(response)
    return response


FRENCH_WORDS = b'<script src="/static/prefect-fr.js" defer></script>'


def _in_french(page: Response) -> Response:
    """The UI's page with the script that puts its forms' own words in French
    (service/static/prefect-fr.js: "Valider", "Ajouter une ligne", "(facultatif)"...)."""
    body = bytes(page.body).replace(b"</head>", FRENCH_WORDS + b"</head>", 1)
    headers = {k: v for k, v in page.headers.items() if k.lower() != "content-length"}
    return Response(body, page.status_code, headers=headers)
