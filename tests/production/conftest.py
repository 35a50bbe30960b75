"""The production topology, for this session: the app database and Prefect's on
PostgreSQL, one Prefect server, two process workers on the pool `clsm`, each with its own
working directory, Prefect home and result storage, as on two machines.

The workers are supervised as in production (supervisor's autorestart, systemd's
Restart=always): a Prefect worker exits when the server stays unreachable ("Service
exceeded error threshold"), e.g. during a server restart, and is started again.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.support import env
from tests.support.postgres import PostgresServer
from tests.support.prefect_stack import PrefectStack, drain_prefect_clients, stop_process

MACHINES = ("machine-a", "machine-b")


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
