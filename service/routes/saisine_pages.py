"""The coordinator's pages of a saisine: its content (read, audited) and the description of
the situation, typed here and only here (never in Prefect): saving it wakes the run."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.background import BackgroundTasks

from models.core.enums import Role
from models.core.errors import DomainError
from models.core.people import User
from models.core.runs import deliver_resumes
from models.saisine.intake import DescriptionForm, describe_saisine
from models.saisine.overview import saisine_overview
from models.saisine.states import SaisineStatus
from models.saisine.tables import SAISINE, Saisine
from notifications.send import send_now
from service.casework import open_waits_of, read_case, visible_case
from service.deps import CurrentUser, SessionDep, Writer, actor_of, page_context, templates
from service.errors import problem_responses
from service.forms import form_fields, parse_form

router = APIRouter(tags=["saisines"])

DESCRIPTION_TITLE = "Description de la situation"


def _saisine(session: SessionDep, user: User, saisine_id: int) -> Saisine:
    """The saisine if the account's CLSM holds it; 404 otherwise (its number tells nothing)."""
    visible_case(session, user, SAISINE.value, saisine_id)
    saisine = session.get(Saisine, saisine_id)
    assert saisine is not None
    return saisine


@router.get(
    "/saisines/{saisine_id}",
    response_class=HTMLResponse,
    summary="Page d'une saisine pour la coordination (consultation auditée)",
    responses=problem_responses(401, 404),
)
def saisine_page(
    request: Request, saisine_id: int, user: CurrentUser, session: SessionDep
) -> Response:
    """Description, consultations et réponses, orientation, réunion, décision, actions et ce
    qui est attendu de qui ; en lecture seule une fois la saisine close."""
    case = read_case(session, user, actor_of(request, user), SAISINE.value, saisine_id)
    saisine = session.get(Saisine, case.case_id)
    assert saisine is not None
    overview = saisine_overview(session, saisine, open_waits_of(session, SAISINE, case.case_id))
    return templates.TemplateResponse(
        request,
        "saisine.html",
        page_context(
            request,
            user,
            title=saisine.label,
            saisine=overview,
            may_describe=user.role is not Role.AUDITOR and saisine.status is SaisineStatus.RECEIVED,
        ),
    )


def _description_page(
    request: Request,
    user: User,
    saisine: Saisine,
    values: dict[str, object] | None = None,
    errors: dict[str, str] | None = None,
    *,
    status: int = 200,
) -> Response:
    fields = form_fields(DescriptionForm, values, errors, raw=values is not None)
    return templates.TemplateResponse(
        request,
        "saisine_description.html",
        page_context(
            request,
            user,
            title=f"{DESCRIPTION_TITLE} — {saisine.label}",
            saisine=saisine,
            fields=fields,
            errors=errors or {},
        ),
        status_code=status,
    )


@router.get(
    "/saisines/{saisine_id}/description",
    response_class=HTMLResponse,
    summary="Saisir la description de la situation (coordination)",
    responses=problem_responses(401, 403, 404),
)
def description_form(
    request: Request, saisine_id: int, user: CurrentUser, session: SessionDep
) -> Response:
    """Le formulaire de la description ; une saisine déjà décrite renvoie vers sa page."""
    if user.role is Role.AUDITOR:
        raise HTTPException(403, "Votre rôle (audit) permet de consulter, pas de modifier.")
    saisine = _saisine(session, user, saisine_id)
    if saisine.status is not SaisineStatus.RECEIVED:
        return RedirectResponse(f"/saisines/{saisine_id}", status_code=303)
    return _description_page(request, user, saisine)


@router.post(
    "/saisines/{saisine_id}/description",
    response_class=HTMLResponse,
    summary="Enregistrer la description de la situation (réveille le processus)",
    responses={303: {"description": "Enregistrée"}, **problem_responses(401, 403, 404, 422)},
)
async def save_description(
    request: Request, saisine_id: int, user: Writer, session: SessionDep
) -> Response:
    """Valide et enregistre (audité) dans la base du service seulement, puis reprend le run.

    Un refus renvoie le formulaire avec ce qui a été saisi et le motif à côté du champ ;
    rien n'est enregistré.
    """
    saisine = _saisine(session, user, saisine_id)
    if saisine.status is not SaisineStatus.RECEIVED:
        return RedirectResponse(f"/saisines/{saisine_id}", status_code=303)
    form = await request.form()
    data = {key: [str(v) for v in form.getlist(key)] for key in form if key != "csrf_token"}
    answer, typed, errors = parse_form(DescriptionForm, data)
    if answer is None:
        return _description_page(request, user, saisine, typed, errors, status=422)
    assert isinstance(answer, DescriptionForm)
    try:
        woken = describe_saisine(
            session=session,
            saisine=saisine,
            description=answer.as_description(),
            actor=actor_of(request, user),
        )
    except DomainError as refusal:
        session.rollback()
        where = refusal.field if refusal.field in DescriptionForm.model_fields else "__root__"
        fresh = session.get(Saisine, saisine_id)
        assert fresh is not None
        return _description_page(request, user, fresh, typed, {where: refusal.message}, status=422)
    session.commit()
    after = BackgroundTasks()
    after.add_task(deliver_resumes, woken)  # the run goes on: it proposes the partners
    after.add_task(send_now)
    return RedirectResponse(f"/saisines/{saisine_id}", status_code=303, background=after)
