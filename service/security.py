"""Passwords (argon2) and secrets for the service."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer

from models.core.settings import get_settings

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# -- session cookie, CSRF and API tokens ------------------------------------------------

SESSION_COOKIE = "clsm_session"
SESSION_MAX_AGE = 12 * 3600


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(get_settings().secret_key, salt="clsm-session")


def new_session_cookie(user_id: int) -> str:
    """Signed value of the session cookie: the user and the CSRF token of the session."""
    return _serializer().dumps({"uid": user_id, "csrf": secrets.token_urlsafe(32)})


def read_session_cookie(value: str) -> tuple[int, str] | None:
    """(user id, CSRF token) of a valid, unexpired cookie, or None."""
    try:
        data = _serializer().loads(value, max_age=SESSION_MAX_AGE)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("uid"), int):
        return None
    return int(data["uid"]), str(data.get("csrf", ""))


def csrf_matches(expected: str, given: str) -> bool:
    return bool(expected) and hmac.compare_digest(expected.encode(), given.encode())


def new_api_token() -> str:
    return "clsm_" + secrets.token_urlsafe(32)


def api_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
