"""What the pages and the API show about cases: who may see them, their waits, their history."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlmodel import Session, col, func, select

from models.catalogue import CASE_KINDS, case_summary, clsm_cases
from models.core import clock
from models.core.audit import Actor, AuditEvent, record_event, verify_case
from models.core.enums import CaseType, Role
from models.core.errors import NotFound
from models.core.kinds import CaseSummary
from models.core.outbox import OutboxMessage, OutboxStatus
from models.core.people import Clsm, Contact, Organisation, User
from models.core.reminders import ReminderPlan
from models.core.settings import get_settings
from models.core.spreadsheet import csv_text
from models.core.waits import Wait, WaitStatus
from service.labels import mail_label, payload_details

ACTION_LABELS: dict[str, str] = {
    "history.read": "consultation de l'historique",
    "case.read": "consultation du dossier",
    "contact.read": "consultation d'une fiche contact",
    "case.resume-requested": "relance de la reprise du processus",
    "status.changed": "changement de statut",
    "link.issued": "lien envoyé",
    "link.renewed": "nouveau lien envoyé",
    "link.answered": "réponse reçue par lien",
    "mail.queued": "courriel mis en file",
    "mail.sent": "courriel envoyé",
    "personal-data.erased": "effacement des données personnelles",
    "form.refused": "formulaire refusé",
    "step.escalated": "étape relancée auprès de la coordination",
    "outcome.acknowledged": "suite donnée prise en compte",
    "follow-up.answered": "réponse au suivi de l'orientation",
    "session.created": "session créée",
    "session.run-attached": "processus Prefect rattaché",
    "application.submitted": "candidature déposée",
    "application.changed": "candidature modifiée",
    "application.flagged": "candidature signalée comme abusive",
    "application.purged": "candidature abusive effacée",
    "placements.reviewed": "accueils vérifiés par la coordination",
    "placement.proposed": "accueil proposé",
    "placement.unassigned": "accueil retiré",
    "agreement.created": "convention préparée",
    "agreement.signed": "convention signée",
    "saisine.received": "saisine reçue",
    "saisine.described": "description de la situation saisie",
    "consultation.asked": "avis demandé",
    "consultation.reminded": "relance de la demande d'avis",
    "meeting.planned": "réunion programmée",
    "meeting.moved": "réunion déplacée",
    "meeting.cancelled": "réunion annulée",
    "meeting.held": "réunion tenue",
    "meeting.attendance": "présences enregistrées",
    "meeting.saisine-added": "saisine inscrite à l'ordre du jour",
    "action.reminded": "relance d'une action",
    "action.overdue": "action en retard",
}

CHANNEL_LABELS: dict[str, str] = {
    "link": "lien",
    "prefect-ui": "interface Prefect",
    "service": "service web",
    "api": "API",
    "cli": "ligne de commande",
    "system": "système",
}


def action_label(action: str) -> str:
    return ACTION_LABELS.get(action, action)


def user_sees(user: User, case: CaseSummary) -> bool:
    return user.role is Role.ADMIN or (user.clsm_id is not None and user.clsm_id == case.clsm_id)


def visible_cases(session: Session, user: User) -> list[CaseSummary]:
    if user.role is Role.ADMIN:
        ids = [c for c in session.exec(select(Clsm.id)) if c is not None]
        cases = [case for clsm_id in ids for case in clsm_cases(session, clsm_id)]
        return sorted(cases, key=lambda c: c.opened_at, reverse=True)
    return clsm_cases(session, user.clsm_id) if user.clsm_id is not None else []


def read_case(
    session: Session,
    user: User,
    actor: Actor,
    case_type: str,
    case_id: int,
    payload: dict[str, Any] | None = None,
) -> CaseSummary:
    """Open a case: check access and record the read in its history (committed)."""
    case = visible_case(session, user, case_type, case_id)
    record_event(
        session=session,
        case_type=case.case_type,
        case_id=case.case_id,
        action="case.read",
        actor=actor,
        payload=payload,
    )
    session.commit()
    return case


def parse_case_type(value: str) -> CaseType:
    try:
        return CaseType(value)
    except ValueError:
        raise NotFound(f"Type de dossier inconnu : « {value} ».") from None


MAX_ID = 2**63 - 1


def visible_case(session: Session, user: User, case_type: str, case_id: int) -> CaseSummary:
    """The case if it exists and the user may see it; NotFound otherwise (a case of another
    CLSM answers as one that does not exist: its number tells nothing)."""
    kind = parse_case_type(case_type)
    in_range = 1 <= case_id <= MAX_ID  # larger ids cannot exist (and overflow SQLite)
    case = case_summary(session, kind, case_id) if kind in CASE_KINDS and in_range else None
    if case is None or not user_sees(user, case):
        raise NotFound("Ce dossier n'existe pas.")
    return case


class WaitPublic(BaseModel):
    step: str = Field(description="Étape attendue")
    waiting_on: str = Field(description="Qui doit répondre")
    since: datetime
    due_at: datetime | None = None
    resume_pending: bool = Field(description="Reprise demandée, pas encore transmise à Prefect")


class PendingMailPublic(BaseModel):
    template: str = Field(description="Modèle du message (identifiant)")
    label: str = Field(description="Ce que dit le message, en français")
    step: str = Field(description="Étape du dossier : ce qui est demandé au destinataire")
    recipient: str = Field(description="Destinataire : nom et adresse")
    recipient_name: str = Field(description="Nom du ou de la destinataire")
    recipient_structure: str = Field(description="Structure du ou de la destinataire")
    status: str = Field(description="pending (en attente), sending (en cours), failed (échec)")
    queued_at: datetime = Field(description="Mis en file le")
    attempts: int = Field(description="Tentatives d'envoi")
    next_attempt_at: datetime = Field(description="Prochaine tentative")
    last_error: str = Field(description="Dernière erreur du serveur de messagerie")


class CasePublic(BaseModel):
    case_type: CaseType
    case_id: int
    kind_label: str
    reference: str
    status: str
    clsm_id: int
    opened_at: datetime
    flow_run_id: str | None
    flow_run_url: str | None
    current_step: str | None = Field(description="Étape en attente la plus ancienne")
    version: int | None = Field(default=None, description="Version (modifications concurrentes)")
    waits: list[WaitPublic]
    undelivered_mails: list[PendingMailPublic] = Field(
        default_factory=list, description="E-mails du dossier pas encore remis (retard, échec)"
    )


def step_label(case_type: CaseType, step: str) -> str:
    """French label of a wait's step, as its process words it; the identifier if unknown."""
    kind = CASE_KINDS.get(case_type)
    label = kind.wait_label(step) if kind else None
    return label or re.sub(r"^ask-\d+-", "", step).replace("-", " ")


def flow_run_url(flow_run_id: str | None) -> str | None:
    """The run's page in the Prefect UI, through the service's gateway."""
    return get_settings().run_url(flow_run_id) or None


def open_waits_of(session: Session, case_type: CaseType, case_id: int) -> list[Wait]:
    return list(
        session.exec(
            select(Wait)
            .where(
                Wait.case_type == case_type.value,
                Wait.case_id == case_id,
                Wait.status == WaitStatus.OPEN,
            )
            .order_by(col(Wait.since))
        )
    )


def undelivered_mails(session: Session, case_type: CaseType, case_id: int) -> list[OutboxMessage]:
    """Mails of the case not delivered yet: what the coordinator must know is late."""
    return list(
        session.exec(
            select(OutboxMessage)
            .where(
                OutboxMessage.case_type == case_type.value,
                OutboxMessage.case_id == case_id,
                col(OutboxMessage.status) != OutboxStatus.SENT,
            )
            .order_by(col(OutboxMessage.created_at))
        )
    )


def _structures_of(session: Session, mails: list[OutboxMessage]) -> dict[int, str]:
    """The structure of each recipient known as a contact (contact id → label)."""
    ids = {m.contact_id for m in mails if m.contact_id is not None}
    if not ids:
        return {}
    query = select(Contact, Organisation).join(
        Organisation, col(Organisation.id) == col(Contact.organisation_id)
    )
    rows = session.exec(query.where(col(Contact.id).in_(ids))).all()
    return {c.id: o.label for c, o in rows if c.id is not None}


def _steps_of(session: Session, mails: list[OutboxMessage]) -> dict[int, str]:
    """What each mail's link asks of its recipient (link id → French step)."""
    ids = {int(m.context["link_id"]) for m in mails if str(m.context.get("link_id", "")).isdigit()}
    if not ids:
        return {}
    plans = session.exec(select(ReminderPlan).where(col(ReminderPlan.link_id).in_(ids))).all()
    return {p.link_id: str(p.context.get("step_label", "")) for p in plans}


def pending_mails(session: Session, mails: list[OutboxMessage]) -> list[PendingMailPublic]:
    """Undelivered mails as a coordinator reads them: what, to whom, from which structure."""
    structures = _structures_of(session, mails)
    steps = _steps_of(session, mails)
    public = []
    for m in mails:
        link_id = str(m.context.get("link_id", ""))
        step = steps.get(int(link_id)) if link_id.isdigit() else None
        public.append(
            PendingMailPublic(
                template=m.template,
                label=mail_label(m.template),
                step=step or mail_label(m.template),
                recipient=f"{m.recipient_name} <{m.recipient_email}>"
                if m.recipient_name
                else m.recipient_email,
                recipient_name=m.recipient_name or m.recipient_email,
                recipient_structure=structures.get(m.contact_id or 0, "—"),
                status=m.status.value,
                queued_at=m.created_at,
                attempts=m.attempts,
                next_attempt_at=m.next_attempt_at,
                last_error=m.last_error,
            )
        )
    return public


def case_public(session: Session, case: CaseSummary) -> CasePublic:
    waits = open_waits_of(session, case.case_type, case.case_id)
    mails = undelivered_mails(session, case.case_type, case.case_id)
    kind = CASE_KINDS.get(case.case_type)
    return CasePublic(
        case_type=case.case_type,
        case_id=case.case_id,
        kind_label=kind.label if kind else case.case_type.value,
        reference=case.reference,
        status=case.status,
        clsm_id=case.clsm_id,
        opened_at=case.opened_at,
        flow_run_id=case.flow_run_id,
        flow_run_url=flow_run_url(case.flow_run_id or (waits[0].flow_run_id if waits else None)),
        current_step=step_label(case.case_type, waits[0].step) if waits else None,
        version=case.version,
        waits=[
            WaitPublic(
                step=step_label(case.case_type, w.step),
                waiting_on=w.waiting_on,
                since=w.since,
                due_at=w.due_at,
                resume_pending=w.resume_pending,
            )
            for w in waits
        ],
        undelivered_mails=pending_mails(session, mails),
    )


# -- history ------------------------------------------------------------------------------


class HistoryFilters(BaseModel):
    action: str = Field(default="", max_length=80, description="Action exacte")
    actor: str = Field(default="", max_length=200, description="Partie du nom de l'auteur")
    since: date | None = Field(
        default=None,
        ge=clock.FIRST_DAY,
        le=clock.LAST_DAY,
        description="À partir du (jour, heure de Paris)",
    )
    until: date | None = Field(
        default=None, ge=clock.FIRST_DAY, le=clock.LAST_DAY, description="Jusqu'au (inclus)"
    )
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=50, ge=1, le=500)

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_defaults=True)


class HistoryEntry(BaseModel):
    seq: int
    at: datetime
    at_paris: str = Field(description="Date et heure, heure de Paris")
    action: str
    action_label: str
    actor_kind: str
    actor: str
    actor_ref: str
    channel: str
    channel_label: str
    payload: dict[str, Any] | None
    details: list[tuple[str, str]] | None = Field(
        default=None, description="Le contenu de l'événement, en français (None : effacé)"
    )


class ChainCheck(BaseModel):
    ok: bool
    detail: str = Field(description="Résultat de la vérification de la chaîne, en français")


class HistoryPublic(BaseModel):
    case_type: CaseType
    case_id: int
    reference: str
    total: int = Field(description="Nombre d'événements correspondant aux filtres")
    page: int
    pages: int
    per_page: int
    filters: dict[str, Any]
    chain: ChainCheck
    actions: list[str] = Field(description="Actions présentes dans l'historique (filtres)")
    entries: list[HistoryEntry]


def _entry(event: AuditEvent) -> HistoryEntry:
    return HistoryEntry(
        seq=event.seq,
        at=event.at,
        at_paris=event.at.astimezone(get_settings().tz).strftime("%d/%m/%Y %H:%M:%S"),
        action=event.action,
        action_label=action_label(event.action),
        actor_kind=event.actor_kind,
        actor=event.actor_label,
        actor_ref=event.actor_ref,
        channel=event.channel,
        channel_label=CHANNEL_LABELS.get(event.channel, event.channel),
        payload=event.payload,
        details=payload_details(event.payload) if event.payload is not None else None,
    )


@dataclass(frozen=True)
class HistoryRead:
    """Who reads and in which form; the read itself is recorded in the case's history."""

    actor: Any  # models.core.audit.Actor
    form: str  # html, json, csv


def read_history(
    *,
    session: Session,
    case: CaseSummary,
    filters: HistoryFilters,
    reader: HistoryRead,
    everything: bool = False,
) -> HistoryPublic:
    """Record the read (audited, same transaction), then the filtered page of the history."""
    record_event(
        session=session,
        case_type=case.case_type,
        case_id=case.case_id,
        action="history.read",
        actor=reader.actor,
        payload={"format": reader.form, "filters": filters.as_dict()},
    )
    where: list[Any] = [
        AuditEvent.case_type == case.case_type.value,
        AuditEvent.case_id == case.case_id,
    ]
    if filters.action:
        where.append(AuditEvent.action == filters.action)
    if filters.actor:
        where.append(col(AuditEvent.actor_label).icontains(filters.actor))
    tz = get_settings().tz
    if filters.since:
        where.append(col(AuditEvent.at) >= datetime.combine(filters.since, time(), tz))
    if filters.until:
        end = datetime.combine(filters.until + timedelta(days=1), time(), tz)
        where.append(col(AuditEvent.at) < end)
    total = session.exec(select(func.count()).select_from(AuditEvent).where(*where)).one()
    query = select(AuditEvent).where(*where).order_by(col(AuditEvent.seq))
    per_page = (total or 1) if everything else filters.per_page
    pages = max(1, -(-total // per_page))
    page = 1 if everything else min(filters.page, pages)
    events = session.exec(query.offset((page - 1) * per_page).limit(per_page)).all()
    broken = verify_case(session, case.case_type.value, case.case_id)
    actions = session.exec(
        select(AuditEvent.action)
        .where(AuditEvent.case_type == case.case_type.value, AuditEvent.case_id == case.case_id)
        .distinct()
        .order_by(col(AuditEvent.action))
    ).all()
    return HistoryPublic(
        case_type=case.case_type,
        case_id=case.case_id,
        reference=case.reference,
        total=total,
        page=page,
        pages=pages,
        per_page=per_page,
        filters=filters.as_dict(),
        chain=ChainCheck(
            ok=broken is None,
            detail="Chaîne d'audit intègre : aucun événement modifié ni supprimé."
            if broken is None
            else f"Chaîne d'audit rompue — {broken}",
        ),
        actions=list(actions),
        entries=[_entry(e) for e in events],
    )


CSV_COLUMNS = ["numéro", "date (Paris)", "action", "libellé", "auteur", "canal", "détails"]


def history_csv(history: HistoryPublic) -> str:
    rows: list[Sequence[object]] = [CSV_COLUMNS]
    for entry in history.entries:
        rows.append(
            [
                entry.seq,
                entry.at_paris,
                entry.action,
                entry.action_label,
                entry.actor,
                entry.channel_label,
                json.dumps(entry.payload, ensure_ascii=False) if entry.payload else "",
            ]
        )
    return csv_text([*rows, [], ["vérification", history.chain.detail]])
