"""Forms of the saisine flow in the Prefect UI: the intake parameters and the coordinator's
decisions (RunInput). Every field has a French title and a default; choices among the
database's structures are `Literal`s built for the case at hand (a select in the UI)."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from flows.inputs.fields import (
    INSIST,
    Form,
    Line,
    WallClock,
    choice,
    choices,
    hidden,
    needed,
    optional,
)
from models.saisine.intake import AGE_RANGES, CHANNELS, SaisineIntake

ESCALATE = "Passer au niveau 2 : examen en réunion de cellule"
NEW_MEETING = "Nouvelle réunion"
BACK_TO_LEVEL1 = "Revenir au niveau 1 (échanges bilatéraux)"
NO_OWNER = "(à choisir)"

Channel = Literal["téléphone", "courriel", "courrier", "rencontre"]
AgeRange = Literal[
    "", "moins de 18 ans", "18-25 ans", "26-40 ans", "41-60 ans", "61-75 ans", "plus de 75 ans"
]
assert set(Channel.__args__) == set(CHANNELS)  # type: ignore[attr-defined]
assert set(AgeRange.__args__) - {""} == set(AGE_RANGES)  # type: ignore[attr-defined]


class SaisineIntakeForm(BaseModel):
    """Parameters of a new saisine, typed by the coordinator after the partner's call."""

    clsm: str = Field(default="poitiers", title="CLSM (identifiant)")
    received_on: date | None = Field(default=None, title="Date de la saisine (vide : aujourd'hui)")
    channel: Channel = Field(default="téléphone", title="Canal")
    referring_structure: str = Field(default="", title="Structure qui saisit la cellule")
    referrer_name: str = Field(default="", title="Personne qui saisit (nom)")
    referrer_email: str = Field(default="", title="Personne qui saisit (e-mail)")
    initials: str = Field(
        default="", max_length=10, title="Initiales de la personne concernée (pas de nom)"
    )
    age_range: AgeRange = Field(default="", title="Tranche d'âge")
    commune: str = Field(default="", title="Commune")
    difficulty: str = Field(
        default="", max_length=2000, title="Difficulté rencontrée (quelques lignes)"
    )
    consent_given: bool = Field(
        default=False, title="La personne a consenti à ce que sa situation soit évoquée"
    )
    consent_note: str = Field(
        default="", title="Sinon, pourquoi le consentement n'a pu être recueilli"
    )
    urgent: bool = Field(
        default=False,
        title="Situation d'urgence",
        description="La cellule n'est pas un service d'urgence : la saisine sera close et "
        "la personne qui saisit recevra les numéros d'urgence.",
    )

    def as_intake(self, today: date) -> SaisineIntake:
        """What the models record (received today when no date is given)."""
        return SaisineIntake(
            clsm_slug=self.clsm,
            received_on=self.received_on or today,
            channel=self.channel,
            referring_structure=self.referring_structure,
            referrer_name=self.referrer_name,
            referrer_email=self.referrer_email,
            initials=self.initials,
            age_range=self.age_range,
            commune=self.commune,
            difficulty=self.difficulty,
            consent_given=self.consent_given,
            consent_note=self.consent_note,
            urgent=self.urgent,
        )


class PartnersForm(Form):
    partners: list[str] = needed(default_factory=list, title="Structures à consulter")


class OrientationForm(Form):
    outcome: str = needed("", title="Suite donnée")
    who_acts: str = needed("", title="Qui agit (structure ou structures)")
    detail: str = optional("", title="Précisions (texte du bilan annuel)")
    follow_up_days: int = needed(
        30,
        title="Suivi auprès de la personne qui a saisi, dans combien de jours",
        description="0 : clore la saisine maintenant, sans suivi.",
    )


class MeetingForm(Form):
    meeting: str = needed(NEW_MEETING, title="Réunion")
    day: date = needed(default_factory=date.today, title="Date de la nouvelle réunion")
    at: str = needed("14:00", title="Heure (heure de Paris)")
    insist: bool = optional(False, title=INSIST)
    host: str = needed("", title="Lieu : membre permanent qui accueille (rotation)")
    invited: list[str] = optional(
        default_factory=list, title="Membres invités pour cette situation"
    )


class ActionLine(Line):
    text: str = needed("", title="Action")
    owner: str = needed(NO_OWNER, title="Responsable")
    due_on: date = needed(default_factory=date.today, title="Échéance")


class DecisionForm(Form):
    meeting_held: bool = needed(
        True,
        title="La réunion a eu lieu",
        description="Décochez si elle n'a pas eu lieu : elle sera annulée et une autre "
        "réunion vous sera proposée.",
    )
    text: str = needed("", title="Décision de la cellule")
    actions: list[ActionLine] = optional(default_factory=list, title="Actions décidées")


KEEP = "Maintenir"
CANCEL = "Annuler la réunion"
MOVE = "Déplacer la réunion"


class MeetingWatchForm(Form):
    # tick resumes this wait with {"reason": "due"}, the service with {"reason": "answer"}
    reason: str = hidden("coordination")
    action: Literal["Maintenir", "Annuler la réunion", "Déplacer la réunion"] = needed(
        KEEP, title="Réunion"
    )
    new_day: date = needed(default_factory=date.today, title="Nouvelle date, pour un déplacement")
    new_at: str = needed("14:00", title="Nouvelle heure (heure de Paris), pour un déplacement")
    insist: bool = optional(False, title=INSIST)
    motive: str = optional("", title="Motif de l'annulation ou du déplacement")


def partners_form(labels: list[str]) -> type[PartnersForm]:
    return create_model(
        "ConsultationPartenaires",
        __base__=PartnersForm,
        partners=(
            choices(labels),
            needed(default_factory=list, title="Structures à consulter (convention valide)"),
        ),
    )


def orientation_form(labels: list[str]) -> type[OrientationForm]:
    """The CLSM's orientation catalogue as a select, then escalation to level 2."""
    return create_model(
        "Orientation",
        __base__=OrientationForm,
        outcome=(
            choice([*labels, ESCALATE]),
            needed(labels[0] if labels else ESCALATE, title="Suite donnée"),
        ),
    )


def meeting_form(meetings: list[str], hosts: list[str], invitable: list[str]) -> type[MeetingForm]:
    return create_model(
        "ReunionDeCellule",
        __base__=MeetingForm,
        meeting=(
            choice([NEW_MEETING, *meetings, BACK_TO_LEVEL1]),
            needed(NEW_MEETING, title="Réunion"),
        ),
        at=(WallClock, needed("14:00", title="Heure (heure de Paris)")),
        host=(
            choice(hosts),
            needed(
                hosts[0] if hosts else "", title="Lieu : membre permanent qui accueille (rotation)"
            ),
        ),
        invited=(
            choices(invitable),
            optional(default_factory=list, title="Membres invités pour cette situation"),
        ),
    )


def _list_of(model: type[BaseModel]) -> Any:
    return list[model]  # type: ignore[valid-type]


def decision_form(owners: list[str], due_on: date) -> type[DecisionForm]:
    """The decision, with its action lines: each owner chosen among those the meeting may
    name, each due date proposed `due_on`."""
    line = create_model(
        "Action",
        __base__=ActionLine,
        owner=(choice([NO_OWNER, *owners]), needed(NO_OWNER, title="Responsable")),
        due_on=(date, needed(due_on, title="Échéance")),
    )
    return create_model(
        "DecisionDeLaCellule",
        __base__=DecisionForm,
        actions=(_list_of(line), optional(default_factory=list, title="Actions décidées")),
    )


def meeting_watch_form() -> type[MeetingWatchForm]:
    return create_model(
        "ReunionPrevue",
        __base__=MeetingWatchForm,
        new_at=(
            WallClock,
            needed("14:00", title="Nouvelle heure (heure de Paris), pour un déplacement"),
        ),
    )


class ActionsWatchForm(Form):
    # resumed by the owners' links and by tick (reminders), as MeetingWatchForm
    reason: str = hidden("coordination")
    close: bool = optional(False, title="Clore la saisine maintenant")
    close_reason: str = optional(
        "", title="Motif de clôture (à donner si des actions restent ouvertes)"
    )
