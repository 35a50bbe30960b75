"""No link token is ever written in a log: the access log shows /r/<redacted>."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from models.core import db
from tests.support.env import ROOT, free_port
from tests.support.service_kit import VALID_ANSWER, build_world, new_link


def test_the_access_log_never_holds_a_token(db_url: str, tmp_path: Path) -> None:
    with db.session_scope() as session:
        world = build_world(session)
        good = [new_link(session, world) for _ in range(3)]
    unknown = "jeton-inconnu-0123456789abcdef"
    port = free_port()
    log = tmp_path / "service.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory",
             "tests.support.service_app:create_test_app", "--port", str(port),
             "--log-level", "info"],
            cwd=ROOT, env={**os.environ, "CLSM_DATABASE_URL": db_url},
            stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(f"{base}/health", timeout=1)
                    break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.2)
            with httpx.Client(base_url=base) as client:
                assert client.get(f"/r/{good[0]}").status_code == 200
                assert client.post(f"/r/{good[0]}", data=VALID_ANSWER).status_code == 200
                assert client.get(f"/r/{good[0]}?utm=mail").status_code == 410
                assert client.post(f"/r/{good[1]}", data={"x": "y"}).status_code == 422
                assert client.post(f"/r/{good[2]}/renew").status_code == 200
                assert client.get(f"/r/{unknown}").status_code == 404
        finally:
            process.terminate()
            process.wait(20)
    written = log.read_text()
    assert written.count("/r/<redacted>") >= 6, written
    for token in (*good, unknown):
        assert token not in written
