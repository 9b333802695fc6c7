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
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(" \
        "config_filenames=('pyproject.toml',), no_cache=True, no_logo=True))"
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert "Contracts: 3 kept, 0 broken." in run.stdout, run.stdout + run.stderr
    assert run.returncode == 0, run.stdout
