"""Agreements ("conventions de stage"): one per confirmed placement, signed by link by the
participant, the home structure's manager and the host's tutor."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as FormField
from sqlmodel import Session

from models.core import clock
from models.core.audit import Actor
from models.core.errors import DomainError
from models.core.kinds import StepKind, StepPage
from models.core.links import StepLink
from models.core.outbox import Attachment
from models.core.status import change_status
from models.immersion.agreement_pdf import agreement_pdf, agreement_pdf_name
from models.immersion.common import (
    EXAMPLE_TITLE,
    SessionMail,
    agreement_of,
    application_of,
    awaited_link,
    current_wait_step,
    event,
    get_session,
    mail,
    organisation,
    parties,
    placements,
    subject,
)
from models.immersion.plan import days_label, signature_deadline
from models.immersion.states import (
    PARTIES,
    PARTY_LABELS,
    AgreementStatus,
    Party,
    PlacementStatus,
    Step,
)
from models.immersion.tables import Agreement, ImmersionSession, Placement


class AgreementTerms(BaseModel):
    """What an agreement says, as one of its signatories reads it."""

    model_config = ConfigDict(frozen=True)

    party: str
    participant: str
    home: str
    host: str
    tutor: str
    days: str
    may_observe: str
    may_not_observe: str


class AgreementMail(SessionMail):
    """To one signatory: the agreement's terms and the link to sign it."""

    template: ClassVar[str] = "immersion_agreement"
    link_id: int
    party: str
    participant: str
    home: str
    host: str
    tutor: str
    days: str
    may_observe: str
    may_not_observe: str

    @classmethod
    def example(cls) -> AgreementMail:
        return cls(
            session_title=EXAMPLE_TITLE,
            link_id=1,
            party="stagiaire",
            participant="Camille Dupont",
            home="CCAS",
            host="CHL",
            tutor="Dr Paul Bernard",
            days="10/10/2022, 11/10/2022, 12/10/2022",
            may_observe="réunions d'équipe, entretiens d'accueil",
            may_not_observe="consultations médicales",
        )


class AgreementSignedMail(SessionMail):
    """To each signatory: the agreement is signed by the three parties (its PDF attached)."""

    template: ClassVar[str] = "immersion_agreement_signed"
    participant: str
    host: str
    days: str

    @classmethod
    def example(cls) -> AgreementSignedMail:
        return cls(
            session_title=EXAMPLE_TITLE,
            participant="Camille Dupont",
            host="CHL",
            days="10/10/2022, 11/10/2022, 12/10/2022",
        )


def terms(session: Session, placement: Placement, party: Party) -> AgreementTerms:
    application = application_of(session, placement)
    signatories = parties(session, placement)
    return AgreementTerms(
        party=PARTY_LABELS[party],
        participant=signatories["participant"].name,
        home=organisation(session, application.organisation_id).label,
        host=organisation(session, placement.host_organisation_id).label,
        tutor=signatories["tutor"].name,
        days=days_label(placement.day_list),
        may_observe=placement.may_observe,
        may_not_observe=placement.may_not_observe,
    )


def ensure_agreements(*, session: Session, row: ImmersionSession, actor: Actor) -> list[Agreement]:
    """A tripartite agreement for every confirmed placement, mailed to the three parties."""
    assert row.id is not None
    created: list[Agreement] = []
    for placement in placements(session, row.id, PlacementStatus.CONFIRMED):
        if agreement_of(session, placement.id or 0) is not None:
            continue
        agreement = Agreement(
            session_id=row.id, placement_id=placement.id or 0, created_at=clock.now(session)
        )
        session.add(agreement)
        session.flush()
        event(
            session,
            row,
            "agreement.created",
            actor,
            {"agreement_id": agreement.id, "placement_id": placement.id},
        )
        for party, person in parties(session, placement).items():
            issued = awaited_link(
                session,
                row,
                person,
                Step.SIGN,
                agreement.id,
                deadline=signature_deadline(row),
                step_label="signer la convention de stage",
            )
            assert issued.id is not None
            mail(
                session,
                row,
                to=person,
                message=AgreementMail(
                    session_title=row.title,
                    link_id=issued.id,
                    **terms(session, placement, party).model_dump(),
                ),
                dedup_key=f"agreement-{agreement.id}-{party}",
            )
        created.append(agreement)
    return created


def unsigned_parties(session: Session, placement: Placement) -> list[str]:
    """Names of the signatories the placement's agreement still waits for."""
    agreement = agreement_of(session, placement.id or 0)
    if agreement is None:
        return []
    return [
        person.name
        for party, person in parties(session, placement).items()
        if getattr(agreement, f"{party}_signed_at") is None
    ]


class SignatureForm(BaseModel):
    """Signature de la convention de stage."""

    agree: bool = FormField(
        default=False,
        validate_default=True,
        title="J'ai lu la convention de stage et je la signe",
    )
    confidentiality: bool = FormField(
        default=False,
        validate_default=True,
        title="Je m'engage à respecter le cadre d'observation et le secret professionnel",
    )

    @field_validator("agree", "confidentiality", mode="after")
    @classmethod
    def _ticked(cls, value: bool) -> bool:
        if not value:
            raise ValueError("Cochez cette case pour signer la convention.")
        return value


def sign_agreement(
    *, session: Session, agreement: Agreement, contact_id: int, form: SignatureForm, actor: Actor
) -> str:
    if agreement.status is AgreementStatus.CANCELLED:
        raise DomainError("cette convention est annulée : elle n'est plus à signer")
    if agreement.status is not AgreementStatus.PENDING:
        raise DomainError("cette convention n'attend plus de signature")
    if not (form.agree and form.confidentiality):
        raise DomainError("cochez les deux cases pour signer la convention")
    placement = session.get(Placement, agreement.placement_id)
    assert placement is not None
    own = [p for p, c in parties(session, placement).items() if c.id == contact_id]
    if not own:
        raise DomainError("vous n'êtes pas partie à cette convention")
    now = clock.now(session)
    signed = []
    for party in own:
        attribute = f"{party}_signed_at"
        if getattr(agreement, attribute) is None:
            setattr(agreement, attribute, now)
            signed.append(party)
    session.add(agreement)
    event(
        session,
        get_session(session, agreement.session_id),
        "agreement.signed",
        actor,
        {"agreement_id": agreement.id, "parties": signed},
    )
    if all(getattr(agreement, f"{p}_signed_at") is not None for p in PARTIES):
        change_status(session=session, entity=agreement, to=AgreementStatus.SIGNED, actor=actor)
        change_status(session=session, entity=placement, to=PlacementStatus.SIGNED, actor=actor)
        _mail_signed(session, agreement, placement)
        return (
            "Merci : la convention est signée par les trois parties. Chacune la reçoit par "
            "courriel ; l'immersion aura lieu aux jours convenus."
        )
    return (
        "Merci : votre signature est enregistrée. La convention attend les autres "
        "signatures ; dès qu'elles sont toutes là, chaque partie la reçoit par courriel."
    )


def _mail_signed(session: Session, agreement: Agreement, placement: Placement) -> None:
    """The signed agreement, as a PDF, to each of its three signatories."""
    row = get_session(session, agreement.session_id)
    document = Attachment(
        agreement_pdf_name(session, agreement), "application/pdf", agreement_pdf(session, agreement)
    )
    said = terms(session, placement, "participant")
    for party, person in parties(session, placement).items():
        mail(
            session,
            row,
            to=person,
            message=AgreementSignedMail(
                session_title=row.title,
                participant=said.participant,
                host=said.host,
                days=said.days,
            ),
            dedup_key=f"agreement-{agreement.id}-signed-{party}",
            attachments=(document,),
        )


def _page(session: Session, issued: StepLink) -> StepPage:
    row = get_session(session, issued.case_id)
    agreement = subject(session, issued, Agreement)
    placement = session.get(Placement, agreement.placement_id)
    assert placement is not None
    party: Party = next(
        (p for p, c in parties(session, placement).items() if c.id == issued.contact_id),
        "participant",
    )
    said = terms(session, placement, party)
    closed = ""
    if agreement.status is AgreementStatus.CANCELLED:
        closed = (
            "Cette convention est annulée : elle n'est plus à signer et l'immersion prévue "
            "n'aura pas lieu. Vous n'avez rien d'autre à faire ; la coordination du CLSM "
            "vous écrira si un autre accueil est organisé."
        )
    elif agreement.status is AgreementStatus.SIGNED:
        closed = (
            "Cette convention est signée par les trois parties : il n'y a plus rien à signer. "
            "Vous l'avez reçue par courriel."
        )
    return StepPage(
        title="Convention de stage d'immersion",
        case_label=row.reference,
        paragraphs=[
            f"Vous signez en tant que {said.party}.",
            "La convention est cosignée par le ou la stagiaire, la structure d'origine et la "
            "structure d'accueil. Le ou la stagiaire observe sans intervenir et respecte le "
            "secret professionnel ; aucune immersion ne commence sans les trois signatures.",
        ],
        details=[
            ("Stagiaire", said.participant),
            ("Structure d'origine", said.home),
            ("Structure d'accueil", said.host),
            ("Tuteur ou tutrice", said.tutor),
            ("Jours", said.days),
            ("Pourra être observé", said.may_observe),
            ("Ne pourra pas être observé", said.may_not_observe),
        ],
        closed=closed,
    )


def _record(session: Session, issued: StepLink, answer: SignatureForm, actor: Actor) -> str:
    return sign_agreement(
        session=session,
        agreement=subject(session, issued, Agreement),
        contact_id=issued.contact_id,
        form=answer,
        actor=actor,
    )


SIGN = StepKind(
    Step.SIGN,
    SignatureForm,
    _page,
    _record,
    wait_step=current_wait_step,
    submit_label="Signer la convention",
)
MAILS = (AgreementMail, AgreementSignedMail)
