"""Temporary channel (before the notifications and service branches are merged)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlmodel import Session, col, select

from models import db
from models.outbox import OutboxMessage


def make_channel() -> Iterator[Any]:
    from tests.test_saisine_end_to_end import Channel
    from tests.test_saisine_flow import answer_as_the_service

    class DbChannel(Channel):
        last = 0

        async def deliver(self) -> list[dict[str, Any]]:
            with Session(db.get_engine()) as session:
                rows = session.exec(
                    select(OutboxMessage)
                    .where(col(OutboxMessage.id) > self.last)
                    .order_by(col(OutboxMessage.id))
                ).all()
            mails = []
            for row in rows:
                self.last = max(self.last, row.id or 0)
                cal = row.calendar or {}
                mails.append(
                    {
                        "template": row.template,
                        "to": row.recipient_email,
                        "subject": "Rappel" if row.context.get("reminder") else "",
                        "text": json.dumps(row.context, ensure_ascii=False),
                        "html": "",
                        "calendar": f"METHOD:{cal['method']}\nSEQUENCE:{cal['sequence']}"
                        if cal
                        else "",
                        "link_id": row.context.get("link_id"),
                    }
                )
            self.seen.extend(mails)
            return mails

        async def answer(self, mail: dict[str, Any], values: dict[str, Any]) -> None:
            await answer_as_the_service(int(mail["link_id"]), values)

    yield DbChannel()
