"""Without the [testing] extra (no cryptography): one line naming it, exit 1, no traceback,
from the command line and from the pytest fixture."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sqlalchemy_rds_iam.testing.extra import INSTALL_TESTING


def _why_not() -> str | None:
    from sqlalchemy_rds_iam.testing.servers import find_binaries

    if os.geteuid() != 0:
        return "the emulator's start needs root"
    if not find_binaries().available:
        return "no server of the emulator is installed (its own message comes first)"
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=str(_why_not()))

# An environment without cryptography: a meta path finder that refuses to find it.
BLOCK = textwrap.dedent("""
    import sys
    class NoCryptography:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] == "cryptography":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None
    sys.meta_path.insert(0, NoCryptography())
""")


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    return subprocess.run([sys.executable, "-c", BLOCK + code], capture_output=True,
                          text=True, timeout=300, cwd=cwd, env=env)


def test_emulator_start_says_which_extra(tmp_path: Path) -> None:
    state = tmp_path / "emulator"
    proc = _python(
        f"from sqlalchemy_rds_iam.cli import main; sys.exit(main(['emulator', 'start', "
        f"'--state-dir', {str(state)!r}]))",
        tmp_path,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert INSTALL_TESTING in line and "Traceback" not in proc.stderr
    assert not state.exists()  # refused before anything was made


def test_control_the_blocker_blocks() -> None:
    proc = subprocess.run([sys.executable, "-c", BLOCK + "import cryptography"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "No module named 'cryptography'" in proc.stderr


def test_the_pytest_fixture_says_which_extra(tmp_path: Path) -> None:
    (tmp_path / "test_uses_emulator.py").write_text(
        "def test_it(rds_iam_emulator):\n    pass\n"
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    state = tmp_path / "emulator"
    proc = _python(
        "import pytest; sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', "
        f"'-p', 'no:randomly', '--rds-iam-emulator-dir', {str(state)!r}, "
        "'test_uses_emulator.py']))",
        tmp_path,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert sum(INSTALL_TESTING in line for line in output.splitlines()) == 1
    assert "Traceback" not in output and "no tests ran" in output
    assert not state.exists()
