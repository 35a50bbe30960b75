"""The layout holds: import contracts kept, models and migrations in step, modules small."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from models.catalogue import metadata
from tests.support.env import ROOT

LINT_IMPORTS = str(Path(ROOT) / ".venv" / "bin" / "lint-imports")


def _lint_imports(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LINT_IMPORTS, "--no-logo", "--no-cache", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_import_contract_is_kept() -> None:
    result = _lint_imports(Path(ROOT) / "pyproject.toml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_the_contracts_see_real_imports(tmp_path: Path) -> None:
    """A contract that the code breaks is reported broken: the checker reads our imports."""
    config = tmp_path / "broken.toml"
    config.write_text(
        '[tool.importlinter]\nroot_packages = ["models", "service"]\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "the service may not read the catalogue"\ntype = "forbidden"\n'
        'source_modules = ["service"]\nforbidden_modules = ["models.catalogue"]\n',
        encoding="utf-8",
    )
    result = _lint_imports(config)
    assert result.returncode == 1
    assert "BROKEN" in result.stdout


def test_models_and_migrations_agree(migrated_template: Path) -> None:
    """Autogenerate finds nothing to do: every model change came with its revision."""
    engine = create_engine(f"sqlite:///{migrated_template}")
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"render_as_batch": True})
        differences = compare_metadata(context, metadata)
    engine.dispose()
    assert differences == []


@pytest.mark.parametrize("package", ["models", "flows", "notifications", "service"])
def test_no_module_over_600_lines_but_pure_rules(package: str) -> None:
    too_long = {
        str(path.relative_to(ROOT)): n
        for path in (Path(ROOT) / package).rglob("*.py")
        if path.name != "rules.py"
        and (n := len(path.read_text(encoding="utf-8").splitlines())) > 600
    }
    assert too_long == {}
