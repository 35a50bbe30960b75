"""Domain errors: each carries a French message fit to show to a person."""

from __future__ import annotations

from enum import StrEnum


class DomainError(Exception):
    """A rule of the domain refused the change; message is French, for people."""

    status_code = 409

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field  # the form field the refusal is about, when there is one


class NotFound(DomainError):
    status_code = 404


class InvalidInput(DomainError):
    """A value a person gave cannot be taken (a date out of range, a move into the past)."""

    status_code = 422


class IllegalTransition(DomainError):
    def __init__(self, case: str, from_: StrEnum, to: StrEnum) -> None:
        super().__init__(f"{case} : passage de « {from_.value} » à « {to.value} » non autorisé")
        self.case = case
        self.from_ = from_
        self.to = to


class StaleUpdate(DomainError):
    """Someone else changed the record since it was read (optimistic locking)."""

    def __init__(self, case: str) -> None:
        super().__init__(
            f"{case} a été modifié entre-temps par quelqu'un d'autre : "
            "rechargez la page et recommencez."
        )
