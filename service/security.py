"""Passwords (argon2) and secrets for the service."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

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
# The login form's own CSRF token (double submit: cookie and hidden field), so that no other
# site can log a browser into an account of its choosing (login CSRF).
LOGIN_COOKIE = "clsm_login"

# Checked when the account does not exist, so that a login takes the same time either way
# (the time of an argon2 verification would otherwise tell which addresses have an account).
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def spend_password_time(password: str) -> None:
    verify_password(_DUMMY_HASH, password)


def new_login_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_matches(expected: str, given: str) -> bool:
    return bool(expected) and hmac.compare_digest(expected.encode(), given.encode())


def new_api_token() -> str:
    return "clsm_" + secrets.token_urlsafe(32)


def api_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
