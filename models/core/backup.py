"""Consistent snapshots of the installation's databases, taken while it runs.

SQLite: the online backup API copies a consistent state even while other processes write
(WAL). PostgreSQL: `pg_dump` in its custom format (one consistent snapshot), restored with
`pg_restore --clean`.

`backup_installation` writes one archive (tar) holding the app database and Prefect's,
Prefect's taken first: a run that moves on between the two snapshots is found, after a
restore, behind the app database (the source of truth), which re-drives it; the other
order could leave a run waiting on a key the app database never knew. A snapshot of the
app database alone (the format before this archive) still restores.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise ValueError("a file database is needed")
    return Path(database)


def _pg_args(url: str) -> list[str]:
    parsed = make_url(url).set(drivername="postgresql")
    return ["--dbname", parsed.render_as_string(hide_password=False)]


def backup(url: str, destination: Path) -> Path:
    """Write a consistent snapshot of the database at url to destination."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("sqlite"):
        source = sqlite3.connect(_sqlite_path(url))
        target = sqlite3.connect(destination)
        try:
            with target:
                source.backup(target)
        finally:
            target.close()
            source.close()
        return destination
    pg_dump = shutil.which("pg_dump") or "pg_dump"
    subprocess.run(
        [pg_dump, "--format=custom", "--file", str(destination), *_pg_args(url)],
        check=True,
        capture_output=True,
    )
    return destination


def restore(url: str, snapshot: Path) -> None:
    """Replace the database at url by the snapshot (stop the installation first)."""
    if not snapshot.exists():
        raise FileNotFoundError(snapshot)
    if url.startswith("sqlite"):
        target_path = _sqlite_path(url)
        target_path.parent.mkdir(parents=True, exist_ok=True)
        source = sqlite3.connect(snapshot)
        target = sqlite3.connect(target_path)
        try:
            with target:
                source.backup(target)
        finally:
            target.close()
            source.close()
        return
    pg_restore = shutil.which("pg_restore") or "pg_restore"
    subprocess.run(
        [pg_restore, "--clean", "--if-exists", "--no-owner", *_pg_args(url), str(snapshot)],
        check=True,
        capture_output=True,
    )


PARTS = ("prefect", "app")  # the order of the snapshots (see the module docstring)


def _file_name(part: str, url: str) -> str:
    return f"{part}.db" if url.startswith("sqlite") else f"{part}.pgdump"


def backup_installation(urls: dict[str, str], destination: Path) -> Path:
    """One archive with a snapshot of each database of `urls` ({"app": ..., "prefect": ...})."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent) as work:
        names = {}
        for part in [p for p in PARTS if p in urls]:
            names[part] = _file_name(part, urls[part])
            backup(urls[part], Path(work) / names[part])
        manifest = {
            "taken_at": datetime.now(UTC).isoformat(),
            "parts": {p: {"file": n, "dialect": urls[p].split(":")[0]} for p, n in names.items()},
        }
        (Path(work) / "manifest.json").write_text(json.dumps(manifest, indent=2))
        partial = destination.with_name(destination.name + ".partial")
        with tarfile.open(partial, "w") as archive:
            for name in ["manifest.json", *names.values()]:
                archive.add(Path(work) / name, arcname=name)
        partial.replace(destination)  # never a half-written backup under the final name
    return destination


def restore_installation(urls: dict[str, str], snapshot: Path) -> list[str]:
    """Restore each database of `urls` found in the snapshot; returns the parts restored.

    The installation is stopped (Prefect server, workers, service, heartbeat).
    """
    if not snapshot.exists():
        raise FileNotFoundError(snapshot)
    if not tarfile.is_tarfile(snapshot):  # a snapshot of the app database alone
        restore(urls["app"], snapshot)
        return ["app"]
    with tempfile.TemporaryDirectory() as work, tarfile.open(snapshot) as archive:
        archive.extractall(work, filter="data")
        manifest = json.loads((Path(work) / "manifest.json").read_text())
        restored = []
        for part, entry in manifest["parts"].items():
            if part in urls:
                restore(urls[part], Path(work) / entry["file"])
                restored.append(part)
    return restored
