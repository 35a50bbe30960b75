"""The keys that seal the audit trail: the current one seals new events, every key (by its
public id) verifies old ones; kept outside the database (`CLSM_AUDIT_KEY`, or a file under
var/ in development)."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from models.core.settings import Environment, get_settings


@dataclass(frozen=True)
class AuditKeys:
    """The key that seals new events, and every key (by id) that verifies old ones."""

    current_id: str
    keys: dict[str, bytes]

    @property
    def current(self) -> bytes:
        return self.keys[self.current_id]


def key_id(key: bytes) -> str:
    """A key's public name: stored beside each event so that keys can rotate."""
    return "k" + hashlib.sha256(b"clsm-audit-key:" + key).hexdigest()[:15]


def _development_key(var_dir: Path) -> str:
    """The key of a development or test installation: made once under var_dir (mode 0600)."""
    path = var_dir / "audit.key"
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


@lru_cache(maxsize=8)
def _keys(current: str, retired: str, var_dir: Path, production: bool) -> AuditKeys:
    if not current:
        if production:  # the settings refuse this already; never generate one there
            raise RuntimeError("CLSM_AUDIT_KEY est obligatoire en production")
        current = _development_key(var_dir)
    every = [current.encode()] + [k.strip().encode() for k in retired.split(",") if k.strip()]
    return AuditKeys(current_id=key_id(every[0]), keys={key_id(k): k for k in every})


def audit_keys() -> AuditKeys:
    settings = get_settings()
    return _keys(
        settings.audit_key,
        settings.audit_retired_keys,
        settings.var_dir.resolve(),
        settings.env is Environment.PRODUCTION,
    )


def _mac(key: bytes, event_hash: str) -> str:
    return hmac.digest(key, event_hash.encode(), "sha256").hex()


def seal(event_hash: str, keys: AuditKeys | None = None) -> tuple[str, str]:
    """(key_id, mac) of an event's hash under the current key."""
    keys = keys or audit_keys()
    return keys.current_id, _mac(keys.current, event_hash)
