"""The import contracts of pyproject.toml ([tool.importlinter]) hold, in `pytest tests/unit` too.

Layers top to bottom, no runtime module importing ``testing/``, no import cycle: see the
contracts' comments. ``make lint`` runs the same check. In a child process: the linter
configures logging with ``disable_existing_loggers``, which would silence later tests' logs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold() -> None:
    # The console script beside this interpreter, reading pyproject.toml by default: its
    # Python API changed between import-linter 2.15 (Python 3.10) and 2.17.
    linter = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run([str(linter), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert "Contracts: 3 kept, 0 broken." in run.stdout, run.stdout + run.stderr
    assert run.returncode == 0, run.stdout
