"""Partner steps by link: `/r/{token}` shows (GET) and records (POST) one step."""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from starlette.background import BackgroundTask, BackgroundTasks

from models.core.links import LinkState
from models.core.runs import deliver_resumes
from notifications.send import send_now
from service.answers import (
    LinkUnusable,
    StepView,
    is_open_call,
    note_refused_application,
    renew_link,
    submit_step,
    view_step,
)
from service.deps import RateLimited, SessionDep, client_ip, limiter, page_context, templates
from service.errors import problem_responses

router = APIRouter(tags=["liens"])

UNUSABLE = problem_responses(404, 410, 429)


def _link_key(token: str) -> str:
    """A link's name in the failure counts: never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def _unusable_page(request: Request, token: str, error: LinkUnusable) -> Response:
    if error.state is None:
        limiter(request, "links").fail(client_ip(request))
    status = 404 if error.state is None else 410
    return templates.TemplateResponse(
        request,
        "link_unusable.html",
        page_context(
            request,
            title="Lien inconnu"
            if error.state is None
            else "Lien déjà utilisé"
            if error.state is LinkState.USED
            else "Lien expiré",
            state=error.state.value if error.state else "unknown",
            token=token,
        ),
        status_code=status,
    )


def _step_page(request: Request, token: str, view: StepView, status: int = 200) -> Response:
    return templates.TemplateResponse(
        request,
        "step.html",
        page_context(request, title=view.page.title, view=view, token=token),
        status_code=status,
    )


@router.get(
    "/r/{token}",
    response_class=HTMLResponse,
    summary="Page d'une étape (ne consomme pas le lien)",
    responses=UNUSABLE,
)
def show_step(request: Request, token: str, session: SessionDep) -> Response:
    """Affiche le formulaire de l'étape ; un robot qui ouvre le lien ne le consomme pas."""
    limiter(request, "links").check(client_ip(request))
    try:
        view = view_step(session, token)
    except LinkUnusable as error:
        session.rollback()  # the read ends here: a failure is counted in its own transaction
        return _unusable_page(request, token, error)
    return _step_page(request, token, view)


@router.post(
    "/r/{token}",
    response_class=HTMLResponse,
    summary="Enregistrer la réponse d'une étape",
    responses={**UNUSABLE, **problem_responses(409, 413, 422)},
)
async def answer_step(request: Request, token: str) -> Response:
    """Valide le formulaire ; lien consommé, réponse et audit dans une seule transaction.

    Le processus en attente est repris après l'envoi de la page : le partenaire n'attend
    pas Prefect. La reprise demandée est enregistrée avec la réponse ; si Prefect est
    injoignable (ou le service arrêté avant l'appel), elle est retentée par le `tick`.
    """
    limiter(request, "links").check(client_ip(request))
    limiter(request, "link").check(_link_key(token))
    # a call link takes many applications, each mailing a confirmation to the address typed:
    # limited per link and per address so that it cannot be used to send mail
    open_call = await run_in_threadpool(is_open_call, token)
    if open_call:
        try:
            limiter(request, "apply-link").check(_link_key(token))
            limiter(request, "apply-address").check(client_ip(request))
        except RateLimited:  # counted for the coordinator's page of abuse, then refused
            await run_in_threadpool(note_refused_application, token, client_ip(request))
            raise
    form = await request.form()
    data = {key: [str(v) for v in form.getlist(key)] for key in form}
    try:
        outcome = await run_in_threadpool(submit_step, token, data)
    except LinkUnusable as error:
        return _unusable_page(request, token, error)
    if outcome.view is not None:  # refused: typing errors (422) or a rule of the domain (409)
        limiter(request, "link").fail(_link_key(token))
        status = 409 if outcome.view.refused else 422
        return _step_page(request, token, outcome.view, status=status)
    if open_call:
        limiter(request, "apply-link").fail(_link_key(token))
        limiter(request, "apply-address").fail(client_ip(request))
    # after the page is sent: the run goes on, and mail the answer queued leaves at once
    after = BackgroundTasks()
    if outcome.wait_id is not None:
        after.add_task(deliver_resumes, [outcome.wait_id])
    after.add_task(send_now)
    return templates.TemplateResponse(
        request,
        "step_done.html",
        page_context(
            request,
            title="Réponse enregistrée",
            message=outcome.confirmation,
            case_label=outcome.case_label,
            coordination=outcome.coordination,
        ),
        background=after,
    )


@router.post(
    "/r/{token}/renew",
    response_class=HTMLResponse,
    summary="Recevoir un nouveau lien par courriel",
    responses=problem_responses(404, 429),
)
async def renew(request: Request, token: str) -> Response:
    """Envoie un nouveau lien à l'adresse connue du contact (jamais à une adresse saisie)."""
    limiter(request, "links").check(client_ip(request))
    limiter(request, "link").check(_link_key(token))
    limiter(request, "link").fail(_link_key(token))  # each renewal sends a mail: counted
    if not await run_in_threadpool(renew_link, token):
        return _unusable_page(request, token, LinkUnusable(None))
    return templates.TemplateResponse(
        request,
        "link_renewed.html",
        page_context(request, title="Nouveau lien envoyé"),
        background=BackgroundTask(send_now),  # the new link leaves now, not at the heartbeat
    )
