"""Small builders for test data; each returns what it created, flushed (ids set)."""

from __future__ import annotations

from datetime import date
from itertools import count

from sqlmodel import Session

from models.core.enums import Role
from models.core.people import Clsm, Contact, Organisation, Partnership, User

_numbers = count(1)


def clsm(session: Session, slug: str | None = None, name: str = "CLSM de Poitiers") -> Clsm:
    n = next(_numbers)
    row = Clsm(
        slug=slug or f"clsm-{n}",
        name=name,
        coordinator_name="Coordination",
        coordinator_email=f"coordination{n}@clsm.example",
    )
    session.add(row)
    session.flush()
    return row


def organisation(
    session: Session,
    owner: Clsm,
    name: str | None = None,
    *,
    permanent: bool = False,
    convention: tuple[date, date] | None = None,
) -> Organisation:
    assert owner.id is not None
    n = next(_numbers)
    row = Organisation(
        clsm_id=owner.id,
        name=name or f"Structure {n}",
        short_name=(name or f"S{n}")[:20],
        permanent_member=permanent,
    )
    session.add(row)
    session.flush()
    if convention is not None:
        assert row.id is not None
        session.add(
            Partnership(
                clsm_id=owner.id,
                organisation_id=row.id,
                starts_on=convention[0],
                ends_on=convention[1],
            )
        )
        session.flush()
    return row


def contact(
    session: Session, org: Organisation, name: str | None = None, email: str | None = None
) -> Contact:
    assert org.id is not None
    n = next(_numbers)
    row = Contact(
        organisation_id=org.id,
        name=name or f"Personne {n}",
        email=email or f"personne{n}@partenaire.example",
        function="Référent",
    )
    session.add(row)
    session.flush()
    return row


def user(
    session: Session,
    owner: Clsm | None,
    role: Role = Role.COORDINATOR,
    password: str = "mot-de-passe-de-test",
) -> User:
    from service.security import hash_password

    n = next(_numbers)
    row = User(
        email=f"user{n}@clsm.example",
        name=f"Utilisateur {n}",
        role=role,
        clsm_id=owner.id if owner else None,
        password_hash=hash_password(password),
    )
    session.add(row)
    session.flush()
    return row
