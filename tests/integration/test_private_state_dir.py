"""A state directory below a parent the servers' accounts cannot enter (root's home, pytest's
``/tmp/pytest-of-root``, mode 0700) works: the files live where they can reach them, linked
from the directory asked for. It failed as "initdb: could not access directory"."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sqlalchemy_rds_iam.testing import Emulator
from sqlalchemy_rds_iam.testing.access import blocking_directory, placement
from tests.fakes import login

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="the emulator needs root"),
]


@pytest.fixture
def private_parent(tmp_path: Path) -> Path:
    parent = tmp_path / "home"
    parent.mkdir()
    parent.chmod(0o700)
    return parent


def test_the_blocking_directory_is_found(private_parent: Path) -> None:
    assert blocking_directory(private_parent / "emulator") is not None
    assert blocking_directory(Path("/tmp/x/y")) is None
    where, link = placement(private_parent / "emulator")
    assert link == private_parent / "emulator" and blocking_directory(where / "x") is None


def test_control_the_parent_really_is_out_of_reach(private_parent: Path) -> None:
    """The servers' account is refused by the kernel, not just by our permission reading."""
    import subprocess

    proc = subprocess.run(["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups",
                           "ls", str(private_parent)], capture_output=True, text=True)
    assert proc.returncode != 0 and "Permission denied" in proc.stderr


@pytest.mark.usefixtures("rds_iam_aws_env")
def test_start_below_a_private_parent_links_the_files(
    private_parent: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = private_parent / "emulator"
    emulator = Emulator(asked, servers=["postgresql", "mysql"])
    try:
        info = emulator.start()
        assert asked.is_symlink() and asked.resolve() == Path(info.state_dir)
        assert Emulator(asked).status() == info  # found again through the link
        # the new emulator has its own identities: sign as its primary
        for name, value in info.aws_env("primary").items():
            monkeypatch.setenv(name, value)
        assert login(info.postgresql.url(info.postgresql.users[1])) == info.postgresql.users[1]
        assert login(info.mysql.url(info.mysql.users[1])) == info.mysql.users[1]
    finally:
        Emulator(asked).stop()
    assert not asked.exists() and not asked.is_symlink()
    assert not Path(info.state_dir).exists()
