"""French as it is written: the days of the week; elision before a vowel or a mute h
("de Emma" → "d'Emma")."""

from __future__ import annotations

WEEKDAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
"""Days of the week, Monday first (as `date.weekday()` counts them)."""

VOWELS = "aeiouyàâäéèêëîïôöùûüœæ"
ASPIRATED_H = frozenset(
    {"handicap", "handicaps", "haut", "hauts", "hors", "hasard", "hiérarchie", "hiérarchique"}
)
"""Words whose h is aspirated: no elision before them."""


def elides(word: str) -> bool:
    """Whether "de", "le", "que"... lose their vowel before `word`."""
    text = word.strip()
    first = text[:1].lower()
    if first in VOWELS:
        return True
    if first == "h" and text[1:2].lower() in VOWELS:
        return text.split()[0].lower().strip(".,;:!?") not in ASPIRATED_H
    return False


def de(word: str) -> str:
    """ "de Camille" or "d'Emma" (with the typographic apostrophe of our texts: ')."""
    return f"d'{word.strip()}" if elides(word) else f"de {word.strip()}"
