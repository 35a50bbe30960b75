"""Field helpers shared by the coordinator's forms in the Prefect UI (both processes).

What the Prefect UI does with a form's JSON schema, read in its source (the Vue schema form
of prefect/server/ui): a property is labelled "(Optional)" unless its name is in the
schema's `required`; `format: date` is a date picker, `format: date-time` a UTC picker whose
naive values the server refuses ("is not valid under any of the given schemas"); `X | None`
becomes an `anyOf` shown as a choice of types ("Property is type None"); `enum` is a select
and an array of `enum` a multiselect; the values are checked against the schema by the
server (jsonschema), whose messages are in English. Hence forms made of plain types with a
default each, whose domain rules are checked by the flow (French refusals, `flows.waits.ask`),
and these helpers:

- `Form` / `Line`: the base of a form / of a line in a list of a form (e.g. an action);
- `needed(default, title=...)`: a field a person must fill, prefilled, listed as required
  (no "(Optional)"); `optional(default, title=...)`: a field that may stay empty;
- `hidden(default)`: a field of the model the UI does not show (a wake-up's `reason`);
- `choice(values)` / `choices(values)`: a select / a multiselect of the given labels;
- `WallClock`, `at_paris(day, time)`: a time of day as a select (every quarter of an hour,
  08:00–19:45), combined with a date field in the installation's time zone;
- `check_open_day(day, insist=...)`: refuse a weekend or a French public holiday, in French,
  unless the coordinator ticked the `INSIST` box (both from models.core.calendar, which the
  service's forms share).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal

from prefect.input import RunInput
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from models.core.calendar import INSIST as INSIST  # re-exported for the forms
from models.core.calendar import at_local
from models.core.calendar import check_open_day as check_open_day
from models.core.errors import DomainError
from models.core.settings import get_settings

_REQUIRED = "x-clsm-required"
_HIDDEN = "x-clsm-hidden"


def _shown_schema(schema: dict[str, Any]) -> None:
    """The schema the UI reads: needed fields required, hidden ones left out, and no
    description taken from the class's (English, developer's) docstring."""
    properties: dict[str, dict[str, Any]] = schema.get("properties", {})
    required: list[str] = list(schema.get("required", []))
    for name, prop in list(properties.items()):
        if prop.pop(_HIDDEN, False):
            del properties[name]
            if name in required:
                required.remove(name)
            # the model still takes it: the server must let it through
            schema.pop("additionalProperties", None)
        elif prop.pop(_REQUIRED, False) and name not in required:
            required.append(name)
        for shown in (prop, prop.get("items") or {}):
            if "const" in shown:  # a choice of one: still a select
                shown["enum"] = [shown.pop("const")]
    if required:
        schema["required"] = required
    schema.pop("description", None)


class Form(RunInput):
    """Base of a coordinator's form (a RunInput whose schema reads as described above)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_shown_schema)


class Line(BaseModel):
    """Base of one line of a list inside a form (each line a group of fields)."""

    model_config = ConfigDict(json_schema_extra=_shown_schema)


def needed(default: Any = None, *, title: str, description: str | None = None, **kw: Any) -> Any:
    """A field a person must fill: required in the UI (no "(Optional)"), yet prefilled.

    Pass `default_factory=` instead of a default for a list. Its rules (non-empty, in range)
    are checked by the flow, with a French reason."""
    extra: JsonDict = {_REQUIRED: True}
    if "default_factory" in kw:
        return Field(title=title, description=description, json_schema_extra=extra, **kw)
    return Field(default, title=title, description=description, json_schema_extra=extra, **kw)


def optional(default: Any = "", *, title: str, description: str | None = None, **kw: Any) -> Any:
    """A field that may stay empty (a comment, a motive): shown "(Optional)" by the UI."""
    if "default_factory" in kw:
        return Field(title=title, description=description, **kw)
    return Field(default, title=title, description=description, **kw)


def hidden(default: Any) -> Any:
    """A field of the model the UI does not show (set by tick or the service on resume)."""
    return Field(default, json_schema_extra={_HIDDEN: True})


def choice(values: list[str]) -> Any:
    """A Literal of the given labels (a select in the Prefect UI)."""
    return Literal[tuple(values)] if values else str


def choices(values: list[str]) -> Any:
    """A list of Literals of the given labels (a multiselect in the Prefect UI)."""
    return list[choice(values)]  # type: ignore[misc]


TIMES = tuple(f"{hour:02d}:{minute:02d}" for hour in range(8, 20) for minute in (0, 15, 30, 45))
WallClock: Any = Literal[TIMES]
"""A time of day in Paris, as a select: "08:00" to "19:45" every quarter of an hour."""

if TYPE_CHECKING:
    WallClockParameter = str
else:
    WallClockParameter = WallClock
"""`WallClock` as a flow parameter's annotation (a select in the Run form; a str to mypy)."""


def wall_clock(moment: datetime) -> tuple[date, str]:
    """A moment as the (date, time) a form shows, in the installation's time zone; the time
    rounded down to the quarter of an hour so that it is one of `TIMES`."""
    local = moment.astimezone(get_settings().tz)
    shown = f"{local.hour:02d}:{local.minute // 15 * 15:02d}"
    return local.date(), shown if shown in TIMES else "14:00"


def at_paris(day: date, time: str) -> datetime:
    """The moment of `time` ("14:30") on `day`, in the installation's time zone."""
    if time not in TIMES:
        raise DomainError(f"Heure « {time} » : choisissez-la dans la liste.")
    hour, minute = (int(part) for part in time.split(":"))
    return at_local(day, hour, get_settings().tz, minute)
