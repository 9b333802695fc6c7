"""The house's shape: pyproject.toml's import contracts hold, and no runtime module is too long.

Layers top to bottom, no runtime module importing ``testing/``, no import cycle: see the
contracts' comments. ``make lint`` runs the same check. In a child process: the linter
configures logging with ``disable_existing_loggers``, which would silence later tests' logs.
Every runtime module (``sqlalchemy_rds_iam/`` outside ``testing/``) has at most 400 lines.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold() -> None:
    # The console script beside this interpreter, reading pyproject.toml by default: its
    # Python API changed between import-linter 2.15 (Python 3.10) and 2.17.
    linter = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run([str(linter), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert "Contracts: 3 kept, 0 broken." in run.stdout, run.stdout + run.stderr
    assert run.returncode == 0, run.stdout


#: The most lines a runtime module may have: past it, a module holds more than one concern.
MAX_LINES = 400
PACKAGE = ROOT / "sqlalchemy_rds_iam"
#: Runtime modules over the limit that another branch is splitting (the mark goes at merge).
def _runtime_modules() -> list[str]:
    paths = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py"))
    return [path for path in paths
            if not path.startswith("testing/")]  # the emulator: a test tool, not the runtime


@pytest.mark.parametrize("path", _runtime_modules())
def test_every_runtime_module_is_at_most_400_lines(path: str) -> None:
    lines = (PACKAGE / path).read_text().count("\n")
    assert lines <= MAX_LINES, f"sqlalchemy_rds_iam/{path} has {lines} lines: split it by concern"
