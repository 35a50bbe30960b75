"""French as people read it, over every mail template (common, immersion, saisine) rendered
with its example: no "de Emma", "le ou", "que il" where French elides (d'Emma, qu'il).

Each template is rendered twice: with its example, and with every capitalised value (names
of people and structures) starting with a vowel, so that "de {{ participant }}" is caught
whatever the example's name.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest

from models.catalogue import MAILS
from models.core.french import ASPIRATED_H, de
from models.immersion.plan import day_reminder_at
from models.immersion.tables import Placement
from notifications.render import render_template, template_names
from tests.mail.test_mail_templates import _sample
from tests.support.immersion import PARIS

VOWEL = "aeiouyàâäéèêëîïôöùûüœæ"
# "le", "la", "de", "que", "ne", "je", "me", "se", "ce", "si il" before a vowel or a mute h
NOT_ELIDED = re.compile(
    rf"(?<![\w'’-])(de|le|la|que|ne|je|me|se|ce|jusque|lorsque|puisque)\s+"
    rf"(?=[{VOWEL}]|h[{VOWEL}])(\w+)"
    rf"|(?<![\w'’-])(si)\s+(?=ils?\b)(\w+)",
    re.IGNORECASE,
)


def _with_vowel_names(value: Any) -> Any:
    if isinstance(value, str) and value[:1].isupper() and value[:1] not in "AEIOUYÉÈÊ":
        return "É" + value[1:]
    if isinstance(value, list):
        return [_with_vowel_names(v) for v in value]
    if isinstance(value, dict):
        return {k: _with_vowel_names(v) for k, v in value.items()}
    return value


def not_elided(text: str) -> list[str]:
    found = []
    for match in NOT_ELIDED.finditer(text):
        word = (match.group(2) or match.group(4) or "").lower()
        if word in ASPIRATED_H:
            continue
        found.append(text[max(0, match.start() - 30) : match.end() + 10].replace("\n", " "))
    return found


def test_the_check_finds_what_it_should() -> None:
    assert len(not_elided("L'accueil de Emma Blanc, que il faut")) == 2
    assert len(not_elided("le ou la stagiaire")) == 1
    assert not_elided("d'Emma, qu'il, le handicap, la hiérarchie, de 1 à 5, l'hôpital") == []


def test_de_elides_before_a_vowel_or_a_mute_h() -> None:
    assert [de("Emma Blanc"), de("Camille"), de("Hélène"), de("CHL"), de("UDAF")] == [
        "d'Emma Blanc",
        "de Camille",
        "d'Hélène",
        "de CHL",
        "d'UDAF",
    ]


@pytest.mark.parametrize("name", template_names())
def test_every_template_elides_as_french_does(name: str) -> None:
    sample = _sample(name)
    keep = {k: sample[k] for k in ("clsm_name", "base_url", "link_url") if k in sample}
    problems = []
    for context in (sample, {**_with_vowel_names(sample), **keep}):
        mail = render_template(name, context)
        problems += not_elided(f"{mail.subject}\n{mail.text}")
    assert not problems, f"{name}: {problems}"


def test_every_typed_mail_is_checked() -> None:
    assert set(MAILS) <= set(template_names())


def test_the_day_reminder_goes_the_business_day_before_and_names_the_first_day() -> None:
    monday = Placement(
        session_id=1,
        application_id=1,
        host_organisation_id=1,
        host_contact_id=1,
        days=["2027-01-11", "2027-01-12"],
    )
    assert day_reminder_at(monday) == datetime(2027, 1, 8, 9, tzinfo=PARIS)  # the Friday
    mail = render_template(
        "immersion_day_reminder",
        {**_sample("immersion_day_reminder"), "days": "11/01/2027, 12/01/2027"},
    )
    assert "commence le 11/01/2027" in mail.subject and "deux jours" not in mail.text
