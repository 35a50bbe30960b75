"""Mail templates: every template renders with its sample, strictly, escaped, links absolute."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from jinja2 import UndefinedError, meta

from models.catalogue import MAILS
from notifications import render
from notifications.render import (
    TEMPLATES_DIR,
    RenderError,
    html_to_text,
    render_template,
    template_file,
    template_names,
)


def _sample(name: str) -> dict[str, Any]:
    """The example of the template's typed context (or, until converted, its sample file)."""
    if name in MAILS:
        return MAILS[name].example_context()
    data = json.loads(template_file(name, ".sample.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_the_generic_templates_are_discovered() -> None:
    names = template_names()
    assert {"reminder", "escalation", "delivery_failed", "meeting_invitation"} <= set(names)
    assert not any(name.startswith("_") for name in names)


def test_every_typed_mail_has_its_template() -> None:
    assert set(MAILS) <= set(template_names())


@pytest.mark.parametrize("name", template_names())
def test_every_template_renders_with_its_sample(name: str) -> None:
    typed = name in MAILS
    assert typed != any(render.TEMPLATES_DIR.glob(f"*/{name}.sample.json")), (
        f"{name}.html.j2 needs one context: a typed mail (models) or, until then, a sample file"
    )
    mail = render_template(name, _sample(name))
    assert mail.subject and "\n" not in mail.subject
    assert "{{" not in mail.subject + mail.text + mail.html
    assert _sample(name)["clsm_name"] in mail.text  # the shared layout
    assert mail.html.startswith("<!DOCTYPE html>") and "<style" not in mail.html
    assert mail.text.strip()


@pytest.mark.parametrize("name", template_names())
def test_every_variable_of_the_sample_is_required(name: str) -> None:
    """StrictUndefined: dropping a variable the template uses fails the render."""
    sample = _sample(name)
    required = [key for key in sample if _uses(name, key)]
    assert required, "a sample gives at least the variables its template uses"
    for key in required:
        partial = {k: v for k, v in sample.items() if k != key}
        with pytest.raises(UndefinedError):
            render_template(name, partial)


def _uses(name: str, key: str) -> bool:
    """The template (or the layout) reads key, not marked optional (`is defined`, `default`)."""
    env = render.environment()
    used: set[str] = set()
    for source_name in (f"{name}.html.j2", "_layout.html.j2"):
        assert env.loader is not None
        source = env.loader.get_source(env, source_name)[0]
        optional = rf"\b{re.escape(key)}\s*(is defined|\|\s*default\b)"
        if re.search(optional, source):
            return False
        used |= meta.find_undeclared_variables(env.parse(source))
    return key in used


def test_html_in_a_name_is_escaped_in_both_parts() -> None:
    sample = _sample("reminder") | {"recipient_name": '<script>alert("x")</script> Zoé'}
    mail = render_template("reminder", sample)
    assert "<script>" not in mail.html
    assert "&lt;script&gt;" in mail.html
    assert '<script>alert("x")</script> Zoé' in mail.text  # plain text shows it literally


def test_html_in_the_subject_stays_text() -> None:
    sample = _sample("escalation") | {"contact_name": "<b>Léon</b> & fils"}
    mail = render_template("escalation", sample)
    assert mail.subject.endswith("— <b>Léon</b> & fils")
    assert "<b>Léon</b>" not in mail.html


def test_relative_links_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "common").mkdir()
    for path in (TEMPLATES_DIR / "common").glob("_*.html.j2"):
        shutil.copy(path, tmp_path / "common" / path.name)
    (tmp_path / "common" / "bad.html.j2").write_text(
        '{% extends "_layout.html.j2" %}{% block subject %}Test{% endblock %}'
        '{% block body %}<a href="/r/abc">ici</a>{% endblock %}',
        encoding="utf-8",
    )
    monkeypatch.setattr(render, "TEMPLATES_DIR", tmp_path)
    render.environment.cache_clear()
    try:
        with pytest.raises(RenderError, match="/r/abc"):
            render_template("bad", {"clsm_name": "CLSM"})
    finally:
        render.environment.cache_clear()


def test_text_part_keeps_structure_and_shows_link_addresses() -> None:
    text, links = html_to_text(
        "<h1>Titre</h1><p>Premier   paragraphe<br>suite</p>"
        "<ul><li>un</li><li>deux</li></ul><ol><li>a</li><li>b</li></ol>"
        '<p>Voir <a href="https://exemple.fr/x">la page</a>.</p>'
        "<dl><dt>Date</dt><dd>lundi</dd></dl>"
    )
    assert text == (
        "Titre\n=====\n\nPremier paragraphe\nsuite\n\n- un\n- deux\n\n1. a\n2. b\n\n"
        "Voir la page (https://exemple.fr/x).\n\nDate : lundi\n"
    )
    assert links == ["https://exemple.fr/x"]


def test_french_dates_in_paris_time() -> None:
    assert render.datetime_fr("2024-11-11T08:30:00+00:00") == "lundi 11 novembre 2024 à 9 h 30"
    assert render.datetime_fr("2024-07-01T12:00:00+00:00") == "lundi 1er juillet 2024 à 14 h"
