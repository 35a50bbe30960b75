"""Headless Chromium (Debian's package) driven by Playwright, for pages people click."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, Locator, Page, sync_playwright

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise RuntimeError("chromium not found: `make test` installs Debian's chromium")
    return path


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


def prefect_field(page: Page, label: str) -> Locator:
    """The input of a Prefect UI schema form whose label contains `label`."""
    return (
        page.locator(".schema-form-property", has_text=label)
        .locator("textarea, input, select")
        .first
    )


def submit_prefect_form(
    page: Page, moved_on: Callable[[], bool], attempts: int = 3, wait: float = 30
) -> None:
    """Submit the Prefect UI's resume form until `moved_on()` says the run left its pause.

    On a loaded machine a click can be lost (the form not bound yet); a click that came
    after the run moved on is refused by Prefect and changes nothing. What the page shows
    is in the failure's message.
    """
    button = page.get_by_role("button", name=re.compile("^Submit$|^Resume$", re.I)).last
    for _attempt in range(attempts):
        if button.is_visible():
            button.click()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if moved_on():
                return
            page.wait_for_timeout(500)
    shown = " ".join(page.inner_text("body").split())[:600]
    raise AssertionError(f"the run stayed paused after {attempts} submissions; page: {shown}")


def account(role: str = "coordinator", clsm_slug: str | None = "poitiers", name: str = "") -> str:
    """A service account (its CLSM created if needed); returns its e-mail (password: PASSWORD)."""
    from sqlmodel import select

    from models.core import db
    from models.core.enums import Role
    from models.core.people import Clsm, User
    from service.security import hash_password

    with db.session_scope() as session:
        clsm = None
        if clsm_slug is not None:
            clsm = session.exec(select(Clsm).where(Clsm.slug == clsm_slug)).first()
            if clsm is None:
                clsm = Clsm(slug=clsm_slug, name=f"CLSM de {clsm_slug.capitalize()}")
                session.add(clsm)
                session.flush()
        email = f"{role}.{clsm_slug or 'toutes'}.{len(name)}@clsm.example"
        session.add(
            User(
                email=email,
                name=name or f"Compte {role}",
                role=Role(role),
                clsm_id=clsm.id if clsm else None,
                password_hash=hash_password(PASSWORD),
            )
        )
    return email


PASSWORD = "mot-de-passe-de-test"


def open_prefect_ui(browser: Browser, service_url: str, email: str, path: str) -> Page:
    """A page of the Prefect UI through the service's gateway, logged in as a person would:
    the gateway sends them to the login page, then back to what they asked for."""
    page = browser.new_page()
    page.goto(f"{service_url}/prefect{path}")
    page.wait_for_url(re.compile(r"/login\?next="))
    page.get_by_label("Adresse électronique").fill(email)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(re.compile(r"/prefect/"))
    return page
