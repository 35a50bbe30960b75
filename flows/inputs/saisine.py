"""Forms of the saisine flow in the Prefect UI: the intake parameters and the coordinator's
decisions (RunInput). Every field has a French title and a default; choices among the
database's structures are `Literal`s built for the case at hand (a select in the UI)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from prefect.input import RunInput
from pydantic import BaseModel, Field, create_model

from models.saisine.intake import CHANNELS, SaisineIntake

ESCALATE = "Passer au niveau 2 : examen en réunion de cellule"
NEW_MEETING = "Nouvelle réunion"
BACK_TO_LEVEL1 = "Revenir au niveau 1 (échanges bilatéraux)"

Channel = Literal["téléphone", "courriel", "courrier", "rencontre"]
assert set(Channel.__args__) == set(CHANNELS)  # type: ignore[attr-defined]


class SaisineIntakeForm(BaseModel):
    """Lancement d'une saisine : identifiants et libellés seulement. La description de la
    situation (initiales, commune, difficulté, consentement) se saisit ensuite dans le
    service, jamais ici : le run attend qu'elle y soit enregistrée."""

    clsm: str = Field(default="poitiers", title="CLSM (identifiant)")
    received_on: date | None = Field(default=None, title="Date de la saisine (vide : aujourd'hui)")
    channel: Channel = Field(default="téléphone", title="Canal")
    referring_structure: str = Field(
        default="",
        max_length=200,
        title="Structure qui saisit la cellule",
        description="Le nom de la structure dans l'annuaire du CLSM.",
    )
    referrer_name: str = Field(default="", max_length=200, title="Personne qui saisit (nom)")
    referrer_email: str = Field(default="", max_length=254, title="Personne qui saisit (e-mail)")
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
            urgent=self.urgent,
        )


class PartnersForm(RunInput):
    partners: list[str] = Field(default_factory=list, title="Structures à consulter")


class OrientationForm(RunInput):
    outcome: str = Field(default="", title="Suite donnée")
    who_acts: str = Field(default="", title="Qui agit (structure(s))")
    detail: str = Field(default="", title="Précisions (texte du bilan annuel, facultatif)")
    follow_up_days: int = Field(
        default=0,
        ge=0,
        le=365,
        title="Suivi auprès de la personne qui a saisi, dans N jours (0 : clore maintenant)",
    )


class MeetingForm(RunInput):
    meeting: str = Field(default=NEW_MEETING, title="Réunion")
    starts_at: datetime | None = Field(
        default=None, title="Date et heure de la nouvelle réunion (heure de Paris)"
    )
    host: str = Field(default="", title="Lieu : membre permanent qui accueille (rotation)")
    invited: list[str] = Field(default_factory=list, title="Membres invités pour cette situation")


class ActionLine(BaseModel):
    text: str = Field(default="", title="Action")
    owner: str = Field(default="", title="Responsable")
    due_on: date | None = Field(default=None, title="Échéance")


class DecisionForm(RunInput):
    meeting_held: bool = Field(default=True, title="La réunion a eu lieu")
    text: str = Field(default="", title="Décision de la cellule")
    actions: list[ActionLine] = Field(default_factory=list, title="Actions décidées")


KEEP = "Maintenir"
CANCEL = "Annuler la réunion"
MOVE = "Déplacer la réunion"


class MeetingWatchForm(RunInput):
    """The wait for the meeting day: tick resumes it with {"reason": "due"}, the service with
    {"reason": "answer"}; the coordinator may cancel or move the meeting from this form."""

    reason: str = Field(default="coordination", title="Motif de la reprise (laisser tel quel)")
    action: Literal["Maintenir", "Annuler la réunion", "Déplacer la réunion"] = Field(
        default="Maintenir", title="Réunion"
    )
    new_starts_at: datetime | None = Field(
        default=None, title="Nouvelle date et heure (heure de Paris), pour un déplacement"
    )
    motive: str = Field(default="", title="Motif de l'annulation ou du déplacement")


def _choice(values: list[str]) -> Any:
    """A Literal of the given values (a select list in the Prefect UI)."""
    return Literal[tuple(values)] if values else str


def _choices(values: list[str]) -> Any:
    """A list of Literals (a multiple select in the Prefect UI)."""
    return list[_choice(values)]  # type: ignore[misc]


def partners_form(choices: list[str]) -> type[PartnersForm]:
    return create_model(
        "ConsultationPartenaires",
        __base__=PartnersForm,
        partners=(
            _choices(choices),
            Field(default_factory=list, title="Structures à consulter (convention valide)"),
        ),
    )


def orientation_form(choices: list[str]) -> type[OrientationForm]:
    """The CLSM's orientation catalogue as a select, then escalation to level 2."""
    return create_model(
        "Orientation",
        __base__=OrientationForm,
        outcome=(
            _choice([*choices, ESCALATE]),
            Field(default=choices[0] if choices else ESCALATE, title="Suite donnée"),
        ),
    )


def meeting_form(meetings: list[str], hosts: list[str], invitable: list[str]) -> type[MeetingForm]:
    return create_model(
        "ReunionDeCellule",
        __base__=MeetingForm,
        meeting=(
            _choice([NEW_MEETING, *meetings, BACK_TO_LEVEL1]),
            Field(default=NEW_MEETING, title="Réunion"),
        ),
        host=(_choice(hosts), Field(default=hosts[0] if hosts else "", title="Lieu (rotation)")),
        invited=(
            _choices(invitable),
            Field(default_factory=list, title="Membres invités pour cette situation"),
        ),
    )


def _list_of(model: type[BaseModel]) -> Any:
    return list[model]  # type: ignore[valid-type]


def decision_form(owners: list[str]) -> type[DecisionForm]:
    line = create_model(
        "Action",
        __base__=ActionLine,
        owner=(_choice(owners), Field(default=owners[0] if owners else "", title="Responsable")),
    )
    return create_model(
        "DecisionDeLaCellule",
        __base__=DecisionForm,
        actions=(_list_of(line), Field(default_factory=list, title="Actions décidées")),
    )


class ActionsWatchForm(RunInput):
    """The wait for the actions: resumed by the owners' links and by tick (reminders)."""

    reason: str = Field(default="coordination", title="Motif de la reprise (laisser tel quel)")
    close: bool = Field(default=False, title="Clore la saisine maintenant")
    close_reason: str = Field(
        default="", title="Motif de clôture (obligatoire si des actions restent ouvertes)"
    )
