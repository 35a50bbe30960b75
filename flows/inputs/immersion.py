"""Forms the coordinator fills in the Prefect UI (Resume dialog of a suspended run).

Every field has a French title and a default; `flows.waits.ask` prefills them (keeping the
titles) and shows the decision's markdown description above the form. Choices are the
applications of the case at hand, shown by their label ("n° 3 — Emma Blanc (CCAS)"): the
Prefect UI draws a list whose items are an `enum` as a multiselect, which keeps the order in
which the options are picked (the waiting list's order). The labels are offered through the
JSON schema only (`with_choices`), so an answer given before a replay still validates.

Every field a person must answer is `needed` (flows.inputs.fields): listed as required, so the
Prefect UI does not label it "(Optional)"; an empty list is still a valid answer where the
rules allow it. A text that may stay empty (a comment, a motive) is `optional`: the UI drops
a text field once emptied, and would refuse a required one in English ("'comment' is a
required property").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, get_args

from prefect.input import RunInput
from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.config import JsonDict
from pydantic.fields import FieldInfo

from flows.inputs.fields import Form, Line, needed, optional

F = TypeVar("F", bound=RunInput)


def fr(title: str) -> Any:
    """A flow parameter's French label in the Prefect UI's Run form (which would show its
    Python name): `capacity: Annotated[int, fr("Nombre de places")] = 16`."""
    return Field(json_schema_extra={"title": title})


class PairLine(Line):
    """One binôme of the selection form: two applications, by their labels."""

    model_config = ConfigDict(title="Binôme")

    first: str = needed("", title="Personne")
    second: str = needed("", title="En binôme avec")


class SelectionForm(Form):
    """Approve or edit the proposed selection of an immersion session."""

    kept: list[str] = needed(
        default_factory=list,
        title="Candidatures retenues",
        description="Proposition de la sélection : retirez ou ajoutez des candidatures "
        "(pas plus que le nombre de places).",
    )
    waitlist: list[str] = needed(
        default_factory=list,
        title="Liste d'attente, dans l'ordre",
        description="Dans l'ordre où vous les choisissez : la première sera la première "
        "appelée en cas de désistement. Les candidatures ni retenues ni en liste d'attente "
        "ne sont pas retenues.",
    )
    pairs: list[PairLine] = needed(
        default_factory=list,
        title="Binômes",
        description="Deux personnes retenues, de structures différentes, accueillies chacune "
        "par la structure de l'autre. Proposés d'après les vœux croisés : retirez, modifiez "
        "ou ajoutez des binômes ; seuls ceux-ci seront formés.",
    )
    comment: str = optional("", title="Commentaire (facultatif)")


class PlacementLine(Line):
    """One placement of the review form: a participant and the structure hosting them."""

    model_config = ConfigDict(title="Accueil")

    participant: str = needed("", title="Personne")
    host: str = needed("", title="Structure d'accueil")


class PlacementReviewForm(Form):
    """Keep or change the proposed host of every kept participant, before the requests."""

    placements: list[PlacementLine] = needed(
        default_factory=list,
        title="Accueils",
        description="Une ligne par personne retenue, avec la structure d'accueil proposée : "
        "changez-la si besoin (jamais la structure de la personne, dans la limite des places "
        "libres). Les demandes d'accueil partent à la validation.",
    )
    comment: str = optional("", title="Commentaire (facultatif)")


class AttendanceForm(Form):
    """Who came to the restitution."""

    present: list[str] = needed(
        default_factory=list,
        title="Participants présents",
        description="Tous sont proposés : retirez les absents.",
    )


class PreparationAttendanceForm(AttendanceForm):
    """Who came to the preparation day, and who the coordination withdraws from the session."""

    withdrawn: list[str] = needed(
        default_factory=list,
        title="Participants à retirer de la session (facultatif)",
        description="Retrait décidé par la coordination : la place est proposée à la liste "
        "d'attente, la structure d'accueil est prévenue.",
    )
    withdraw_reason: str = optional(
        "",
        title="Motif du retrait (si vous retirez quelqu'un)",
        description="Enregistré dans l'historique de la session.",
    )


def with_choices(
    form: type[F], choices: Mapping[str, Sequence[str] | Mapping[str, Sequence[str]]]
) -> type[F]:
    """The form whose list fields named in `choices` offer these labels: a multiselect for a
    list of texts, a select for each field of a list of lines (`PairLine`), or for the
    fields named in a mapping (`{"participant": [...], "host": [...]}`)."""
    fields: dict[str, Any] = {}
    for name, options in choices.items():
        original = form.model_fields[name]
        kept = original.json_schema_extra if isinstance(original.json_schema_extra, dict) else {}
        (item,) = get_args(original.annotation) or (str,)
        items: dict[str, Any] = {"type": "string", "enum": list(options)}
        if isinstance(item, type) and issubclass(item, BaseModel):
            items = item.model_json_schema()
            for prop, shown in items["properties"].items():
                offered = options.get(prop) if isinstance(options, Mapping) else options
                if offered is not None:
                    shown["enum"] = list(offered)
                shown.pop("default", None)  # a new line starts empty: the person chooses
        extra: JsonDict = {**kept, "items": items}
        fields[name] = (
            original.annotation,
            FieldInfo.merge_field_infos(original, json_schema_extra=extra),
        )
    model: type[F] = create_model(form.__name__, __base__=form, **fields)
    return model
