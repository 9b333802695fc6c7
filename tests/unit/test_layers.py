"""The import contracts of pyproject.toml ([tool.importlinter]) hold, in `pytest tests/unit` too.

Layers top to bottom, no runtime module importing ``testing/``, no import cycle: see the
contracts' comments. ``make lint`` runs the same check with the linter's own report.
"""

from __future__ import annotations

from pathlib import Path

import pytest

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_import_contracts_hold(capsys: pytest.CaptureFixture[str]) -> None:
    from importlinter.cli import lint_imports

    code = lint_imports(config_filename=str(PYPROJECT), no_cache=True, no_logo=True)
    report = capsys.readouterr().out
    assert "Contracts: 3 kept, 0 broken." in report, report
    assert code == 0, report
