"""Generic HTML forms from a step's pydantic model: fields to render, parsing, French errors."""

from __future__ import annotations

import dataclasses
import re
import types
from dataclasses import dataclass, field
from datetime import date, datetime, time
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, EmailStr, ValidationError
from pydantic.fields import FieldInfo

from models.core.settings import get_settings

TEXTAREA_FROM = 200  # strings longer than this get a textarea

_ERRORS: dict[str, str] = {
    "missing": "Ce champ est obligatoire.",
    "string_too_short": "Ce texte est trop court (au moins {min_length} caractère(s)).",
    "string_too_long": "Ce texte est trop long (au plus {max_length} caractères).",
    "string_type": "Saisissez un texte.",
    "string_pattern_mismatch": "Le format n'est pas valide.",
    "int_parsing": "Saisissez un nombre entier.",
    "int_type": "Saisissez un nombre entier.",
    "int_from_float": "Saisissez un nombre entier, sans décimales.",
    "float_parsing": "Saisissez un nombre.",
    "float_type": "Saisissez un nombre.",
    "bool_parsing": "Répondez par oui ou par non.",
    "greater_than": "La valeur doit être supérieure à {gt}.",
    "greater_than_equal": "La valeur doit être supérieure ou égale à {ge}.",
    "less_than": "La valeur doit être inférieure à {lt}.",
    "less_than_equal": "La valeur doit être inférieure ou égale à {le}.",
    "date_parsing": "Saisissez une date valide (jj/mm/aaaa).",
    "date_from_datetime_parsing": "Saisissez une date valide (jj/mm/aaaa).",
    "date_type": "Saisissez une date valide.",
    "datetime_parsing": "Saisissez une date et une heure valides.",
    "datetime_from_date_parsing": "Saisissez une date et une heure valides.",
    "datetime_type": "Saisissez une date et une heure valides.",
    "literal_error": "Choisissez une des valeurs proposées.",
    "enum": "Choisissez une des valeurs proposées.",
    "too_short": "Indiquez au moins {min_length} élément(s).",
    "too_long": "Indiquez au plus {max_length} éléments.",
    "list_type": "Indiquez une liste.",
    "value_error": "{reason}",
    "assertion_error": "{reason}",
    "extra_forbidden": "Ce champ n'est pas attendu.",
}


def french_message(error: Any) -> str:
    """One pydantic error in French (validators raising ValueError keep their own text)."""
    kind = str(error.get("type", ""))
    context = dict(error.get("ctx") or {})
    message = str(error.get("msg", ""))
    if kind == "value_error" and "email" in message.lower():
        return "Saisissez une adresse électronique valide (nom@exemple.fr)."
    context["reason"] = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    template = _ERRORS.get(kind)
    if template is None:
        return "La valeur saisie n'est pas valide."
    try:
        return template.format(**context)
    except (KeyError, IndexError):
        return "La valeur saisie n'est pas valide."


@dataclass
class FormField:
    """What the template needs to draw one field."""

    name: str
    label: str
    # text, textarea, number, decimal, checkbox, date, datetime, email, select, radio, lines
    widget: str
    required: bool
    help: str = ""
    value: Any = ""
    error: str = ""
    max_length: int | None = None  # characters of a text (never the items of a list)
    max_items: int | None = None  # lines of a list
    item: str = "text"  # what each line of a list holds: text or date
    options: list[tuple[str, str]] = field(default_factory=list)

    @property
    def error_id(self) -> str:
        return f"{self.name}-erreur"

    @property
    def help_id(self) -> str:
        return f"{self.name}-aide"

    @property
    def anchor(self) -> str:
        """The element an error summary links to (the first button of a radio group)."""
        return f"{self.name}-0" if self.widget == "radio" else self.name

    @property
    def format_hint(self) -> str:
        """How to type the value, in French (dates, lists)."""
        if self.widget == "date":
            return "Format : jj/mm/aaaa, par exemple 05/01/2027."
        if self.widget == "datetime":
            return "Format : jj/mm/aaaa hh:mm, heure de Paris, par exemple 05/01/2027 14:30."
        if self.widget == "lines":
            what = "Une valeur par ligne"
            if self.item == "date":
                what = "Un jour par ligne, au format jj/mm/aaaa"
            return f"{what}, {self.max_items} au plus." if self.max_items else f"{what}."
        return ""


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """The type of a field without `| None` nor Annotated's extras (MailAddress: EmailStr)."""
    optional = False
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(args) != len(get_args(annotation)):
            annotation, optional = args[0], True
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation, optional


def _bound(info: FieldInfo, kind: type[Any]) -> int | None:
    """A length or bound constraint of the field (MaxLen, MinLen, Ge, Le)."""
    for meta in info.metadata:
        if isinstance(meta, kind):
            value = getattr(meta, dataclasses.fields(meta)[0].name)
            return int(value) if isinstance(value, int | float) else None
    return None


def _item_type(annotation: Any) -> Any:
    args = get_args(annotation)
    return _unwrap_optional(args[0])[0] if args else str


def _small_range(annotation: Any, info: FieldInfo) -> list[tuple[str, str]]:
    """A bounded whole number with few values (a rating 1 to 5) is a choice, not a number."""
    low, high = _bound(info, annotated_types.Ge), _bound(info, annotated_types.Le)
    if annotation is not int or low is None or high is None or not 0 < high - low < 10:
        return []
    return [(str(n), str(n)) for n in range(low, high + 1)]


RADIOS_UP_TO = 5  # more choices than this: a select list


def _choices(values: list[str], labels: dict[str, str]) -> list[tuple[str, str]]:
    return [(v, labels.get(v, v or "Aucune")) for v in values]


def _widget(annotation: Any, info: FieldInfo) -> tuple[str, list[tuple[str, str]]]:
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    if isinstance(extra.get("widget"), str):
        return str(extra["widget"]), []
    named_values = extra.get("labels")
    labels = (
        {str(k): str(v) for k, v in named_values.items()} if isinstance(named_values, dict) else {}
    )
    options: list[tuple[str, str]] = []
    if get_origin(annotation) is Literal:
        options = _choices([str(v) for v in get_args(annotation)], labels)
    elif isinstance(annotation, type) and issubclass(annotation, Enum):
        named = getattr(annotation, "labels", None)
        options = [
            (str(m.value), str(named()[m] if callable(named) else m.value)) for m in annotation
        ]
    else:
        options = _small_range(annotation, info)
    if options:
        return ("radio" if len(options) <= RADIOS_UP_TO else "select"), options
    if get_origin(annotation) is list:
        return "lines", []
    if annotation is bool:
        return "checkbox", []
    if annotation is int:
        return "number", []
    if annotation is float:
        return "decimal", []
    if annotation is datetime:
        return "datetime", []
    if annotation is date:
        return "date", []
    if annotation is EmailStr:
        return "email", []
    length = _bound(info, annotated_types.MaxLen)
    if length is not None and length > TEXTAREA_FROM:
        return "textarea", []
    return "text", []


def _widget_of(info: FieldInfo) -> tuple[str, list[tuple[str, str]]]:
    return _widget(_unwrap_optional(info.annotation)[0], info)


def _display_one(value: Any) -> str:
    if isinstance(value, datetime):
        local = value.astimezone(get_settings().tz) if value.tzinfo else value
        return local.strftime("%d/%m/%Y %H:%M")
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def _display(value: Any, widget: str) -> Any:
    """A model value as the input shows it (dates the French way)."""
    if value is None:
        return ""
    if widget == "checkbox":
        return bool(value)
    if widget == "lines" and isinstance(value, list | tuple):
        return "\n".join(_display_one(v) for v in value)
    if widget == "number":
        return value
    return _display_one(value)


def _required(info: FieldInfo, widget: str, options: list[tuple[str, str]], optional: bool) -> bool:
    """A choice must be made (whatever the model's default) unless "" or None is a choice."""
    if optional or widget == "checkbox":
        return False
    if widget in ("radio", "select"):
        return "" not in (v for v, _ in options)
    return info.is_required()


def form_fields(
    model: type[BaseModel],
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    *,
    raw: bool = False,
) -> list[FormField]:
    """Fields to draw: `values` are model values (initial) or, with raw, what was typed.

    No choice is preset from the model's default: a person picks every answer.
    """
    values = values or {}
    errors = errors or {}
    fields = []
    for name, info in model.model_fields.items():
        annotation, optional = _unwrap_optional(info.annotation)
        widget, options = _widget(annotation, info)
        listed = widget == "lines"
        if name in values:
            value = values[name] if raw else _display(values[name], widget)
        elif widget in ("radio", "select"):
            value = None  # nothing chosen yet
        elif info.is_required():
            value = False if widget == "checkbox" else ""
        else:
            value = _display(info.get_default(call_default_factory=True), widget)
        fields.append(
            FormField(
                name=name,
                label=info.title or name.replace("_", " ").capitalize(),
                widget=widget,
                required=_required(info, widget, options, optional),
                help=info.description or "",
                value=value,
                error=errors.get(name, ""),
                max_length=None if listed or options else _bound(info, annotated_types.MaxLen),
                max_items=_bound(info, annotated_types.MaxLen) if listed else None,
                item="date" if listed and _item_type(annotation) is date else "text",
                options=options,
            )
        )
    return fields


# -- parsing what a person typed ----------------------------------------------------------
_FRENCH_DATE = re.compile(r"^(\d{1,2})\s*[/.-]\s*(\d{1,2})\s*[/.-]\s*(\d{4})$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_TIME = re.compile(r"^(\d{1,2})\s*[h:H]\s*(\d{2})?$")
_FRENCH_DATETIME = re.compile(r"^(\S+)\s+(?:à\s+)?(\S+(?:\s*\d{2})?)$")
_NAIVE_LOCAL = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?$")

DATE_ERROR = "Saisissez une date valide (jj/mm/aaaa)."
DATETIME_ERROR = "Saisissez une date et une heure valides (jj/mm/aaaa hh:mm)."
CHOICE_ERROR = "Choisissez une réponse."
EMPTY_ERROR = "Aucune réponse n'a été reçue : remplissez le formulaire puis envoyez-le à nouveau."


def parse_french_date(text: str) -> date:
    """A date typed as jj/mm/aaaa (also j/m/aaaa, jj.mm.aaaa, jj-mm-aaaa) or aaaa-mm-jj."""
    text = text.strip()
    found = _FRENCH_DATE.match(text)
    if found:
        day, month, year = (int(g) for g in found.groups())
    elif found := _ISO_DATE.match(text):
        year, month, day = (int(g) for g in found.groups())
    else:
        raise ValueError(DATE_ERROR)
    try:
        return date(year, month, day)
    except ValueError:
        raise ValueError(DATE_ERROR) from None


def parse_french_datetime(text: str) -> datetime:
    """A moment typed as jj/mm/aaaa hh:mm (or 14h30, or ISO), in the installation's zone."""
    text = " ".join(text.split())
    tz = get_settings().tz
    if _NAIVE_LOCAL.match(text):
        try:
            return datetime.fromisoformat(text).replace(tzinfo=tz)
        except ValueError:
            raise ValueError(DATETIME_ERROR) from None
    found = _FRENCH_DATETIME.match(text)
    clock_time = _TIME.match(found.group(2)) if found else None
    if found is None or clock_time is None:
        raise ValueError(DATETIME_ERROR)
    day = parse_french_date(found.group(1))
    hour, minute = int(clock_time.group(1)), int(clock_time.group(2) or 0)
    try:
        return datetime.combine(day, time(hour, minute), tz)
    except ValueError:
        raise ValueError(DATETIME_ERROR) from None


def _convert(text: str, widget: str) -> Any:
    """One typed value in the form the model validates; ValueError in French."""
    if widget == "date":
        return parse_french_date(text)
    if widget == "datetime":
        return parse_french_datetime(text)
    if widget == "decimal":
        return text.replace(",", ".").replace(" ", "").replace("\u202f", "")
    return text


def _parse_field(name: str, info: FieldInfo, given: list[str]) -> tuple[Any, bool, Any, str | None]:
    """(what was typed, whether to pass a value, the value, a French error)."""
    annotation, optional = _unwrap_optional(info.annotation)
    widget, options = _widget_of(info)
    if widget == "checkbox":
        checked = bool(given) and given[-1] not in ("", "0", "false")
        return checked, True, checked, None
    text = given[-1].strip() if given else ""
    if widget in ("radio", "select"):
        if given and text != "":
            return text, True, text, None
        if _required(info, widget, options, optional):
            return None, False, None, CHOICE_ERROR
        return None, True, None if optional else "", None  # "" is itself an answer
    if widget == "lines":
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if _item_type(annotation) is not date:
            return text, True, lines, None
        days: list[date] = []
        for number, line in enumerate(lines, start=1):
            try:
                days.append(parse_french_date(line))
            except ValueError:
                return (
                    text,
                    False,
                    None,
                    f"Ligne {number} : « {line} » n'est pas une date valide (jj/mm/aaaa).",
                )
        return text, True, days, None
    if text == "":
        return text, optional, None, None  # the default applies, or the field is missing
    try:
        return text, True, _convert(text, widget), None
    except ValueError as error:
        return text, False, None, str(error)


def parse_form(
    model: type[BaseModel], data: dict[str, list[str]]
) -> tuple[BaseModel | None, dict[str, Any], dict[str, str]]:
    """Validate posted fields; (answer or None, what was typed, French errors by field).

    Fields not declared by the model are ignored (a link can only answer its own step).
    A choice must be made (its default never answers for the person), and a POST that
    carries none of the form's fields is refused: nothing is recorded.
    """
    typed: dict[str, Any] = {}
    candidate: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, info in model.model_fields.items():
        typed[name], passed, value, error = _parse_field(name, info, data.get(name, []))
        if error:
            errors[name] = error
        elif passed:
            candidate[name] = value
    fillable = [n for n, f in model.model_fields.items() if _widget_of(f)[0] != "checkbox"]
    if fillable and not any(n in data for n in fillable):
        errors.setdefault("__root__", EMPTY_ERROR)
    try:
        answer = model.model_validate(candidate)
    except ValidationError as error:
        for item in error.errors():
            location = item.get("loc") or ("__root__",)
            key = str(location[0])
            message = french_message(item)
            if key in model.model_fields and len(location) > 1 and isinstance(location[1], int):
                message = f"Ligne {location[1] + 1} : {message}"
            errors.setdefault(key if key in model.model_fields else "__root__", message)
        return None, typed, errors
    return (None if errors else answer), typed, errors
