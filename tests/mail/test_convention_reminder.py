"""`tick`'s convention reminder: the coordinator receives one mail 30 days before a
convention ends, through a real SMTP server, and only once, from the CLSM's own sending and
reply-to addresses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from models.core import clock, db
from models.core import directory as d
from models.core.audit import Actor
from notifications.send import drain
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.asyncio(loop_scope="session")
PARIS = ZoneInfo("Europe/Paris")
ACTOR = Actor.system("test")


async def test_the_coordinator_is_mailed_30_days_before_a_convention_ends(
    db_url: str, smtp_server: SmtpServer
) -> None:
    with db.session_scope() as session:
        clock.set_offset(
            session=session, delta=datetime(2026, 12, 1, 9, 0, tzinfo=PARIS) - datetime.now(UTC)
        )
        owner = d.create_clsm(
            session=session,
            data=d.ClsmCreate(
                slug="bocage",
                name="CLSM du Bocage Bressuirais",
                coordinator_name="Lucie Coordination",
                coordinator_email="coordination@bocage.example",
                sender_email="ne-pas-repondre@clsm-bocage.example",
                reply_to_email="secretariat@clsm-bocage.example",
            ),
            actor=ACTOR,
        )
        assert owner.id is not None
        ends = {"CCAS de Bressuire": 31, "UDAF des Deux-Sèvres": 30, "Mission locale": 10}
        for name, days in ends.items():
            org = d.create_structure(
                session=session, clsm_id=owner.id, data=d.StructureCreate(name=name), actor=ACTOR
            )
            assert org.id is not None
            d.create_convention(
                session=session,
                clsm_id=owner.id,
                data=d.ConventionCreate(
                    organisation_id=org.id,
                    starts_on=datetime(2023, 1, 1).date(),
                    ends_on=datetime(2026, 12, 1).date() + timedelta(days=days),
                ),
                actor=ACTOR,
            )
    with db.session_scope() as session:
        assert d.queue_convention_reminders(session) == 2
    with db.session_scope() as session:
        assert d.queue_convention_reminders(session) == 0  # the next tick queues nothing new
    report = await drain()
    assert report.as_dict()["sent"] == 2
    subjects = sorted(str(m.message["Subject"]) for m in smtp_server.messages)
    assert subjects == [
        "Convention bilatérale d'UDAF des Deux-Sèvres : fin le jeudi 31 décembre 2026",
        "Convention bilatérale de Mission locale : fin le vendredi 11 décembre 2026",
    ]
    mail = smtp_server.messages[0]
    assert mail.recipients == ["coordination@bocage.example"]
    assert mail.message["From"].addresses[0].addr_spec == "ne-pas-repondre@clsm-bocage.example"
    assert mail.message["From"].addresses[0].display_name == "CLSM du Bocage Bressuirais"
    assert mail.message["Reply-To"].addresses[0].addr_spec == "secretariat@clsm-bocage.example"
    assert "Bonjour Lucie Coordination" in mail.text()
    assert "/directory/bocage/conventions" in mail.text()
