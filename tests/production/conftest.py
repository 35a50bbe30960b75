"""The production topology, for this session: the app database and Prefect's on
PostgreSQL, one Prefect server, two process workers on the pool `clsm`, each with its own
working directory, Prefect home and result storage, as on two machines; mail goes to an
SMTP relay that requires STARTTLS and authentication (a self-signed certificate the
installation trusts through CLSM_SMTP_CA_FILE); the service runs as two processes
(`clsm serve`, CLSM_ENV=production) on two ports, sharing sessions and limits through the
app database.

The workers are supervised as in production (supervisor's autorestart, systemd's
Restart=always): a Prefect worker exits when the server stays unreachable ("Service
exceeded error threshold"), e.g. during a server restart, and is started again.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from models.core.settings import get_settings
from tests.support import env
from tests.support.postgres import PostgresServer
from tests.support.prefect_stack import PrefectStack, drain_prefect_clients, stop_process
from tests.support.smtp import SmtpServer, self_signed_certificate

MACHINES = ("machine-a", "machine-b")
# real secrets, not the development ones: the service processes run with CLSM_ENV=production;
# the workers' runs and this process hold the same ones (one audit key for every writer)
PRODUCTION_SECRETS = {
    "CLSM_SECRET_KEY": secrets.token_urlsafe(48),
    "CLSM_AUDIT_KEY": secrets.token_urlsafe(48),
}
SMTP_LOGIN = "clsm-relais"
SMTP_PASSWORD = secrets.token_urlsafe(18)


@dataclass
class Topology:
    stack: PrefectStack
    prefect_database_url: str
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    restarts: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)

    def supervise(self) -> None:
        """Start again every worker that exited, every second, until the session ends."""
        while not self.stopping.wait(1):
            for machine, worker in list(self.workers.items()):
                if worker.poll() is not None:
                    self.restarts += 1
                    self.start_worker(machine)

    def start_worker(self, machine: str) -> None:
        home = env.TMP / machine
        (home / "work").mkdir(parents=True, exist_ok=True)
        self.workers[machine] = self.stack.spawn_worker(
            f"worker-{machine}",
            cwd=home / "work",
            env={
                "PREFECT_HOME": str(home / "prefect"),
                "PREFECT_LOCAL_STORAGE_PATH": str(home / "storage"),
            },
        )


@pytest.fixture(scope="session")
def topology(postgres_server: PostgresServer) -> Iterator[Topology]:
    """Prefect's server on PostgreSQL (asyncpg, installed with prefect) and two workers."""
    url = postgres_server.create_database().replace("+psycopg", "+asyncpg", 1)
    os.environ["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = url
    os.environ.update(PRODUCTION_SECRETS)
    get_settings.cache_clear()
    stack = PrefectStack()
    topology = Topology(stack, url)
    stack.start_server()
    try:
        stack.deploy()
        stack.deploy_file(env.ROOT / "tests" / "support" / "lost.prefect.yaml")
        for machine in MACHINES:
            topology.start_worker(machine)
        supervisor = threading.Thread(target=topology.supervise, daemon=True)
        supervisor.start()
        yield topology
    finally:
        topology.stopping.set()
        for worker in topology.workers.values():
            stop_process(worker)
        drain_prefect_clients()
        stack.stop_server()


@pytest.fixture(scope="session")
def smtp_tls() -> tuple[Path, Path]:
    """The relay's self-signed certificate (its own CA) and key."""
    return self_signed_certificate(env.TMP / "smtp-tls")


def mail_env(server: SmtpServer) -> dict[str, str]:
    """The settings every sending process holds: the relay, STARTTLS, its CA, the login."""
    assert server.starttls is not None
    return {
        "CLSM_SMTP_HOST": server.host,
        "CLSM_SMTP_PORT": str(server.port),
        "CLSM_SMTP_SECURITY": "starttls",
        "CLSM_SMTP_CA_FILE": str(server.starttls[0]),
        "CLSM_SMTP_USERNAME": SMTP_LOGIN,
        "CLSM_SMTP_PASSWORD": SMTP_PASSWORD,
    }


@pytest.fixture
def smtp_server(
    smtp_tls: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[SmtpServer]:
    """In this session the relay requires STARTTLS, then authentication (over TLS only):
    a mail it accepted came through both. This process's settings point at it."""
    with SmtpServer(starttls=smtp_tls, auth=(SMTP_LOGIN, SMTP_PASSWORD)) as server:
        for key, value in mail_env(server).items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        yield server
    get_settings.cache_clear()


@dataclass
class Services:
    """Two `clsm serve` processes on two ports, one app database."""

    urls: list[str]
    processes: list[subprocess.Popen[bytes]]


def _wait_answers(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/login", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"service {url} did not answer:\n{log.read_text()[-3000:]}")


@pytest.fixture
def services(pg_url: str, smtp_server: SmtpServer) -> Iterator[Services]:
    """Both service processes behind one public address (the reverse proxy's, here the
    first port): links in mails name it, and either process answers them."""
    ports = [env.free_port(), env.free_port()]
    base = f"http://127.0.0.1:{ports[0]}"
    process_env = {
        **os.environ,
        **PRODUCTION_SECRETS,
        **mail_env(smtp_server),
        "CLSM_ENV": "production",
        "CLSM_DATABASE_URL": pg_url,
        "CLSM_BASE_URL": base,
    }
    processes = []
    (env.TMP / "logs").mkdir(parents=True, exist_ok=True)
    try:
        for port in ports:
            log = env.TMP / "logs" / f"service-{port}.log"
            processes.append(
                subprocess.Popen(
                    [str(env.ROOT / ".venv" / "bin" / "clsm"), "serve", "--port", str(port)],
                    stdout=log.open("ab"),
                    stderr=subprocess.STDOUT,
                    env=process_env,
                    cwd=env.ROOT,
                    start_new_session=True,
                )
            )
            _wait_answers(f"http://127.0.0.1:{port}", processes[-1], log)
        yield Services([f"http://127.0.0.1:{port}" for port in ports], processes)
    finally:
        for process in processes:
            stop_process(process)
