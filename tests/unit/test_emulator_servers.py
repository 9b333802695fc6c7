"""Which servers the emulator runs: only what is installed, and tests skip what is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sqlalchemy_rds_iam.testing import servers
from sqlalchemy_rds_iam.testing.emulator import Emulator
from sqlalchemy_rds_iam.testing.errors import EmulatorError, ServerBinariesMissingError
from sqlalchemy_rds_iam.testing.info import EmulatorInfo
from sqlalchemy_rds_iam.testing.launch import plan_servers


@pytest.fixture
def no_pgbouncer(monkeypatch: pytest.MonkeyPatch) -> servers.Binaries:
    real = servers._which
    monkeypatch.setattr(servers, "_which", lambda *n: "" if "pgbouncer" in n else real(*n))
    binaries = servers.find_binaries()
    if {"postgresql", "mysql"} & set(binaries.missing):
        pytest.skip(f"this machine lacks more than PgBouncer: {binaries.missing}")
    return binaries


def test_pgbouncer_absent_is_skipped_with_a_note(no_pgbouncer: servers.Binaries) -> None:
    assert no_pgbouncer.available == ("postgresql", "mysql")
    names = plan_servers(no_pgbouncer, None)
    assert names == {
        "postgresql": None,
        "mysql": None,
        "pgbouncer": "not installed: pgbouncer (Debian: pgbouncer)",
    }


def test_pgbouncer_asked_for_but_absent_names_the_package(no_pgbouncer: servers.Binaries) -> None:
    with pytest.raises(ServerBinariesMissingError, match=r"apt-get install pgbouncer\)"):
        plan_servers(no_pgbouncer, ("postgresql", "pgbouncer"))


def test_servers_option_is_checked(tmp_path: Path) -> None:
    with pytest.raises(EmulatorError, match="unknown server"):
        Emulator(tmp_path, servers=["oracle"])
    binaries = servers.Binaries(Path("/x"), "m", "i", "c", "p", "auth_pam_v1")
    with pytest.raises(EmulatorError, match="PgBouncer fronts PostgreSQL"):
        plan_servers(binaries, ("mysql", "pgbouncer"))
    assert plan_servers(binaries, ("mysql",)) == {
        "postgresql": "left out (servers=)",
        "mysql": None,
        "pgbouncer": "left out (servers=)",
    }


def test_a_test_using_a_missing_server_is_skipped_naming_the_package(tmp_path: Path) -> None:
    info = EmulatorInfo(
        "/state", "us-east-1", "/ca.pem",
        skipped={"pgbouncer": "not installed: pgbouncer (Debian: pgbouncer)"},
    )
    test = tmp_path / "test_needs_pgbouncer.py"
    test.write_text(
        "from sqlalchemy_rds_iam.testing import EmulatorInfo\n"
        f"INFO = EmulatorInfo.from_json({info.to_json()!r})\n"
        "def test_via_property():\n    INFO.pgbouncer\n"
        "def test_via_dict():\n    INFO.servers['pgbouncer']\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(test)],
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 skipped" in proc.stdout
    assert "without pgbouncer: not installed: pgbouncer (Debian: pgbouncer)" in proc.stdout
