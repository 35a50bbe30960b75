"""Append-only, hash-chained, keyed audit trail: one chain per case.

hash = sha256(prev_hash + canonical(case, seq, action, actor, time, payload_digest)): the
public chain, which anyone holding the events recomputes (an exported bundle is verified
offline so). mac = HMAC-SHA256(key, hash) with a key kept outside the database
(CLSM_AUDIT_KEY), its id in key_id: whoever writes to the database without the key cannot
rewrite an event and recompute the chain unseen. Signed checkpoints of the chain heads
(models.core.checkpoints) catch even the key holder.

The payload itself is only covered through its digest, so the payload can be erased at the
end of retention (set to NULL, digest kept, a `personal-data.erased` event written) and the
chain still verifies; any other NULL payload is reported. The database refuses UPDATE and
DELETE (triggers, see migrations), except that one redaction.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    String,
    Text,
    UniqueConstraint,
    bindparam,
    cast,
    func,
    text,
    type_coerce,
    update,
)
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Connection, Dialect
from sqlmodel import Field, Session, SQLModel, col, select

from models.core import clock
from models.core.audit_keys import _mac, audit_keys, seal
from models.core.base import UTCDateTime
from models.core.enums import ActorKind, CaseType, Channel

GENESIS = "0" * 64
ERASED = "personal-data.erased"


@dataclass(frozen=True)
class Actor:
    """Who did something and through which channel."""

    kind: ActorKind
    label: str
    channel: Channel
    ref: str = ""

    @classmethod
    def system(cls, ref: str = "") -> Actor:
        return cls(ActorKind.SYSTEM, "système", Channel.SYSTEM, ref)

    @classmethod
    def contact(cls, contact_id: int, name: str) -> Actor:
        return cls(ActorKind.CONTACT, name, Channel.LINK, f"contact:{contact_id}")

    @classmethod
    def user(cls, user_id: int, name: str, channel: Channel = Channel.SERVICE) -> Actor:
        return cls(ActorKind.USER, name, channel, f"user:{user_id}")

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind.value,
            "label": self.label,
            "channel": self.channel.value,
            "ref": self.ref,
        }


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (UniqueConstraint("case_type", "case_id", "seq", name="uq_audit_case_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    case_type: str = Field(index=True, max_length=20)
    case_id: int = Field(index=True)
    seq: int
    at: datetime = Field(sa_type=UTCDateTime)
    actor_kind: str = Field(max_length=20)
    actor_label: str = Field(max_length=200)
    actor_ref: str = Field(default="", max_length=100)
    channel: str = Field(max_length=20)
    action: str = Field(index=True, max_length=80)
    payload: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSON(none_as_null=True), nullable=True)
    )
    payload_digest: str = Field(max_length=64)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
    key_id: str | None = Field(default=None, max_length=32)
    mac: str | None = Field(default=None, max_length=64)


# One encoder for every call: json.dumps would build a new one each time (verification
# encodes two documents per event).
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
)


def canonical(value: Any) -> str:
    return _CANONICAL.encode(value)


def digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(payload).encode()).hexdigest()


# The canonical body of an event (module docstring): what canonical() gives for
# {"case": [type, id], "seq", "action", "actor": [kind, label, ref, channel], "at",
# "payload_digest"}, keys sorted, strings escaped by the same function as _CANONICAL's;
# written out because verification computes it for every event (no dict to build and sort).
_BODY = '{"action":%s,"actor":[%s,%s,%s,%s],"at":%s,"case":[%s,%d],"payload_digest":%s,"seq":%d}'
_string = json.encoder.encode_basestring


def _at_text(at: datetime | str) -> str:
    """An event's time as hashed: ISO 8601, UTC, microseconds.

    SQLite gives back the stored text ('YYYY-MM-DD HH:MM:SS.ffffff', UTC), turned into that
    form without parsing; any other text is parsed (naive means UTC).
    """
    if isinstance(at, str):
        if len(at) == 26 and at[10] == " ":
            return f"{at[:10]}T{at[11:]}+00:00"
        try:
            parsed = datetime.fromisoformat(at)
        except ValueError:
            return at  # not a time: the event's hash cannot match, the break is reported
        at = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _link_hash(
    prev_hash: str,
    case_type: str,
    case_id: int,
    seq: int,
    at: datetime | str,
    actor: tuple[str, str, str, str],
    action: str,
    payload_digest: str,
) -> str:
    body = _BODY % (
        _string(action),
        *map(_string, actor),
        _string(_at_text(at)),
        _string(case_type),
        case_id,
        _string(payload_digest),
        seq,
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def _payload_intact(payload: str | dict[str, Any] | None, payload_digest: str) -> bool:
    """Whether a payload (as stored, or decoded) still has its digest; None: erased.

    The database stores JSON in canonical form (models.core.db), so the stored text is hashed as
    it is; text stored otherwise (written by other means) is decoded and made canonical.
    """
    if payload is None:
        return True
    if isinstance(payload, str):
        if hashlib.sha256(payload.encode()).hexdigest() == payload_digest:
            return True
        try:
            decoded = json.loads(payload)
        except ValueError:
            return False
        return digest(decoded) == payload_digest
    return digest(payload) == payload_digest


def _chain_hash(prev_hash: str, event: AuditEvent) -> str:
    return _link_hash(
        prev_hash,
        event.case_type,
        event.case_id,
        event.seq,
        event.at,
        (event.actor_kind, event.actor_label, event.actor_ref, event.channel),
        event.action,
        event.payload_digest,
    )


def _lock_chain(session: Session, case_type: CaseType, case_id: int) -> None:
    """Serialise writers of one chain until the end of their transaction.

    SQLite transactions already take the write lock at BEGIN (see models.core.db); PostgreSQL
    needs a per-case advisory lock, or two writers would both read the same last event.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    key = int.from_bytes(
        hashlib.sha256(f"audit:{case_type.value}:{case_id}".encode()).digest()[:8],
        "big",
        signed=True,
    )
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def record_event(
    *,
    session: Session,
    case_type: CaseType,
    case_id: int,
    action: str,
    actor: Actor,
    payload: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the case's chain, inside the caller's transaction."""
    _lock_chain(session, case_type, case_id)
    last = session.exec(
        select(AuditEvent)
        .where(AuditEvent.case_type == case_type.value, AuditEvent.case_id == case_id)
        .order_by(col(AuditEvent.seq).desc())
        .limit(1)
    ).first()
    body = json.loads(canonical(payload or {}))
    event = AuditEvent(
        case_type=case_type.value,
        case_id=case_id,
        seq=(last.seq + 1) if last else 1,
        at=clock.now(session),
        actor_kind=actor.kind.value,
        actor_label=actor.label,
        actor_ref=actor.ref,
        channel=actor.channel.value,
        action=action,
        payload=body,
        payload_digest=digest(body),
        prev_hash=last.hash if last else GENESIS,
        hash="",
    )
    event.hash = _chain_hash(event.prev_hash, event)
    event.key_id, event.mac = seal(event.hash)
    session.add(event)
    session.flush()
    return event


@dataclass(frozen=True)
class ChainBreak:
    case_type: str
    case_id: int
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"{self.case_type} n°{self.case_id}, événement {self.seq} : {self.reason}"


# What verification reads: plain rows, not ORM objects (much cheaper to load).
_CHAIN_FIELDS = (
    "case_type",
    "case_id",
    "seq",
    "at",
    "actor_kind",
    "actor_label",
    "actor_ref",
    "channel",
    "action",
    "payload",
    "payload_digest",
    "prev_hash",
    "hash",
    "key_id",
    "mac",
)
_CHAIN_COLUMNS = [getattr(AuditEvent, name) for name in _CHAIN_FIELDS]
# The same columns as the database stores them: the payload as its JSON text, the time as
# the text SQLite stores ('YYYY-MM-DD HH:MM:SS.ffffff', UTC; PostgreSQL writes it so too):
# no decoding, hashed as they are.
_PG_AT_TEXT = func.to_char(func.timezone("UTC", AuditEvent.at), "YYYY-MM-DD HH24:MI:SS.US")


def _stored_columns(dialect: str) -> list[Any]:
    columns: list[Any] = []
    for name, column in zip(_CHAIN_FIELDS, _CHAIN_COLUMNS, strict=True):
        if name == "payload":
            columns.append(cast(column, Text))
        elif name == "at" and dialect == "postgresql":
            columns.append(_PG_AT_TEXT)
        else:
            columns.append(type_coerce(column, String()))
    return columns


_HASH, _SEQ = _CHAIN_FIELDS.index("hash"), _CHAIN_FIELDS.index("seq")
_ACTION, _PAYLOAD = _CHAIN_FIELDS.index("action"), _CHAIN_FIELDS.index("payload")
_KEY_ID, _MAC = _CHAIN_FIELDS.index("key_id"), _CHAIN_FIELDS.index("mac")
NULL_PAYLOAD = "contenu effacé sans événement d'effacement (personal-data.erased)"


def _public_fault(row: Sequence[Any], prev: str, expected_seq: int) -> str | None:
    """Why this event (a row of `_CHAIN_FIELDS`, decoded or as stored) does not follow
    `prev` in the public chain (what anyone holding the events checks), or None."""
    (case_type, case_id, seq, at, kind, label, ref, channel, action, payload, payload_digest,
     prev_hash, event_hash) = row[:13]  # fmt: skip
    if seq != expected_seq:
        return f"numéro attendu {expected_seq} (événement manquant ?)"
    if prev_hash != prev:
        return "le lien vers l'événement précédent est rompu"
    if not _payload_intact(payload, payload_digest):
        return "le contenu ne correspond plus à son empreinte"
    actor = (kind, label, ref, channel)
    if event_hash != _link_hash(prev, case_type, case_id, seq, at, actor, action, payload_digest):
        return "l'empreinte de l'événement est fausse"
    return None


def _fault(row: Sequence[Any], prev: str, expected_seq: int, keys: dict[str, bytes]) -> str | None:
    """Why this event does not follow `prev` or does not carry its key's seal, or None."""
    public = _public_fault(row, prev, expected_seq)
    if public is not None:
        return public
    event_hash, event_key, mac = row[_HASH], row[_KEY_ID], row[_MAC]
    if event_key is None or mac is None:
        return "l'événement n'est pas scellé par la clé d'audit"
    key = keys.get(event_key)
    if key is None:
        return f"clé d'audit inconnue : {event_key}"
    if not hmac.compare_digest(mac, _mac(key, event_hash)):
        return "le sceau de l'événement ne correspond pas à la clé d'audit"
    return None


def _verify(
    rows: Iterable[Sequence[Any]], prev: str = GENESIS, expected_seq: int = 1
) -> ChainBreak | None:
    """Check rows of `_CHAIN_FIELDS` of one case, ordered by seq, continuing from `prev`."""
    keys = audit_keys().keys
    for row in rows:
        reason = _fault(row, prev, expected_seq, keys)
        if reason is not None:
            return ChainBreak(row[0], row[1], row[2], reason)
        prev = row[_HASH]
        expected_seq += 1
    return None


def _unexplained_null(rows: Iterable[Sequence[Any]]) -> ChainBreak | None:
    """The first NULL payload that no later erasure event accounts for, or None."""
    first: Sequence[Any] | None = None
    for row in rows:
        if row[_ACTION] == ERASED:
            first = None
        elif row[_PAYLOAD] is None and first is None:
            first = row
    return None if first is None else ChainBreak(first[0], first[1], first[2], NULL_PAYLOAD)


def verify_events(events: Iterable[AuditEvent]) -> ChainBreak | None:
    """Check one case's events (ordered by seq); the first broken link, or None."""
    rows = [tuple(getattr(e, name) for name in _CHAIN_FIELDS) for e in events]
    return _verify(rows) or _unexplained_null(rows)


def case_events(session: Session, case_type: str, case_id: int) -> list[AuditEvent]:
    return list(
        session.exec(
            select(AuditEvent)
            .where(AuditEvent.case_type == case_type, AuditEvent.case_id == case_id)
            .order_by(col(AuditEvent.seq))
        )
    )


class _IntactChains:
    """Chains this process found intact, row for row as the database returned them.

    A row equal to the one verified at the same place verifies the same way, so a chain is
    verified again only from its first row that differs: appended events, or a row altered
    since (then the check fails as it would from scratch). The history page verifies its
    case's chain on every read; a long chain thus costs a read and a comparison, not a
    SHA-256 per event. At most `limit` rows are kept, least recently verified dropped first.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._chains: OrderedDict[tuple[str, str, int], Sequence[Sequence[Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, int]) -> Sequence[Sequence[Any]]:
        with self._lock:
            return self._chains.get(key, ())

    def keep(self, key: tuple[str, str, int], rows: Sequence[Sequence[Any]]) -> None:
        with self._lock:
            self._chains.pop(key, None)
            if len(rows) > self.limit:
                return
            self._chains[key] = rows
            kept = sum(len(chain) for chain in self._chains.values())
            while kept > self.limit:
                kept -= len(self._chains.popitem(last=False)[1])


_INTACT = _IntactChains(limit=50_000)


@lru_cache(maxsize=4)
def _case_query(dialect: Dialect) -> tuple[str, dict[str, Any], tuple[str, ...] | None]:
    """The SQL reading one case's stored rows, its fixed parameters and their order (if
    positional)."""
    compiled = (
        sa_select(*_stored_columns(dialect.name))
        .where(
            col(AuditEvent.case_type) == bindparam("case_type"),
            col(AuditEvent.case_id) == bindparam("case_id"),
        )
        .order_by(col(AuditEvent.seq))
        .compile(dialect=dialect)
    )
    order = tuple(compiled.positiontup or ()) if compiled.positional else None
    return str(compiled), dict(compiled.params), order


def _case_rows(connection: Connection, case_type: str, case_id: int) -> list[tuple[Any, ...]]:
    """One case's rows as stored, in seq order, as the driver's plain tuples (a history
    read verifies a whole chain: SQLAlchemy's row objects would double the cost)."""
    sql, fixed, order = _case_query(connection.dialect)
    params = {**fixed, "case_type": case_type, "case_id": case_id}
    cursor = connection.connection.cursor()
    try:
        if order is None:
            cursor.execute(sql, params)
        else:
            cursor.execute(sql, tuple(params[name] for name in order))
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()


def verify_case(session: Session, case_type: str, case_id: int) -> ChainBreak | None:
    """Check one case's chain; the first broken link, or None."""
    connection = session.connection()
    rows = _case_rows(connection, case_type, case_id)
    key = (connection.engine.url.render_as_string(), case_type, case_id)
    intact = _INTACT.get(key)
    same = 0
    for row, kept in zip(rows, intact, strict=False):
        if row != kept:
            break
        same += 1
    if same < len(rows):
        prev, seq = (rows[same - 1][_HASH], rows[same - 1][_SEQ] + 1) if same else (GENESIS, 1)
        broken = _verify(rows[same:], prev, seq)
        if broken is not None:
            return broken
    erased = _unexplained_null(rows)
    if erased is not None:
        return erased
    _INTACT.keep(key, rows)
    return None


@dataclass(frozen=True)
class VerifyReport:
    chains: int
    events: int
    breaks: list[ChainBreak]

    @property
    def ok(self) -> bool:
        return not self.breaks


def verify_all(session: Session) -> VerifyReport:
    """Verify every chain; each broken chain reports its first broken link.

    The trail is read once in insertion order (a sequential read, not an index lookup per
    event), each event checked against the one before it in its chain. A chain that does
    not follow there is verified again on its own in seq order, which says where it breaks.
    """
    links: dict[tuple[str, int], tuple[str, int]] = {}
    suspects: set[tuple[str, int]] = set()
    nulls: set[tuple[str, int]] = set()  # chains with a NULL payload not yet erased
    keys = audit_keys().keys
    events = 0
    connection = session.connection()
    rows = connection.execute(
        sa_select(*_stored_columns(connection.dialect.name))
        .order_by(col(AuditEvent.id))
        .execution_options(yield_per=5000)
    )
    for row in rows:
        events += 1
        case = (row[0], row[1])
        if case in suspects:
            continue
        prev, seq = links.get(case, (GENESIS, 1))
        if _fault(row, prev, seq, keys) is None:
            links[case] = (row[_HASH], seq + 1)
        else:
            suspects.add(case)
        if row[_ACTION] == ERASED:
            nulls.discard(case)
        elif row[_PAYLOAD] is None:
            nulls.add(case)
    suspects |= nulls
    breaks = [
        broken
        for case_type, case_id in sorted(suspects)
        if (broken := verify_case(session, case_type, case_id)) is not None
    ]
    return VerifyReport(chains=len(links.keys() | suspects), events=events, breaks=breaks)


def redact_case(
    *,
    session: Session,
    case_type: CaseType,
    case_id: int,
    actor: Actor,
    reason: str,
    seqs: Sequence[int] | None = None,
) -> int:
    """Erase the payloads of a case (end of retention), or only of its events `seqs` (an
    application purged); the chain keeps verifying.

    The erasure is itself recorded, as the last event of the chain, without personal data.
    """
    query = update(AuditEvent).where(
        col(AuditEvent.case_type) == case_type.value,
        col(AuditEvent.case_id) == case_id,
        col(AuditEvent.payload).is_not(None),
    )
    if seqs is not None:
        query = query.where(col(AuditEvent.seq).in_(list(seqs)))
    result = session.execute(query.values(payload=None))
    erased = int(getattr(result, "rowcount", 0) or 0)
    record_event(
        session=session,
        case_type=case_type,
        case_id=case_id,
        action=ERASED,
        actor=actor,
        payload={"events_erased": erased, "reason": reason},
    )
    return erased


def seal_existing(connection: Connection) -> int:
    """Seal the events written before the trail was keyed (the migration that added the
    key calls this once, its triggers off): each chain is first verified as it was, so a
    chain already broken stops the migration instead of being sealed as if intact."""
    columns = _stored_columns(connection.dialect.name)[: _HASH + 1]
    rows = connection.execute(
        sa_select(col(AuditEvent.id), *columns).order_by(
            col(AuditEvent.case_type), col(AuditEvent.case_id), col(AuditEvent.seq)
        )
    ).all()
    keys = audit_keys()
    sealed: list[dict[str, Any]] = []
    case: tuple[str, int] | None = None
    prev, seq = GENESIS, 1
    for event_id, *row in rows:
        if (row[0], row[1]) != case:
            case, prev, seq = (row[0], row[1]), GENESIS, 1
        reason = _public_fault(row, prev, seq)
        if reason is not None:
            raise RuntimeError(
                f"Migration arrêtée : {ChainBreak(row[0], row[1], row[2], reason)} ; "
                "le journal doit être examiné avant d'être scellé."
            )
        key, mac = seal(row[_HASH], keys)
        sealed.append({"event_id": event_id, "key_id": key, "mac": mac})
        prev, seq = row[_HASH], seq + 1
    if sealed:
        connection.execute(
            update(AuditEvent)
            .where(col(AuditEvent.id) == bindparam("event_id"))
            .values(key_id=bindparam("key_id"), mac=bindparam("mac")),
            sealed,
        )
    return len(sealed)
