"""Without root the emulator says so before touching anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sqlalchemy_rds_iam import RdsIamError
from sqlalchemy_rds_iam.testing.emulator import Emulator
from sqlalchemy_rds_iam.testing.errors import EmulatorNeedsRootError, ServerBinariesMissingError


def test_start_as_a_user_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    emulator = Emulator(str(tmp_path / "state"))
    try:
        with pytest.raises(EmulatorNeedsRootError, match=r"needs root.*/etc/pam\.d") as info:
            emulator.start()
    except ServerBinariesMissingError:
        pytest.skip("server binaries missing: the binaries check comes first")
    assert isinstance(info.value, RdsIamError)
    assert not (tmp_path / "state").exists()
