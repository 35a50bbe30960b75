"""Settings: a wrong value stops the program with one line naming the variable."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from models.core.settings import ConfigurationError, load_settings


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("CLSM_SMTP_PORT", "vingt-cinq", "CLSM_SMTP_PORT — doit être un nombre entier"),
        ("CLSM_SMTP_PORT", "70000", "CLSM_SMTP_PORT — doit être inférieur ou égal à 65535"),
        ("CLSM_TIMEZONE", "Europe/Poitiers", "CLSM_TIMEZONE — fuseau horaire inconnu"),
        ("CLSM_BASE_URL", "clsm.example", "CLSM_BASE_URL — doit commencer par http"),
        ("CLSM_SMTP_SECURITY", "ssl", "CLSM_SMTP_SECURITY — valeur non reconnue"),
        ("CLSM_DATABASE_URL", "mysql://x", "CLSM_DATABASE_URL — seules les URL"),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    assert expected in str(raised.value.code)


def test_production_requires_secrets_with_real_entropy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLSM_ENV", "production")
    with pytest.raises(ConfigurationError, match="CLSM_SECRET_KEY"):
        load_settings()
    for weak in (" " * 32, "x" * 40, "abababababababababababababababab", "mot de passe " * 3):
        monkeypatch.setenv("CLSM_SECRET_KEY", weak)
        with pytest.raises(ConfigurationError, match="CLSM_SECRET_KEY"):
            load_settings()
    strong = secrets.token_urlsafe(32)
    monkeypatch.setenv("CLSM_SECRET_KEY", strong)
    with pytest.raises(ConfigurationError, match="CLSM_AUDIT_KEY"):  # no key generated there
        load_settings()
    monkeypatch.setenv("CLSM_AUDIT_KEY", " " * 32)
    with pytest.raises(ConfigurationError, match="CLSM_AUDIT_KEY"):
        load_settings()
    monkeypatch.setenv("CLSM_AUDIT_KEY", secrets.token_urlsafe(32))
    assert load_settings().secret_key == strong


def test_the_command_line_stops_with_one_line() -> None:
    env = {**os.environ, "CLSM_SMTP_PORT": "abc"}
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Configuration invalide : CLSM_SMTP_PORT — doit être un nombre entier"
    ]
