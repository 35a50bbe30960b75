"""Signed checkpoints of every audit chain head, written outside the database.

A checkpoint is a JSON file under CLSM_CHECKPOINT_DIR: the time, each chain's last event
(seq and public hash), the public key and an Ed25519 signature of the rest. The HMAC key
stops a database writer; a checkpoint, once copied away from the machine, also stops the
key holder: an event rewritten after it no longer has the hash signed there. An exported
bundle (events + checkpoints + public key) is verified offline, without the audit key.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from models.core import audit
from models.core.audit import AuditEvent, ChainBreak, canonical
from models.core.settings import get_settings

FORMAT = "clsm-audit-checkpoint/1"
BUNDLE_FORMAT = "clsm-audit-bundle/1"


def _private_file(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(content)


def signing_key() -> Ed25519PrivateKey:
    """The installation's signing key (PEM file), made on first use."""
    path = get_settings().checkpoint_signing_key
    if not path.exists():
        fresh = Ed25519PrivateKey.generate()
        pem = fresh.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        with contextlib.suppress(FileExistsError):  # another process made it first
            _private_file(path, pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise RuntimeError(f"{path} : ce n'est pas une clé Ed25519")
    return key


def public_hex(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        .hex()
    )


def chain_heads(session: Session) -> dict[str, list[Any]]:
    """Each chain's last event: {"saisine:3": [seq, hash]}."""
    last = (
        sa_select(
            col(AuditEvent.case_type),
            col(AuditEvent.case_id),
            func.max(col(AuditEvent.seq)).label("seq"),
        )
        .group_by(col(AuditEvent.case_type), col(AuditEvent.case_id))
        .subquery()
    )
    rows = session.execute(
        sa_select(
            col(AuditEvent.case_type),
            col(AuditEvent.case_id),
            col(AuditEvent.seq),
            col(AuditEvent.hash),
        ).join(
            last,
            (col(AuditEvent.case_type) == last.c.case_type)
            & (col(AuditEvent.case_id) == last.c.case_id)
            & (col(AuditEvent.seq) == last.c.seq),
        )
    ).all()
    return {f"{t}:{i}": [seq, h] for t, i, seq, h in sorted(rows)}


def _signed_part(document: dict[str, Any]) -> bytes:
    return canonical({k: v for k, v in document.items() if k != "signature"}).encode()


def load_checkpoints(directory: Path | None = None) -> list[dict[str, Any]]:
    """Every checkpoint file, oldest first (a file that is not one is reported by verify)."""
    directory = directory or get_settings().checkpoints_dir
    documents = []
    for path in sorted(directory.glob("checkpoint-*.json")):
        try:
            document = json.loads(path.read_text())
        except ValueError:
            document = {"format": "illisible"}
        document["_file"] = path.name
        documents.append(document)
    return documents


def write_checkpoint(session: Session, *, now: datetime | None = None) -> Path | None:
    """Sign the current chain heads into a new file; None if nothing changed since the last."""
    heads = chain_heads(session)
    directory = get_settings().checkpoints_dir
    previous = load_checkpoints(directory)
    if not heads or (previous and previous[-1].get("heads") == heads):
        return None
    key = signing_key()
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    document: dict[str, Any] = {
        "format": FORMAT,
        "at": moment.isoformat(timespec="microseconds"),
        "heads": heads,
        "public_key": public_hex(key),
    }
    document["signature"] = key.sign(_signed_part(document)).hex()
    path = directory / f"checkpoint-{moment:%Y%m%dT%H%M%S%fZ}.json"
    _private_file(path, json.dumps(document, indent=1).encode())
    return path


def signature_fault(document: dict[str, Any], public_key: str) -> str | None:
    """Why this checkpoint is not one signed by `public_key` (hex), or None."""
    name = document.get("_file", "?")
    if document.get("format") != FORMAT:
        return f"point de contrôle {name} illisible"
    if document.get("public_key") != public_key:
        return f"point de contrôle {name} signé par une autre clé ({document.get('public_key')})"
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key)).verify(
            bytes.fromhex(str(document.get("signature", ""))),
            _signed_part({k: v for k, v in document.items() if k != "_file"}),
        )
    except (InvalidSignature, ValueError):
        return f"point de contrôle {name} : signature invalide"
    return None


@dataclass(frozen=True)
class CheckpointReport:
    checkpoints: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def compare_heads(
    documents: Sequence[dict[str, Any]], case: str, hashes: dict[int, str]
) -> str | None:
    """The first checkpointed head of `case` that its events (seq → hash) no longer have."""
    matched = 0
    for document in documents:
        head = document["heads"].get(case)
        if head is None:
            continue
        seq, signed = int(head[0]), head[1]
        if hashes.get(seq) != signed:
            case_type, case_id = case.split(":")
            where = ChainBreak(case_type, int(case_id), seq, "")
            missing = "manquant" if seq not in hashes else "différent"
            return (
                f"{str(where).removesuffix(' : ')} : {missing} de la tête signée le "
                f"{document['at'][:19]} ({document['_file']}) ; un événement entre le "
                f"n°{matched + 1} et le n°{seq} a été réécrit"
            )
        matched = max(matched, seq)
    return None


def verify_checkpoints(session: Session) -> CheckpointReport:
    """Check every checkpoint's signature and that the database still has each signed head."""
    documents = load_checkpoints()
    if not documents:
        return CheckpointReport(0, [])
    public = public_hex(signing_key())
    problems = [fault for d in documents if (fault := signature_fault(d, public)) is not None]
    valid = [d for d in documents if signature_fault(d, public) is None]
    wanted: dict[str, set[int]] = {}
    for document in valid:
        for case, (seq, _) in document["heads"].items():
            wanted.setdefault(case, set()).add(int(seq))
    for case in sorted(wanted):
        case_type, case_id = case.split(":")
        stored = session.execute(
            sa_select(col(AuditEvent.seq), col(AuditEvent.hash)).where(
                col(AuditEvent.case_type) == case_type,
                col(AuditEvent.case_id) == int(case_id),
                col(AuditEvent.seq).in_(sorted(wanted[case])),
            )
        ).all()
        problem = compare_heads(valid, case, dict(stored))  # type: ignore[arg-type]
        if problem is not None:
            problems.append(problem)
    return CheckpointReport(len(documents), problems)


# -- bundles ---------------------------------------------------------------------------------
def export_bundle(session: Session, case_type: str, case_id: int) -> dict[str, Any]:
    """One case's events (as stored), the checkpoints naming it and the public key; a
    checkpoint is written first so that every event is covered."""
    write_checkpoint(session)
    connection = session.connection()
    columns = audit._stored_columns(connection.dialect.name)
    rows = connection.execute(
        sa_select(*columns)
        .where(col(AuditEvent.case_type) == case_type, col(AuditEvent.case_id) == case_id)
        .order_by(col(AuditEvent.seq))
    ).all()
    case = f"{case_type}:{case_id}"
    events = []
    for row in rows:
        event = dict(zip(audit._CHAIN_FIELDS, row, strict=True))
        event["payload"] = None if event["payload"] is None else json.loads(event["payload"])
        events.append(event)
    checkpoints = [
        {k: v for k, v in d.items() if k != "_file"} | {"_file": d["_file"]}
        for d in load_checkpoints()
        if case in d.get("heads", {})
    ]
    return {
        "format": BUNDLE_FORMAT,
        "case": case,
        "events": events,
        "checkpoints": checkpoints,
        "public_key": public_hex(signing_key()),
    }


def verify_bundle(bundle: dict[str, Any], public_key: str | None = None) -> list[str]:
    """Everything wrong with a bundle, checked without database nor audit key; [] if sound."""
    if bundle.get("format") != BUNDLE_FORMAT:
        return ["ce fichier n'est pas un paquet d'audit CLSM"]
    key = public_key or str(bundle.get("public_key", ""))
    problems: list[str] = []
    if public_key and bundle.get("public_key") != public_key:
        problems.append("le paquet donne une autre clé publique que celle attendue")
    events: list[dict[str, Any]] = bundle.get("events", [])
    rows = [tuple(e.get(name) for name in audit._CHAIN_FIELDS) for e in events]
    broken = _public_chain(rows)
    if broken is not None:
        problems.append(f"chaîne rompue — {broken}")
    documents = bundle.get("checkpoints", [])
    problems += [f for d in documents if (f := signature_fault(d, key)) is not None]
    valid = [d for d in documents if signature_fault(d, key) is None]
    case = str(bundle.get("case"))
    hashes = {int(e["seq"]): str(e["hash"]) for e in events}
    mismatch = compare_heads(valid, case, hashes)
    if mismatch is not None:
        problems.append(mismatch)
    covered = max((int(d["heads"][case][0]) for d in valid), default=0)
    if events and covered < len(events):
        problems.append(
            f"les événements après le n°{covered} ne sont couverts par aucun point de contrôle"
        )
    return problems


def _public_chain(rows: Iterable[Sequence[Any]]) -> ChainBreak | None:
    prev, seq = audit.GENESIS, 1
    listed = list(rows)
    for row in listed:
        reason = audit._public_fault(row, prev, seq)
        if reason is not None:
            return ChainBreak(row[0], row[1], row[2], reason)
        prev, seq = row[audit._HASH], seq + 1
    return audit._unexplained_null(listed)
