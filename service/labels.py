"""What people read instead of identifiers: history details, mails waiting, numbers, durations.

Keys and values of audit payloads stay as recorded (the JSON and CSV exports give them as
is, for tools); pages show them through these tables, in French.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

from models.core.settings import get_settings

# -- audit payloads --------------------------------------------------------------------------
KEY_LABELS: dict[str, str] = {
    "entity": "élément",
    "id": "numéro",
    "from": "statut précédent",
    "to": "nouveau statut",
    "reason": "motif",
    "number": "n° de candidature",
    "link_id": "n° du lien",
    "old_link_id": "n° de l'ancien lien",
    "step": "étape",
    "contact_id": "n° du contact",
    "owner_contact_id": "n° du ou de la responsable",
    "tutor_contact_id": "n° du tuteur ou de la tutrice",
    "referrer_contact_id": "n° de la personne à l'origine de la saisine",
    "organisation_id": "n° de la structure",
    "host_id": "n° de la structure d'accueil",
    "placement_id": "n° du stage",
    "application_id": "n° de la candidature",
    "consultation_id": "n° de la consultation",
    "meeting_id": "n° de la réunion",
    "decision_id": "n° de la décision",
    "orientation_id": "n° de l'orientation",
    "follow_up_id": "n° du suivi",
    "session_id": "n° de la session",
    "flow_run_id": "run Prefect",
    "round": "tour de consultation",
    "level1": "niveau 1",
    "level2": "niveau 2",
    "knows_situation": "connaît la situation",
    "proposal": "proposition",
    "worked": "l'orientation a fonctionné",
    "next_step": "suite souhaitée",
    "comment": "commentaire",
    "note": "note",
    "attending": "présence",
    "invitations": "invitations",
    "places": "places",
    "capacity": "capacité d'accueil",
    "days": "jours",
    "day": "jour",
    "wishes": "structures souhaitées",
    "availability": "disponibilités",
    "motivation": "motivation",
    "may_observe": "peut observer",
    "may_not_observe": "ne peut pas observer",
    "party": "signataire",
    "kind": "type",
    "detail": "précision",
    "who_acts": "qui agit",
    "follow_up_on": "suivi prévu le",
    "starts_at": "début",
    "end": "fin",
    "start": "début",
    "place": "lieu",
    "host": "structure d'accueil",
    "home": "structure d'origine",
    "invited": "membres invités",
    "text": "texte",
    "actions": "actions",
    "due": "échéance",
    "due_on": "échéance",
    "deadline": "date limite",
    "cutoff": "date limite de retrait",
    "closes_at": "clôture",
    "rank": "rang",
    "reference": "référence",
    "title": "titre",
    "label": "libellé",
    "channel": "canal",
    "urgent": "urgence",
    "kept": "retenues",
    "waitlist": "liste d'attente",
    "pairs": "binômes",
    "waitlisted": "en liste d'attente",
    "selected": "retenues",
    "not_selected": "non retenues",
    "withdrawn": "retirées",
    "offered": "places proposées",
    "promoted": "promues",
    "rating": "note",
    "useful": "ce qui a été utile",
    "improve": "à améliorer",
    "missions": "missions observées",
    "practices": "pratiques observées",
    "limits": "limites et leviers",
    "agree": "convention lue et signée",
    "confidentiality": "engagement de confidentialité",
    "template": "message",
    "to_email": "destinataire",
    "recipient": "destinataire",
    "message_id": "identifiant du message",
    "sequence": "version de l'invitation",
    "events_erased": "événements effacés",
    "contacts_erased": "contacts effacés",
    "plan_id": "n° du plan",
    "reminder_number": "n° de la relance",
    "meeting": "réunion",
    "present": "présents",
    "tutor": "tuteur ou tutrice",
    "participant": "stagiaire",
    "manager": "responsable",
}

# Statuses as recorded (`status.changed`), read with the entity they belong to.
STATUS_WORDS: dict[str, str] = {
    "draft": "brouillon",
    "call_open": "appel à candidatures ouvert",
    "selection": "sélection des candidatures",
    "placement": "attribution des structures d'accueil",
    "agreements": "signature des conventions",
    "preparation": "journée de préparation",
    "immersion": "immersions en cours",
    "evaluation": "évaluations",
    "restitution": "restitution",
    "report": "bilan",
    "submitted": "déposée",
    "selected": "retenue",
    "waitlisted": "en liste d'attente",
    "offered": "place proposée",
    "not_selected": "non retenue",
    "withdrawn": "retirée",
    "completed": "terminée",
    "proposed": "proposé",
    "confirmed": "confirmé",
    "signed": "signée",
    "done": "réalisée",
    "cancelled": "annulée",
    "pending": "en attente de signature",
    "received": "reçue",
    "urgent_closed": "close (situation d'urgence)",
    "level1": "niveau 1 : échanges bilatéraux",
    "oriented": "orientée",
    "follow_up": "suivi de l'orientation",
    "level2": "niveau 2 : réunion de cellule",
    "decided": "décision prise",
    "closed": "close",
    "asked": "avis demandé",
    "answered": "réponse reçue",
    "escalated": "sans réponse, signalée à la coordination",
    "planned": "prévue",
    "held": "tenue",
    "open": "en cours",
    "dropped": "abandonnée",
}
# A "stage" (placement) is masculine; a session is "clôturée".
STATUS_BY_ENTITY: dict[tuple[str, str], str] = {
    ("stage", "signed"): "signé",
    ("stage", "done"): "réalisé",
    ("stage", "cancelled"): "annulé",
    ("session", "closed"): "clôturée",
}

_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def key_label(key: str) -> str:
    return KEY_LABELS.get(key, key.replace("_", " "))


def status_label(value: str, entity: str = "") -> str:
    return STATUS_BY_ENTITY.get((entity, value), STATUS_WORDS.get(value, value))


def value_label(value: Any) -> str:
    """A recorded value as a person reads it: oui/non, dates jj/mm/aaaa, lists, decimals."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, float):
        return french_decimal(value)
    if isinstance(value, list | tuple):
        return ", ".join(value_label(v) for v in value) or "—"
    if isinstance(value, dict):
        return " ; ".join(f"{key_label(str(k))} : {value_label(v)}" for k, v in value.items())
    text = str(value)
    if _ISO_DAY.match(text):
        return date.fromisoformat(text).strftime("%d/%m/%Y")
    if _ISO_MOMENT.match(text):
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return text
        if moment.tzinfo is not None:
            moment = moment.astimezone(get_settings().tz)
        return moment.strftime("%d/%m/%Y %H:%M")
    return text if text else "—"


def payload_details(payload: dict[str, Any]) -> list[tuple[str, str]]:
    """An audit payload as (French label, French value) pairs."""
    entity = str(payload.get("entity", ""))
    details = []
    for key, value in payload.items():
        if key in ("from", "to") and isinstance(value, str):
            details.append((key_label(key), status_label(value, entity)))
        else:
            details.append((key_label(key), value_label(value)))
    return details


# -- mails -----------------------------------------------------------------------------------
MAIL_LABELS: dict[str, str] = {
    "delivery_failed": "alerte : un courriel n'a pas pu être remis",
    "escalation": "alerte : une réponse attendue manque",
    "link_renewed": "nouveau lien personnel",
    "meeting_cancelled": "annulation d'une réunion",
    "meeting_invitation": "invitation à une réunion",
    "reminder": "relance d'une réponse attendue",
    "immersion_agreement": "convention de stage à signer",
    "immersion_alert": "alerte à la coordination",
    "immersion_application_received": "accusé de réception de candidature",
    "immersion_call": "appel à candidatures",
    "immersion_call_reminder": "rappel de l'appel à candidatures",
    "immersion_day_reminder": "rappel de la veille d'une journée d'immersion",
    "immersion_days": "jours d'immersion (invitation d'agenda)",
    "immersion_days_cancelled": "annulation des jours d'immersion",
    "immersion_evaluation": "grille d'observation et évaluation à remplir",
    "immersion_host_evaluation": "évaluation de l'accueil à remplir",
    "immersion_host_request": "demande de confirmation d'accueil",
    "immersion_meeting_moved": "réunion déplacée",
    "immersion_not_selected": "candidature non retenue",
    "immersion_offer": "place proposée (liste d'attente)",
    "immersion_placement_cancelled": "accueil annulé",
    "immersion_preparation": "invitation à la journée de préparation",
    "immersion_restitution": "invitation à la restitution",
    "immersion_selected": "candidature retenue",
    "immersion_session_cancelled": "session annulée",
    "immersion_waitlisted": "candidature en liste d'attente",
    "immersion_withdrawal": "retrait d'une candidature",
    "saisine_action": "action décidée à réaliser",
    "saisine_consultation": "demande d'avis sur une situation",
    "saisine_convocation": "convocation à la réunion de cellule",
    "saisine_coordinator_alert": "alerte : partenaires sans réponse",
    "saisine_follow_up": "suivi de l'orientation",
    "saisine_meeting_cancelled": "annulation de la réunion de cellule",
    "saisine_outcome": "suite donnée à la saisine",
    "saisine_urgent": "saisine urgente : orientation vers les urgences",
}


def mail_label(template: str) -> str:
    return MAIL_LABELS.get(template, template.replace("_", " "))


# -- numbers and durations -------------------------------------------------------------------
def french_decimal(value: float, digits: int = 1) -> str:
    """4.25 → "4,3" (one decimal, French comma)."""
    return f"{value:.{digits}f}".replace(".", ",")


def rating(value: float | None) -> str:
    """An average out of five, French style: "4,3 / 5"."""
    return "—" if value is None else f"{french_decimal(value)} / 5"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count > 1 else ''}"


def french_duration(delta: timedelta) -> str:
    """45 days → "45 jours"; 1 day 3 h 20 min → "1 jour 3 h 20 min"; nothing → "aucun"."""
    seconds = int(abs(delta.total_seconds()))
    if seconds == 0:
        return "aucun"
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    parts = [_plural(days, "jour")] if days else []
    if hours:
        parts.append(f"{hours} h")
    if minutes:
        parts.append(f"{minutes} min")
    text = " ".join(parts) or "moins d'une minute"
    return f"{text} en arrière" if delta < timedelta(0) else text
