"""Generic HTML forms from a step's pydantic model: fields to render, parsing, French errors."""

from __future__ import annotations

import re
import types
from dataclasses import dataclass, field
from datetime import date, datetime
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
    widget: str  # text, textarea, number, decimal, checkbox, date, datetime, email, select, lines
    required: bool
    help: str = ""
    value: Any = ""
    error: str = ""
    max_length: int | None = None
    options: list[tuple[str, str]] = field(default_factory=list)

    @property
    def error_id(self) -> str:
        return f"{self.name}-erreur"

    @property
    def help_id(self) -> str:
        return f"{self.name}-aide"


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


def _max_length(info: FieldInfo) -> int | None:
    for meta in info.metadata:
        if isinstance(meta, annotated_types.MaxLen):
            return int(meta.max_length)
    return None


def _widget(annotation: Any, info: FieldInfo) -> tuple[str, list[tuple[str, str]]]:
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    if isinstance(extra.get("widget"), str):
        return str(extra["widget"]), []
    if get_origin(annotation) is Literal:
        return "select", [(str(v), str(v)) for v in get_args(annotation)]
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        labels = getattr(annotation, "labels", None)
        return "select", [
            (str(m.value), str(labels()[m] if callable(labels) else m.value)) for m in annotation
        ]
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
    length = _max_length(info)
    if length is not None and length > TEXTAREA_FROM:
        return "textarea", []
    return "text", []


def _display(value: Any, widget: str) -> Any:
    """A model value as the input shows it."""
    if value is None:
        return ""
    if widget == "checkbox":
        return bool(value)
    if widget == "lines" and isinstance(value, list | tuple):
        return "\n".join(str(v) for v in value)
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime):
        local = value.astimezone(get_settings().tz) if value.tzinfo else value
        return local.strftime("%Y-%m-%dT%H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return value


def form_fields(
    model: type[BaseModel],
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    *,
    raw: bool = False,
) -> list[FormField]:
    """Fields to draw: `values` are model values (initial) or, with raw, what was typed."""
    values = values or {}
    errors = errors or {}
    fields = []
    for name, info in model.model_fields.items():
        annotation, optional = _unwrap_optional(info.annotation)
        widget, options = _widget(annotation, info)
        if name in values:
            value = values[name] if raw else _display(values[name], widget)
        elif info.is_required():
            value = False if widget == "checkbox" else ""
        else:
            value = _display(info.get_default(call_default_factory=True), widget)
        fields.append(
            FormField(
                name=name,
                label=info.title or name.replace("_", " ").capitalize(),
                widget=widget,
                required=info.is_required() and not optional and widget != "checkbox",
                help=info.description or "",
                value=value,
                error=errors.get(name, ""),
                max_length=_max_length(info),
                options=options,
            )
        )
    return fields


_NAIVE_LOCAL = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$")


def parse_form(
    model: type[BaseModel], data: dict[str, list[str]]
) -> tuple[BaseModel | None, dict[str, Any], dict[str, str]]:
    """Validate posted fields; (answer or None, what was typed, French errors by field).

    Fields not declared by the model are ignored (a link can only answer its own step).
    """
    typed: dict[str, Any] = {}
    candidate: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation, optional = _unwrap_optional(info.annotation)
        widget, _ = _widget(annotation, info)
        given = data.get(name, [])
        if widget == "checkbox":
            typed[name] = candidate[name] = bool(given) and given[-1] not in ("", "0", "false")
            continue
        text = given[-1].strip() if given else ""
        typed[name] = text
        if widget == "lines":
            candidate[name] = [line.strip() for line in text.splitlines() if line.strip()]
            continue
        if text == "":
            if optional:
                candidate[name] = None
            continue  # the default applies, or the field is reported missing
        if widget == "datetime" and _NAIVE_LOCAL.match(text):
            try:
                candidate[name] = datetime.fromisoformat(text).replace(tzinfo=get_settings().tz)
            except ValueError:
                candidate[name] = text
            continue
        candidate[name] = text
    try:
        return model.model_validate(candidate), typed, {}
    except ValidationError as error:
        errors: dict[str, str] = {}
        for item in error.errors():
            location = item.get("loc") or ("__root__",)
            key = str(location[0])
            errors.setdefault(
                key if key in model.model_fields else "__root__", french_message(item)
            )
        return None, typed, errors
