"""Environment of the test session, set before anything imports prefect or our settings."""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TMP = Path(tempfile.mkdtemp(prefix="clsm-tests-"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


PREFECT_PORT = free_port()
PREFECT_API_URL = f"http://127.0.0.1:{PREFECT_PORT}/api"
# the locked Prefect server's secret: the test session's clients hold it, people never do
PREFECT_AUTH = f"clsm:{secrets.token_urlsafe(24)}"

BASE_ENV = {
    "CLSM_ENV": "test",
    "CLSM_VAR_DIR": str(TMP / "var"),
    "CLSM_PREFECT_API_URL": PREFECT_API_URL,
    "CLSM_BASE_URL": "http://127.0.0.1:8765",
    "CLSM_PROJECT_DIR": str(ROOT),
    # no test may reach a mail server it did not start itself (e.g. a developer's sink)
    "CLSM_SMTP_PORT": str(free_port()),
    "PREFECT_HOME": str(TMP / "prefect"),
    "CLSM_PREFECT_AUTH_STRING": PREFECT_AUTH,
    "PREFECT_API_URL": PREFECT_API_URL,
    "PREFECT_API_AUTH_STRING": PREFECT_AUTH,
    "PREFECT_SERVER_API_AUTH_STRING": PREFECT_AUTH,
    "PREFECT_SERVER_API_CORS_ALLOWED_ORIGINS": "http://127.0.0.1:8765",
    "PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED": "true",
    "PREFECT_UI_SERVE_BASE": "/prefect",
    "PREFECT_SERVER_API_HOST": "127.0.0.1",
    "PREFECT_SERVER_API_PORT": str(PREFECT_PORT),
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
    "PREFECT_LOCAL_STORAGE_PATH": str(TMP / "prefect" / "storage"),
    "PREFECT_WORKER_QUERY_SECONDS": "1",
    # heartbeats of running flow runs (Prefect's minimum); a run silent for 90 s (the default
    # CLSM_SILENT_RUN_SECONDS: shorter windows crash live runs on a loaded machine) is CRASHED
    "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
    "PREFECT_WORKER_PREFETCH_SECONDS": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.5",
    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    "PREFECT_SERVER_DATABASE_CONNECTION_URL": (
        f"sqlite+aiosqlite:///{TMP / 'prefect' / 'prefect.db'}"
    ),
}


def apply() -> None:
    for key in [k for k in os.environ if k.startswith(("CLSM_", "PREFECT_"))]:
        del os.environ[key]
    os.environ.update(BASE_ENV)
