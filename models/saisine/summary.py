"""What people read of a saisine outside its pages: the summary the coordinator reads in
the Prefect UI (no description of the person), and the cases the service lists."""

from __future__ import annotations

from sqlmodel import Session, col, select

from models.core.enums import CaseType
from models.core.kinds import CaseKind, CaseSummary
from models.core.people import Contact, Organisation
from models.core.settings import get_settings
from models.saisine.common import (
    actions_of,
    consultations,
    current_meeting,
    decision_of,
    meeting_label,
    meetings_of,
    orientations,
    saisine_page_url,
)
from models.saisine.states import (
    ACTION_LABELS,
    CONSULTATION_LABELS,
    MEETING_LABELS,
    STATUS_LABELS,
    SaisineStatus,
    wait_label,
)
from models.saisine.tables import MEETING, SAISINE, CellMeeting, Saisine


def summary_markdown(session: Session, saisine: Saisine) -> str:
    """Where the saisine stands, in markdown (the run's artifact, above each form)."""
    tz = get_settings().tz
    referrer = session.get(Organisation, saisine.referrer_organisation_id)
    lines = [
        f"### {saisine.label} — {STATUS_LABELS[saisine.status]}",
        "",
        f"- Reçue le {saisine.received_at.astimezone(tz):%d/%m/%Y} ({saisine.channel}), "
        f"par **{referrer.label if referrer else '?'}**",
    ]
    page = saisine_page_url(saisine)
    if saisine.status is SaisineStatus.RECEIVED:
        lines.append(
            f"- **À faire** : [saisir la description de la situation dans le service]"
            f"({page}/description) ; le processus reprend dès qu'elle est enregistrée."
        )
    lines.append(
        f"- La description et les réponses des partenaires se lisent sur la "
        f"[page de la saisine]({page}) (jamais dans Prefect)."
    )
    rows = consultations(session, saisine)
    if rows:
        lines += ["", "| Tour | Structure | Statut | Connaît la situation | Réponse |"]
        lines += ["|---|---|---|---|---|"]
        for c in rows:
            org = session.get(Organisation, c.organisation_id)
            knows = "—" if c.knows_situation is None else ("oui" if c.knows_situation else "non")
            answered = "proposition reçue" if c.proposal else "—"
            lines.append(
                f"| {c.round} | {org.label if org else '?'} | {CONSULTATION_LABELS[c.status]} "
                f"| {knows} | {answered} |"
            )
    for orientation in orientations(session, saisine):
        lines.append(f"\n**Orientation (tour {orientation.round})** : {orientation.text}")
    meeting = current_meeting(session, saisine)
    if meeting is not None:
        host = session.get(Organisation, meeting.host_organisation_id)
        lines.append(
            f"\n**Réunion de cellule** : {meeting.starts_at.astimezone(tz):%d/%m/%Y %H:%M}, "
            f"chez {host.label if host else '?'} ({MEETING_LABELS[meeting.status]})"
        )
    decision = decision_of(session, saisine)
    if decision is not None:
        lines.append(f"\n**Décision** : {decision.text}")
        for action in actions_of(session, saisine):
            owner = session.get(Contact, action.owner_contact_id)
            lines.append(
                f"- {action.text} — {owner.name if owner else '?'}, "
                f"échéance {action.due_on:%d/%m/%Y} ({ACTION_LABELS[action.status]})"
            )
    if saisine.close_reason:
        lines.append(f"\nMotif de clôture : {saisine.close_reason}")
    return "\n".join(lines)


# -- the cases the service lists -----------------------------------------------------------------
def _summary(saisine: Saisine) -> CaseSummary:
    assert saisine.id is not None
    return CaseSummary(
        case_type=SAISINE,
        case_id=saisine.id,
        reference=saisine.label,
        status=STATUS_LABELS[saisine.status],
        clsm_id=saisine.clsm_id,
        opened_at=saisine.received_at,
        flow_run_id=saisine.flow_run_id,
    )


def _meeting_summary(meeting: CellMeeting) -> CaseSummary:
    assert meeting.id is not None
    return CaseSummary(
        case_type=MEETING,
        case_id=meeting.id,
        reference=meeting_label(meeting),
        status=MEETING_LABELS[meeting.status],
        clsm_id=meeting.clsm_id,
        opened_at=meeting.starts_at,
    )


def _meeting_cases(session: Session, saisine_id: int) -> list[tuple[CaseType, int]]:
    """The saisine's cell meetings, whose convocations its run sends."""
    saisine = session.get(Saisine, saisine_id)
    meetings = meetings_of(session, saisine) if saisine else []
    return [(MEETING, m.id) for m in meetings if m.id is not None]


SAISINE_KIND = CaseKind(
    case_type=SAISINE,
    label="saisine",
    summaries=lambda s, clsm_id: [
        _summary(v)
        for v in s.exec(select(Saisine).where(Saisine.clsm_id == clsm_id).order_by(col(Saisine.id)))
    ],
    summary=lambda s, saisine_id: _summary(v) if (v := s.get(Saisine, saisine_id)) else None,
    wait_label=wait_label,
    mail_with=lambda s, saisine_id: _meeting_cases(s, saisine_id),
)
MEETING_KIND = CaseKind(
    case_type=MEETING,
    label="réunion de cellule",
    summaries=lambda s, clsm_id: [
        _meeting_summary(m)
        for m in s.exec(select(CellMeeting).where(CellMeeting.clsm_id == clsm_id))
    ],
    summary=lambda s, meeting_id: (
        _meeting_summary(m) if (m := s.get(CellMeeting, meeting_id)) else None
    ),
)
