"""Rendering: one Jinja2 source per message gives the subject, the HTML and the text part.

A message template `<name>.html.j2` extends `_layout.html.j2` and fills two blocks:
`subject` and `body`. The HTML part is the rendered page with its CSS inlined (mail
clients drop <style>); the plain-text part is derived from the same rendered HTML.

Template variables (see `template_context`): everything in the outbox row's context, plus
`clsm_name`, `recipient_name`, `base_url`, `link_url` (when the context has `link_id`),
`link_urls` (when it has `links`: {name: link_id}) and `calendar` (the CalendarPart as a
dict, when the row has one). Filters: `date_fr`, `datetime_fr`, `time_fr`; global
`url(path)` for absolute addresses on the service. Every link must be absolute.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import css_inline
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlmodel import Session

from models.core.french import WEEKDAYS, de
from models.core.links import StepLink, link_url
from models.core.outbox import CalendarPart, OutboxMessage, resolve_clsm
from models.core.people import Clsm
from models.core.settings import get_settings

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
# common/ holds the layout and the generic mails; each process has its own folder
TEMPLATE_FOLDERS = ("common", "immersion", "saisine")
SUFFIX = ".html.j2"

MONTHS = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
]


class RenderError(Exception):
    """A message cannot be rendered (unknown link, relative link, missing CLSM)."""


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str
    calendar_ics: str | None = None


def _moment(value: str | datetime | date) -> datetime | date:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise RenderError(f"date sans fuseau horaire : {value.isoformat()}")
        return value.astimezone(get_settings().tz)
    return value


def date_fr(value: str | datetime | date) -> str:
    """'mardi 12 novembre 2024' (local time zone for datetimes)."""
    day = _moment(value)
    first = "1er" if day.day == 1 else str(day.day)
    return f"{WEEKDAYS[day.weekday()]} {first} {MONTHS[day.month - 1]} {day.year}"


def time_fr(value: str | datetime) -> str:
    """'9 h 30', '14 h' (local time zone)."""
    moment = _moment(value)
    assert isinstance(moment, datetime)
    return f"{moment.hour} h {moment.minute:02d}" if moment.minute else f"{moment.hour} h"


def datetime_fr(value: str | datetime) -> str:
    """'mardi 12 novembre 2024 à 9 h 30'."""
    return f"{date_fr(value)} à {time_fr(value)}"


def absolute_url(path: str) -> str:
    return f"{get_settings().base_url}/{path.lstrip('/')}"


@lru_cache(maxsize=1)
def _inliner() -> css_inline.CSSInliner:
    return css_inline.CSSInliner(load_remote_stylesheets=False)


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader([TEMPLATES_DIR / folder for folder in TEMPLATE_FOLDERS]),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(date_fr=date_fr, datetime_fr=datetime_fr, time_fr=time_fr, de=de)
    env.globals["url"] = absolute_url
    return env


def template_names() -> list[str]:
    """Every message template (layouts and partials start with an underscore)."""
    return sorted(
        p.name.removesuffix(SUFFIX)
        for folder in TEMPLATE_FOLDERS
        for p in (TEMPLATES_DIR / folder).glob(f"*{SUFFIX}")
        if not p.name.startswith("_")
    )


def template_file(name: str, suffix: str = SUFFIX) -> Path:
    """Where the file of a template (or of its sample) lies."""
    for folder in TEMPLATE_FOLDERS:
        path = TEMPLATES_DIR / folder / f"{name}{suffix}"
        if path.exists():
            return path
    raise FileNotFoundError(f"{name}{suffix}")


class _TextConverter(HTMLParser):
    """Plain text from our mail HTML: paragraphs, line breaks, lists, headings, links."""

    BLOCKS = frozenset(
        {"p", "div", "header", "footer", "main", "section", "table", "tr", "ul", "ol", "dl"}
    )
    SKIP = frozenset({"head", "style", "script", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.links: list[str] = []
        self._skip = 0
        self._lists: list[list[int]] = []  # per open list: [counter] (-1 for bullets)
        self._href: list[tuple[str, int]] = []
        self._heading: tuple[str, int] | None = None

    def _newlines(self, count: int) -> None:
        text = "".join(self.out)
        existing = len(text) - len(text.rstrip("\n"))
        if text.strip() and existing < count:
            self.out.append("\n" * (count - existing))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skip += 1
        elif tag == "br":
            self.out.append("\n")
        elif tag in {"ul", "ol"}:
            self._newlines(2 if not self._lists else 1)
            self._lists.append([0 if tag == "ol" else -1])
        elif tag == "li":
            self._newlines(1)
            counter = self._lists[-1] if self._lists else [-1]
            if counter[0] >= 0:
                counter[0] += 1
            indent = "  " * max(len(self._lists) - 1, 0)
            self.out.append(f"{indent}{counter[0]}. " if counter[0] >= 0 else f"{indent}- ")
        elif tag in {"h1", "h2", "h3", "h4"}:
            self._newlines(2)
            self._heading = (tag, len(self.out))
        elif tag == "dt":
            self._newlines(1)
        elif tag == "dd":
            self.out.append(" : ")
        elif tag in {"td", "th"}:
            self.out.append("  ")
        elif tag == "a":
            href = dict(attrs).get("href") or ""
            self.links.append(href)
            self._href.append((href, len(self.out)))
        elif tag in self.BLOCKS:
            self._newlines(2 if tag in {"p", "table"} else 1)
        self.links.extend(value for name, value in attrs if name == "src" and value)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skip = max(self._skip - 1, 0)
        elif tag in {"ul", "ol"} and self._lists:
            self._lists.pop()
            self._newlines(2 if not self._lists else 1)
        elif tag in {"h1", "h2", "h3", "h4"} and self._heading:
            title = "".join(self.out[self._heading[1] :]).strip()
            underline = "=" if self._heading[0] == "h1" else "-"
            self.out.append("\n" + underline * len(title))
            self._heading = None
            self._newlines(2)
        elif tag == "a" and self._href:
            href, start = self._href.pop()
            label = "".join(self.out[start:]).strip()
            if href and href != label and not href.startswith("mailto:"):
                self.out.append(f" ({href})")
        elif tag in self.BLOCKS:
            self._newlines(2 if tag in {"p", "table"} else 1)

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        text = re.sub(r"\s+", " ", data)
        at_line_start = not self.out or "".join(self.out[-1:]).endswith(("\n", "- ", ". "))
        if at_line_start:
            text = text.lstrip()
        self.out.append(text)

    def text(self) -> str:
        lines = [line.rstrip() for line in "".join(self.out).split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def html_to_text(document: str) -> tuple[str, list[str]]:
    """The plain-text version of an HTML mail, and every address it links to."""
    converter = _TextConverter()
    converter.feed(document)
    converter.close()
    return converter.text(), converter.links


def render_template(name: str, context: Mapping[str, Any]) -> RenderedMail:
    """Render one message template with its full context (as a sample file gives it).

    Raises jinja2's UndefinedError for a missing variable and RenderError for a relative link.
    """
    template = environment().get_template(f"{name}{SUFFIX}")
    if "subject" not in template.blocks:
        raise RenderError(f"le modèle {name} n'a pas de bloc subject")
    variables = dict(context)
    subject_html = "".join(template.blocks["subject"](template.new_context(variables)))
    subject = re.sub(r"\s+", " ", html.unescape(subject_html)).strip()
    page = template.render(variables)
    text, links = html_to_text(page)
    relative = [link for link in links if not link.startswith(("http://", "https://", "mailto:"))]
    if relative:
        raise RenderError(f"lien non absolu dans le modèle {name} : {relative[0]!r}")
    return RenderedMail(subject=subject, text=text, html=_inliner().inline(page))


def template_context(
    *, session: Session, message: OutboxMessage, clsm: Clsm | None = None
) -> dict[str, Any]:
    """The full context of an outbox row: its context plus CLSM name, URLs, calendar.

    `clsm` is the row's CLSM when the caller already has it (`resolve_clsm`).
    """
    context: dict[str, Any] = {"case_label": message.case_label, **message.context}
    if clsm is None:
        clsm = resolve_clsm(session=session, clsm_id=message.clsm_id)
    if clsm is None:
        raise RenderError(f"CLSM introuvable pour le message {message.id}")
    context.update(
        clsm_name=clsm.name,
        coordinator_name=clsm.coordinator_name,
        coordinator_email=clsm.coordinator_email,
        recipient_name=message.recipient_name,
        base_url=get_settings().base_url,
    )
    if "link_id" in context:
        context["link_url"] = _link_url(session, context["link_id"])
    if "links" in context:
        context["link_urls"] = {k: _link_url(session, v) for k, v in context["links"].items()}
    if message.calendar is not None:
        context["calendar"] = message.calendar
    return context


def _link_url(session: Session, link_id: int) -> str:
    link = session.get(StepLink, link_id)
    if link is None:
        raise RenderError(f"lien {link_id} introuvable")
    return link_url(link)


def render_message(
    *, session: Session, message: OutboxMessage, clsm: Clsm | None = None
) -> RenderedMail:
    """Subject, text, HTML and (for meetings) the iCalendar text of one outbox row."""
    from notifications.ics import build_calendar

    context = template_context(session=session, message=message, clsm=clsm)
    rendered = render_template(message.template, context)
    if message.calendar is None:
        return rendered
    ics = build_calendar(
        CalendarPart.from_dict(message.calendar),
        organizer_name=context["coordinator_name"] or context["clsm_name"],
        organizer_email=context["coordinator_email"] or get_settings().mail_from,
        attendee_name=message.recipient_name,
        attendee_email=message.recipient_email,
        stamp=message.created_at,
    )
    return RenderedMail(rendered.subject, rendered.text, rendered.html, ics)
