"""Development only: the mails received by the local SMTP sink, with clickable links."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup, escape

from models.core.errors import NotFound
from models.core.settings import get_settings
from notifications.sink import find_mail, list_mails
from service.deps import page_context, templates
from service.errors import problem_responses

router = APIRouter(prefix="/dev", tags=["développement"])

_URL = re.compile(r"https?://[^\s<>\"']+")


_TRAILING = ".,;:!?»"


def _address_end(url: str) -> int:
    """Where an address found in prose ends: not on the sentence's punctuation, nor on
    the ")" closing the parenthesis it was written in ("(https://…/r/abc)")."""
    end = len(url)
    while end > 0:
        last = url[end - 1]
        if last in _TRAILING or (last == ")" and url[:end].count("(") < url[:end].count(")")):
            end -= 1
        else:
            break
    return end


def linkify(text: str) -> Markup:
    """Escaped text whose http(s) addresses become links."""
    parts: list[str] = []
    last = 0
    for match in _URL.finditer(text):
        end = match.start() + _address_end(match.group(0))
        parts.append(str(escape(text[last : match.start()])))
        url = escape(text[match.start() : end])
        parts.append(f'<a href="{url}">{url}</a>')
        last = end
    parts.append(str(escape(text[last:])))
    return Markup("".join(parts))


@router.get("/mails", response_class=HTMLResponse, summary="Boîte de réception locale")
def mails(request: Request) -> Response:
    """Les courriels reçus par la boîte locale (hors production), les plus récents d'abord."""
    found = list_mails(get_settings().mail_sink_dir)
    return templates.TemplateResponse(
        request, "mails.html", page_context(request, title="Boîte de réception locale", mails=found)
    )


@router.get(
    "/mails/{mail_id}",
    response_class=HTMLResponse,
    summary="Un courriel de la boîte locale",
    responses=problem_responses(404),
)
def mail(request: Request, mail_id: str) -> Response:
    """Le texte du courriel, ses adresses cliquables."""
    found = find_mail(get_settings().mail_sink_dir, mail_id)
    if found is None:
        raise NotFound("Ce courriel n'existe pas dans la boîte locale.")
    text = found.text()
    if not text and found.html():
        text = re.sub(r"<[^>]+>", " ", found.html())
    return templates.TemplateResponse(
        request,
        "mail.html",
        page_context(
            request, title=found.subject or "(sans objet)", mail=found, body=linkify(text)
        ),
    )
