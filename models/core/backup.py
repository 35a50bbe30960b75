"""Consistent snapshots of the app database, taken while the installation runs.

SQLite: the online backup API copies a consistent state even while other processes write
(WAL). PostgreSQL: `pg_dump` in its custom format (one consistent snapshot), restored with
`pg_restore --clean`. Prefect's own database is not needed to rebuild a case; see README.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
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
