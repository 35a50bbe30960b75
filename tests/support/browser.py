"""Headless Chromium (Debian's package) driven by Playwright, for pages people click."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, sync_playwright

from tests.support.env import free_port

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
    page: Page, moved_on: Callable[[], bool], attempts: int = 6, wait: float = 30
) -> None:
    """Submit the Prefect UI's resume form until `moved_on()` says the run left its pause.

    On a loaded machine a click can be lost (the form not bound yet), or refused by Prefect's
    server on SQLite ("database is locked" for a minute or two: the UI's « Oops »), and a
    person clicks again; a click that came after the run moved on is refused by Prefect and
    changes nothing. What the page shows
    is in the failure's message.
    """
    button = page.get_by_role("button", name=re.compile("^Valider$|^Resume$", re.I)).last
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


def open_prefect_ui(
    browser: Browser,
    service_url: str,
    email: str,
    path: str,
    password: str = PASSWORD,
    locale: str | None = None,
) -> Page:
    """A page of the Prefect UI through the service's gateway, logged in as a person would:
    the gateway sends them to the login page, then back to what they asked for. (`locale`
    "fr-FR": the browser of a French coordinator, whose date fields read jj/mm/aaaa.)"""
    page = browser.new_page(locale=locale) if locale else browser.new_page()
    page.goto(f"{service_url}/prefect{path}")
    page.wait_for_url(re.compile(r"/login\?next="))
    page.get_by_label("Adresse électronique").fill(email)
    page.get_by_label("Mot de passe").fill(password)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(re.compile(r"/prefect/"))
    return page


# -- a person at the keyboard ----------------------------------------------------------------
SERIOUS = ("serious", "critical")


def accessibility_problems(page: Page) -> list[str]:
    """axe-core's serious and critical violations of the page, one line each."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + ", ".join(str(n["target"]) for n in v["nodes"][:3])
        for v in results.response["violations"]
        if v.get("impact") in SERIOUS
    ]


def assert_accessible(page: Page) -> None:
    problems = accessibility_problems(page)
    assert not problems, f"{page.url}: " + "; ".join(problems)


def labelled(text: str) -> re.Pattern[str]:
    """A field's accessible name: its label, with or without " (obligatoire)"."""
    return re.compile(rf"^{re.escape(text)}( \(obligatoire\))?$")


class Person:
    """Fills a page with the keyboard alone, as a person would: Tab to a field, type, Space
    on a box, arrows in a group of radio buttons, Enter on the button.

    Every field is reached by Tab from where the focus is (wrapping to the top of the page
    once): a field the keyboard cannot reach fails the test.
    """

    def __init__(self, page: Page) -> None:
        self.page = page

    def _focused(self, target: Locator) -> bool:
        return bool(target.evaluate("el => el === document.activeElement"))

    def tab_to(self, target: Locator, limit: int = 120) -> None:
        target.wait_for(state="visible")
        for _ in range(limit):
            if self._focused(target):
                return
            self.page.keyboard.press("Tab")
        raise AssertionError(f"Tab never reaches {target}")

    def type(self, label: str, text: str) -> None:
        """Replace the field's content by typing `text` (new lines with Enter)."""
        field = self.page.get_by_label(labelled(label))
        self.tab_to(field)
        self.page.keyboard.press("Control+A")
        self.page.keyboard.press("Delete")
        for number, line in enumerate(text.split("\n")):
            if number:
                self.page.keyboard.press("Enter")
            if line:
                self.page.keyboard.type(line)

    def type_days(self, label: str, days: list[date]) -> None:
        """Days typed the French way, one a line."""
        self.type(label, "\n".join(f"{d:%d/%m/%Y}" for d in days))

    def choose(self, question: str, answer: str) -> None:
        """Pick `answer` in the group of radio buttons of `question` with the arrow keys."""
        group = self.page.get_by_role("group", name=labelled(question))
        radios = group.get_by_role("radio")
        labels = [r.evaluate("el => el.labels[0].textContent.trim()") for r in radios.all()]
        wanted = labels.index(answer)
        checked = [i for i, r in enumerate(radios.all()) if r.is_checked()]
        self.tab_to(radios.nth(checked[0] if checked else 0))
        if not checked:
            self.page.keyboard.press("Space")
        current = checked[0] if checked else 0
        key = "ArrowDown" if wanted > current else "ArrowUp"
        for _ in range(abs(wanted - current)):
            self.page.keyboard.press(key)
        assert radios.nth(wanted).is_checked(), f"{question}: {answer} not chosen"

    def tick(self, label: str, on: bool = True) -> None:
        box = self.page.get_by_label(labelled(label))
        if box.is_checked() != on:
            self.tab_to(box)
            self.page.keyboard.press("Space")
        assert box.is_checked() == on

    def submit(self, name: str) -> None:
        """Enter on the form's button; waits for the page that answers."""
        self.tab_to(self.page.get_by_role("button", name=name, exact=True))
        with self.page.expect_navigation():
            self.page.keyboard.press("Enter")

    def value(self, label: str) -> str:
        return self.page.get_by_label(labelled(label)).input_value()

    def error_of(self, label: str) -> str:
        """The message beside a field (the one its aria-describedby names)."""
        field = self.page.get_by_label(labelled(label))
        described = (field.get_attribute("aria-describedby") or "").split()
        errors = [i for i in described if i.endswith("-erreur")]
        return self.page.locator(f"#{errors[0]}").inner_text() if errors else ""

    def group_error(self, question: str) -> str:
        """The message beside a group of radio buttons."""
        group = self.page.get_by_role("group", name=labelled(question))
        described = (group.get_attribute("aria-describedby") or "").split()
        errors = [i for i in described if i.endswith("-erreur")]
        return self.page.locator(f"#{errors[0]}").inner_text() if errors else ""


@pytest.fixture(scope="session")
def shared_chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Chromium process for the whole test session; its DevTools address.

    Tests connect to it for their own time only: a Playwright connection kept open across
    tests would leave its event loop running under the asyncio tests that follow.
    """
    port = free_port()
    process = subprocess.Popen(
        [
            chromium_path(),
            *CHROMIUM_ARGS,
            f"--remote-debugging-port={port}",
            "--remote-debugging-address=127.0.0.1",
            f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    address = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{address}/json/version", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("chromium did not start")
        time.sleep(0.2)
    try:
        yield address
    finally:
        process.terminate()
        process.wait(20)


@pytest.fixture
def browser(shared_chromium: str) -> Iterator[Browser]:
    """The session's Chromium, connected for one test (each test opens its own context)."""
    with sync_playwright() as playwright:
        connected = playwright.chromium.connect_over_cdp(shared_chromium)
        try:
            yield connected
        finally:
            connected.close()  # disconnects; the shared process stays


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page of the shared Chromium, in a French browser (its own context)."""
    context = browser.new_context(locale="fr-FR")
    yield context.new_page()
    context.close()
