"""A whole immersion session and 20 saisines through the real stack; then the same saisines on
PostgreSQL with two workers against SQLite with one.

Everything goes through a real Prefect server and process worker(s): partners answer the
mailed links through the service, the coordinator answers the Prefect forms (the run
resumed with its input, as the Prefect UI does), the clock is moved forward and the tick
flow resumes what became due, as soon as every run is suspended (tick's minute is not
waited for). See bench/drive.py for the driver, the API call counting and the passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from bench.drive import (
    ApiCalls,
    Installation,
    installation,
    interpreter_start,
    passes,
    prefect_api_url,
    resumes_by_wait,
    spawn_workers,
    stop_workers,
    where_time_goes,
)
from bench.run import Context, Result, Target, distribution

if TYPE_CHECKING:
    from tests.support.prefect_stack import PrefectStack

SESSION_TARGET_SECONDS = 120
# Saisines people act on at once (new saisine, form, link), then wait for their runs to be
# suspended again. With all 20 at once on 2 cores, passes stayed PENDING for over
# 2 minutes (20 interpreters starting, Prefect's SQLite "database is locked"): tick
# rescheduled live runs as abandoned, heartbeats went missing (CRASHED). Prefect's caps do
# not help with suspended runs: a work-pool concurrency limit keeps their slots (the pool
# stalls) and `prefect worker start --limit` crashes the worker when a run is resumed
# ("this borrower is already holding one of this CapacityLimiter's tokens").
WAVE = 4
SCALE_OUT_SAISINES = 8  # level 1 of 8 saisines per variant: both fit in the budget
STRUCTURES = ["CCAS", "CHL", "Département", "DAC", "UDAF"]
PARTNERS = ["CCAS", "CHL", "DAC-PTA"]  # consulted at level 1 (members of tests.support.saisine)
ACTION_OWNER = "Référent DAC-PTA (DAC-PTA)"
SAISINE_PATH = (
    "saisine: intake → coordinator picks 3 partners (form) → 3 consultation mails, each "
    "answered by link → orientation form; every 4th saisine escalated to level 2: meeting "
    "form (new meeting in 14 days, 1 invited member) → clock moved past the meeting, tick "
    "→ decision form with 1 action → the owner marks it done by link → closed; the others "
    "closed at orientation (no follow-up)"
)
SESSION_PATH = (
    "session: launch → call mailed to 5 structures → applicants apply by the call link "
    "→ clock past the call's close, tick → selection form (prefilled proposal approved) "
    "→ one participant withdraws by link, the first waitlisted accepts the offer by link → "
    "every host confirms by link → agreements signed by link (participant, manager, tutor) "
    "→ clock past the preparation day, attendance form → clock past the immersions, "
    "tick → evaluations by link (participants and hosts) → clock past the restitution, "
    "attendance form → report, closed"
)


# -- the stack, counted -------------------------------------------------------------------
@contextlib.contextmanager
def counted_stack(
    ctx: Context, database: str = "sqlite"
) -> Iterator[tuple[PrefectStack, ApiCalls]]:
    """The Prefect stack (its database on `database`) with every client's calls relayed
    through an ApiCalls counter.

    A full run replaces the stack's worker by counted ones (`workers`); a smoke run keeps
    the (maybe shared) stack's worker, whose calls are then not counted.
    """
    calls = ApiCalls(ctx.tmp)
    try:
        with ctx.prefect(database) as stack:
            if not ctx.smoke:
                stack.stop_worker()
            with prefect_api_url(calls.urls["driver"]):
                yield stack, calls
    finally:
        calls.close()


@contextlib.contextmanager
def workers(ctx: Context, stack: PrefectStack, calls: ApiCalls, count: int) -> Iterator[None]:
    """`count` process workers on the pool (in smoke the stack's own worker is one of them)."""
    names = [f"bench-worker-{i}" for i in range(1, count + 1)]
    spawned = spawn_workers(stack, names[1:] if ctx.smoke else names, calls.urls["worker"])
    try:
        yield
    finally:
        stop_workers(spawned)


@contextlib.asynccontextmanager
async def measured(
    inst: Installation, calls: ApiCalls, figures: dict[str, Any]
) -> AsyncIterator[list[UUID]]:
    """Runs started inside get their passes, where the time went and the API calls counted."""
    run_ids: list[UUID] = []
    since = time.time()
    started = time.perf_counter()
    yield run_ids
    figures["wall_seconds"] = round(time.perf_counter() - started, 1)
    found = await passes(inst.observer, run_ids)
    figures["steps"] = len(found)
    figures["steps_per_minute"] = round(60 * len(found) / figures["wall_seconds"], 1)
    figures["where_the_time_goes"] = where_time_goes(found)
    per_run: dict[str, list[float]] = {}
    for p in found:
        per_run.setdefault(p.run_id, []).extend([p.scheduled, p.ended])
    figures["run_wall"] = distribution([max(v) - min(v) for v in per_run.values()], "s", 1)
    figures["resumes_by_wait"] = resumes_by_wait()
    figures["prefect_api_calls"] = calls.summary(since, time.time(), len(found))
    figures["driver"] = inst.actions.figures()
    figures["mails_received"] = len(inst.smtp.messages)


# -- the immersion session -----------------------------------------------------------------
async def deliver(inst: Installation) -> None:
    from notifications.send import drain

    with inst.actions.timing("mail (outbox drained to SMTP)"):
        while (await drain()).processed:
            pass


async def shown(run_id: UUID) -> dict[str, Any]:
    """What a coordinator's form shows (its prefilled values): submitted as is."""
    from tests.support.prefect_stack import form_schema

    schema = await form_schema(run_id)
    return {name: field.get("default") for name, field in schema["properties"].items()}


async def drive_session(
    inst: Installation, participants: int, run_ids: list[UUID], *, whole: bool = True
) -> str:
    """One session of `participants` places through every phase (or up to the selection
    only, for a smoke run); its status at the end."""
    from models.core import clock
    from models.core.db import session_scope
    from models.immersion.common import get_session, session_by_run
    from models.immersion.meetings import immersion_end
    from models.immersion.tables import Placement
    from tests.immersion.test_immersion_flow import Mailbox
    from tests.support.immersion import (
        build_clsm,
        immersion_days,
        launch_parameters,
        outbox,
        session_dates,
        session_status,
    )

    mailbox = Mailbox(inst.smtp)
    with session_scope() as session:
        clsm, _orgs = build_clsm(session)
        dates = session_dates(clock.now(session))
        slug = clsm.slug
    parameters = launch_parameters(
        slug,
        dates,
        title="Immersions — session de mesure",
        structures=["CCAS, CHL", "Département", "DAC", "UDAF"],
        capacity=participants,
        host_capacity=6,
        preparation_place=dates["preparation_place"],
        facilitator_name="CODES 34",
        facilitator_email="animation@codes.example",
        restitution_place=dates["restitution_place"],
    )
    run_id = await inst.start("immersion-session/immersion-session", parameters)
    run_ids.append(run_id)
    await inst.settle(run_ids)
    await deliver(inst)

    calls = {m.recipient_email: m for m in outbox("immersion_call")}
    applicants = participants + max(1, participants // 4)
    for n in range(1, applicants + 1):
        home = STRUCTURES[(n - 1) % 5].lower()
        inst.post_link(
            mailbox.token(calls[f"referent@{home}.example"]),
            {
                "name": f"Candidat {n}",
                "email": f"candidat{n}@{home}.example",
                "function": "Travailleur social",
                "manager_name": f"Cheffe {home}",
                "manager_email": f"cheffe@{home}.example",
                "motivation": "Mieux connaître les partenaires",
                "wishes": f"{STRUCTURES[n % 5]}\n{STRUCTURES[(n + 1) % 5]}",
                "availability": "mardis et jeudis",
            },
        )
    await deliver(inst)
    confirmations = {m.context["number"]: m for m in outbox("immersion_application_received")}

    inst.move_clock_past(dates["call_closes_at"])
    await inst.settle(run_ids)
    with session_scope() as session:
        row = session_by_run(session, str(run_id))
        assert row is not None and row.id is not None
        row_id = row.id
    selection = await shown(run_id)
    kept = [int(label.split()[1]) for label in selection["kept"]]  # "n° 3 — …"
    await inst.resume_form(run_id, selection)  # the proposal, as prefilled
    await inst.settle(run_ids)
    await deliver(inst)
    if not whole:
        return str(session_status(run_id).value)
    await inst.resume_form(run_id, await shown(run_id))  # the proposed hosts, as prefilled
    await inst.settle(run_ids)
    await deliver(inst)

    inst.post_link(
        mailbox.token(confirmations[kept[0]]), {"action": "retirer", "reason": "arrêt maladie"}
    )
    await deliver(inst)
    (offer,) = outbox("immersion_offer")
    inst.post_link(mailbox.token(offer), {"answer": "j'accepte la place"})
    await inst.settle(run_ids)
    await deliver(inst)

    for i, request in enumerate(outbox("immersion_host_request")):
        with session_scope() as session:
            placement = session.get(Placement, int(request.dedup_key.split("-")[1]))
            if placement is None or placement.status.value == "cancelled":
                continue  # the placement of the participant who withdrew
        inst.post_link(
            mailbox.token(request),
            {
                "answer": "accepter",
                "tutor_name": f"Tuteur {i}",
                "tutor_email": f"tuteur{i}@accueil.example",
                "capacity": "6",
                "days": "\n".join(
                    d.isoformat() for d in immersion_days(dates["window_start"], 3, i % 10)
                ),
                "may_observe": "réunions d'équipe, entretiens d'accueil",
                "may_not_observe": "consultations médicales",
            },
        )
    await inst.settle(run_ids)
    await deliver(inst)

    for message in outbox("immersion_agreement"):
        inst.post_link(mailbox.token(message), {"agree": "on", "confidentiality": "on"})
    await inst.settle(run_ids)

    inst.move_clock_past(dates["preparation_end"])
    await inst.settle(run_ids)
    attendance = await shown(run_id)
    everyone = list(attendance["present"])
    await inst.resume_form(run_id, {**attendance, "present": everyone[:-1]})
    await inst.settle(run_ids)

    with session_scope() as session:
        end = immersion_end(session, get_session(session, row_id))
    inst.move_clock_past(end)
    await inst.settle(run_ids)
    await deliver(inst)
    for message in outbox("immersion_evaluation"):
        inst.post_link(
            mailbox.token(message),
            {"missions": "accueil", "practices": "entretiens", "limits": "secret", "rating": "5"},
        )
    for message in outbox("immersion_host_evaluation"):
        inst.post_link(mailbox.token(message), {"rating": "4", "useful": "regards croisés"})
    await inst.settle(run_ids)

    inst.move_clock_past(dates["restitution_end"])
    await inst.settle(run_ids)
    await inst.resume_form(run_id, await shown(run_id))  # everyone at the restitution
    await inst.settle(run_ids)
    await deliver(inst)
    return str(session_status(run_id).value)


# -- saisines ------------------------------------------------------------------------------
def _open_step(run_id: UUID) -> str:
    from sqlmodel import select

    from models.core.db import session_scope
    from models.core.waits import Wait, WaitStatus

    with session_scope() as session:
        step = session.exec(
            select(Wait.step).where(Wait.flow_run_id == str(run_id), Wait.status == WaitStatus.OPEN)
        ).first()
    return step or ""


def _form_answer(step: str, escalate: bool) -> dict[str, Any]:
    """The coordinator's answer to the form the run shows (step `ask-<seq>-<form>`)."""
    from models.core import clock
    from models.core.calendar import add_business_days
    from models.core.db import session_scope

    with session_scope() as session:
        today = clock.now(session).date()
    form = step.split("-", 2)[2]
    if form == "partners":
        return {"partners": PARTNERS}
    if form == "orientation" and escalate:
        return {
            "outcome": "Passer au niveau 2 : examen en réunion de cellule",
            "who_acts": "",
            "follow_up_days": 30,
        }
    if form == "orientation":
        return {
            "outcome": "Mise en lien avec la coordinatrice de parcours",
            "who_acts": "CHL",
            "detail": "",
            "follow_up_days": 0,
        }
    if form == "meeting":
        return {
            "meeting": "Nouvelle réunion",
            "day": add_business_days(today, 10).isoformat(),
            "at": "14:00",
            "host": "CCAS",
            "invited": ["MDPH"],
        }
    if form.startswith("decision"):
        return {
            "meeting_held": True,
            "text": "Concertation des partenaires autour de la personne",
            "actions": [
                {
                    "text": "Contacter la personne",
                    "owner": ACTION_OWNER,
                    "due_on": (today + timedelta(days=30)).isoformat(),
                }
            ],
        }
    raise RuntimeError(f"no answer for the form {step}")


LINK_ANSWERS = {
    "saisine_consultation": {"knows_situation": "oui", "proposal": "Visite conjointe possible"},
    "saisine_action": {"note": "Personne contactée, rendez-vous pris"},
}


async def drive_saisines(
    inst: Installation, count: int, level2_every: int, run_ids: list[UUID]
) -> dict[str, int]:
    """`count` saisines, each to its closure; how many ended at each level.

    People act on at most WAVE saisines at a time (a new saisine, a form, a link), then the
    driver waits until those runs are suspended again: 20 run processes starting at once
    on 2 cores stall Prefect (see WAVE) and no Prefect setting caps them safely.
    """
    from sqlmodel import col, select

    from models.core.db import session_scope
    from models.core.links import find_link
    from models.core.waits import Wait, WaitStatus
    from models.saisine.intake import DESCRIPTION_STEP
    from tests.saisine.test_saisine_end_to_end import Channel
    from tests.saisine.test_saisine_flow import intake_parameters
    from tests.support.saisine import build_cell

    with session_scope() as session:
        build_cell(session)
    channel = Channel(inst.smtp, inst.client)
    escalated: set[UUID] = set()
    answered: set[tuple[Any, ...]] = set()
    mails: list[dict[str, Any]] = []
    for _round in range(200):
        kinds = await inst.settle(run_ids) if run_ids else {}
        if len(run_ids) == count and all(k == "COMPLETED" for k in kinds.values()):
            return {"level1": count - len(escalated), "level2": len(escalated)}
        acting: set[Any] = set()  # the saisines people act on in this round
        while len(run_ids) < count and len(acting) < WAVE:
            run_id = await inst.start("saisine/saisine", intake_parameters())
            if level2_every and len(run_ids) % level2_every == level2_every - 1:
                escalated.add(run_id)
            run_ids.append(run_id)
            acting.add(run_id)
        for run_id, kind in kinds.items():
            step = _open_step(run_id) if kind == "PAUSED" else ""
            if step.startswith("ask-") and len(acting) < WAVE:
                await inst.resume_form(run_id, _form_answer(step, run_id in escalated))
                acting.add(run_id)
            elif step == DESCRIPTION_STEP and len(acting) < WAVE:
                await _describe(run_id)  # typed on the service's page, never a parameter
                acting.add(run_id)
        with inst.actions.timing("mail (outbox drained to SMTP)"):
            mails.extend(await channel.deliver())
        later = []
        for mail in mails:
            values = LINK_ANSWERS.get(mail["template"])
            token = _token(mail["text"])
            if values is None or token is None:
                continue
            with session_scope() as session:
                link = find_link(session, token)
                if link is None or link.used_at is not None:
                    continue
                key = (link.case_id, link.step, link.contact_id, link.subject_id)
                run_id = UUID(_run_of(session, link.case_id))
            if key in answered:
                continue
            if run_id not in acting and len(acting) >= WAVE:
                later.append(mail)
                continue
            answered.add(key)
            inst.post_link(token, values)
            acting.add(run_id)
        mails = later
        if acting:
            continue
        with session_scope() as session:
            due = session.exec(
                select(Wait.due_at)
                .where(Wait.status == WaitStatus.OPEN, col(Wait.due_at).is_not(None))
                .order_by(col(Wait.due_at))
            ).first()
        if due is None:
            raise RuntimeError(f"saisines stuck: {kinds}")
        inst.move_clock_past(due)
    raise RuntimeError("saisines not closed after 200 rounds")


async def _describe(run_id: UUID) -> None:
    """What the coordinator's description page does: record it, then wake the run."""
    from models.core.audit import Actor
    from models.core.db import session_scope
    from models.core.enums import Channel
    from models.core.runs import deliver_resumes
    from models.saisine.common import saisine_by_run
    from models.saisine.intake import describe_saisine
    from tests.support.saisine import description

    with session_scope() as session:
        saisine = saisine_by_run(session, str(run_id))
        assert saisine is not None
        woken = describe_saisine(
            session=session,
            saisine=saisine,
            description=description(consent_given=True, consent_note=""),
            actor=Actor.user(1, "Coordination (banc d'essai)", Channel.SERVICE),
        )
    await deliver_resumes(woken)


def _run_of(session: Any, saisine_id: int) -> str:
    from models.saisine.tables import Saisine

    saisine = session.get(Saisine, saisine_id)
    assert saisine is not None and saisine.flow_run_id
    return str(saisine.flow_run_id)


def _token(text: str) -> str | None:
    import re

    found = re.search(r"/r/([A-Za-z0-9_-]+)", text)
    return found.group(1) if found else None


# -- the benchmarks ------------------------------------------------------------------------
def whole_session(ctx: Context) -> Result:
    """A 16-participant immersion session, then 20 saisines, through the real stack."""
    participants = ctx.scale(16, 2)
    count = ctx.scale(20, 1)
    level2_every = ctx.scale(4, 0)
    figures: dict[str, Any] = {}
    with counted_stack(ctx) as (stack, calls), workers(ctx, stack, calls, 1):
        session_figures: dict[str, Any] = {"participants": participants}
        saisine_figures: dict[str, Any] = {"saisines": count}

        async def drive() -> None:
            db_url = ctx.database("sqlite")
            async with (
                installation(db_url, calls.urls["flow-runs"]) as inst,
                measured(inst, calls, session_figures) as run_ids,
            ):
                session_figures["final_status"] = await drive_session(
                    inst, participants, run_ids, whole=not ctx.smoke
                )
            db_url = ctx.database("sqlite")
            async with (
                installation(db_url, calls.urls["flow-runs"]) as inst,
                measured(inst, calls, saisine_figures) as run_ids,
            ):
                saisine_figures["closed_at"] = await drive_saisines(
                    inst, count, level2_every, run_ids
                )

        asyncio.run(drive())
    figures = {
        "session": session_figures,
        "saisines": saisine_figures,
        "python_process": interpreter_start(
            ["prefect.engine", "flows.immersion", "flows.saisine"], repeat=ctx.scale(2, 1)
        ),
    }
    wall = session_figures["wall_seconds"]
    return Result(
        figures=figures,
        targets=[
            Target(
                "session up to the selection (smoke)"
                if ctx.smoke
                else f"session of {participants} participants, end to end",
                f"< {SESSION_TARGET_SECONDS} s",
                wall,
                "s",
                met=wall < SESSION_TARGET_SECONDS,
                note=_session_note(session_figures),
            )
        ],
        settings={
            "participants": participants,
            "applications": participants + max(1, participants // 4),
            "saisines": count,
            "level2_every": level2_every,
            "workers": 1,
            "app_database": "sqlite",
            "prefect_server_database": "sqlite",
            "saisines_acted_on_at_once": WAVE,
            "worker_query_seconds": 1,
        },
        notes=[SESSION_PATH, SAISINE_PATH, *_common_notes(ctx)],
    )


API_CALLS_PER_PASS_TARGET = 25


def scale_out(ctx: Context) -> Result:
    """The saisines' level 1: SQLite (both databases) and one worker against PostgreSQL
    (the app's and Prefect's own) and two workers, each on a Prefect stack of its own."""
    count = ctx.scale(SCALE_OUT_SAISINES, 1)
    variants = [("sqlite", 1), ("postgresql", 2)]
    figures: dict[str, Any] = {}
    for kind, worker_count in variants:
        variant: dict[str, Any] = {
            "app_database": kind,
            "prefect_server_database": kind if ctx._shared_stack is None else "shared stack",
            "workers": worker_count,
        }
        with counted_stack(ctx, kind) as (stack, calls), workers(ctx, stack, calls, worker_count):

            async def drive(variant: dict[str, Any] = variant, kind: str = kind) -> None:
                db_url = ctx.database(kind)
                async with (
                    installation(db_url, calls.urls["flow-runs"]) as inst,
                    measured(inst, calls, variant) as run_ids,
                ):
                    await drive_saisines(inst, count, 0, run_ids)
                variant["app_database_url"] = db_url

            asyncio.run(drive())
            if kind == "postgresql":
                variant["footprint"] = _footprint(ctx, variant.pop("app_database_url"), count)
            variant.pop("app_database_url", None)
        figures[f"{kind}_{worker_count}_worker{'s' if worker_count > 1 else ''}"] = variant
    single, double = figures.values()
    ratio = round(double["steps_per_minute"] / single["steps_per_minute"], 2)
    figures["throughput_ratio"] = ratio
    per_pass = {
        name: variant["prefect_api_calls"]["per_step"]
        for name, variant in figures.items()
        if isinstance(variant, dict)
    }
    worst = max((v for v in per_pass.values() if v is not None), default=None)
    return Result(
        figures=figures,
        targets=[
            Target(
                "throughput, PostgreSQL (both) + 2 workers vs SQLite + 1 worker",
                "≥ 1 (reported)",
                ratio,
                "×",
                met=ratio >= 1,
                note=f"{single['steps_per_minute']} → {double['steps_per_minute']} steps/min",
            ),
            Target(
                "Prefect API calls per pass (every client), worst variant",
                f"≤ {API_CALLS_PER_PASS_TARGET}",
                worst,
                "calls",
                met=worst is not None and worst <= API_CALLS_PER_PASS_TARGET,
                note=", ".join(f"{name}: {value}" for name, value in per_pass.items()),
            ),
        ],
        settings={
            "saisines": count,
            "path": "level 1 closed at orientation",
            "variants": [f"{kind} (app and Prefect), {n} worker(s)" for kind, n in variants],
            "saisines_acted_on_at_once": WAVE,
        },
        notes=[
            "load: the saisines' level 1 only — " + SAISINE_PATH.split(";")[0],
            "steps per minute: passes of flow runs (SCHEDULED → PAUSED/COMPLETED) over the "
            "wall time of the load, from the first run created to the last one closed",
            "each variant on a fresh Prefect server whose own database is of the same kind "
            "(PostgreSQL through asyncpg, as the deployment guide sets it)",
            *_common_notes(ctx),
        ],
    )


def _footprint(ctx: Context, app_url: str, saisines: int) -> dict[str, Any]:
    """What the saisines left in both PostgreSQL databases, in all and per saisine."""
    from bench.installation import database_footprint

    app = database_footprint(app_url, ("audit_event", "outbox", "saisine"))
    found: dict[str, Any] = {"saisines": saisines, "app": app}
    if ctx.prefect_database_url.startswith("postgresql"):
        prefect = database_footprint(ctx.prefect_database_url)
        found["prefect"] = prefect
        found["prefect_rows_per_saisine"] = {
            table: round(n / saisines, 1) for table, n in prefect["rows"].items()
        }
    return found


def _session_note(figures: dict[str, Any]) -> str:
    time_goes = figures["where_the_time_goes"]
    shares = time_goes["share_of_pass_time_percent"]
    driver = figures["driver"]["driver_seconds"]
    return (
        f"{time_goes['passes']} passes of the run; per pass p50: queue "
        f"{time_goes['queue_wait']['p50']} s, process start {time_goes['process_start']['p50']} s,"
        f" flow code {time_goes['flow_code']['p50']} s (shares {shares}); driver: {driver}"
    )


def _common_notes(ctx: Context) -> list[str]:
    notes = [
        "Prefect API calls counted by bench.api_counter, an HTTP relay between every client "
        "and the server (one port per client: driver = this process with the service, tick "
        "and the coordinator's forms; worker; flow-runs = the run processes); websockets "
        "(events) count once per connection; the driver's own state polling is not counted",
        "a pass: one execution of a run from SCHEDULED (new or resumed) to PAUSED or "
        "COMPLETED; queue wait = SCHEDULED→PENDING (worker polling, 1 s), process start = "
        "PENDING→RUNNING (new Python process, imports, flow loaded), flow code = "
        "RUNNING→PAUSED/COMPLETED (replay from the top, new work, suspension)",
        "clock injected (models.core.clock), tick run by the driver as soon as every run is "
        "suspended (its minute is not waited for); mails to a real SMTP server in-process",
    ]
    if ctx.smoke:
        notes.append("smoke: the stack's own worker runs the flows, its calls are not counted")
    return notes
