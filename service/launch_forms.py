"""The Prefect UI's launch forms, fitted to the account's CLSM by the gateway.

A deployment's parameter schema is written once, when the deployment is made, for every
CLSM. The gateway rewrites it on its way to a coordinator: the CLSM is their own (a select
of one), and the structures to invite are a multiple select of their CLSM's active
structures, so nobody types a structure's name in a launch form. (The structure that
refers a saisine stays free text: it may be outside the network, and its name is matched
against the directory with near matches proposed.)
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from models.core import db
from models.core.people import Clsm, Organisation, User

CLSM_FIELDS = ("clsm", "clsm_slug")
STRUCTURE_LIST_FIELDS = ("structures",)


def network_of(user: User) -> tuple[str, list[str]] | None:
    """The slug of the account's CLSM and the names of its active structures."""
    if user.clsm_id is None:
        return None
    with Session(db.get_engine()) as session:
        clsm = session.get(Clsm, user.clsm_id)
        if clsm is None:
            return None
        names = session.exec(
            select(Organisation.name)
            .where(Organisation.clsm_id == clsm.id, col(Organisation.active).is_(True))
            .order_by(col(Organisation.name))
        ).all()
    return clsm.slug, list(names)


def fit_schema(schema: Any, slug: str, structures: list[str]) -> None:
    """Rewrite a parameter schema in place (every nested model included)."""
    if isinstance(schema, list):
        for item in schema:
            fit_schema(item, slug, structures)
        return
    if not isinstance(schema, dict):
        return
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for name, field in properties.items():
            if not isinstance(field, dict):
                continue
            if name in CLSM_FIELDS and field.get("type") == "string":
                field.update(enum=[slug], default=slug)
            elif name in STRUCTURE_LIST_FIELDS and field.get("type") == "array" and structures:
                field["items"] = {"type": "string", "enum": structures}
                field["description"] = "Choisissez les structures à inviter dans la liste."
    for value in schema.values():
        if isinstance(value, dict | list):
            fit_schema(value, slug, structures)


def fit_deployments(payload: Any, network: tuple[str, list[str]]) -> Any:
    """A deployment, a list of them, or a page of them, with their launch forms fitted."""
    slug, structures = network
    found = payload.get("results") if isinstance(payload, dict) else None
    deployments = found if isinstance(found, list) else payload
    for deployment in deployments if isinstance(deployments, list) else [deployments]:
        if isinstance(deployment, dict):
            fit_schema(deployment.get("parameter_openapi_schema"), slug, structures)
    return payload
