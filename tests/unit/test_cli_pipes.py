"""A reader that stops early (``sqlalchemy-rds-iam emulator status | head -2``): no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sqlalchemy_rds_iam.pipes import SIGPIPE_EXIT, survives_closed_stdout

CLI = str(Path(sys.executable).with_name("sqlalchemy-rds-iam"))


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["ca", "path"], SIGPIPE_EXIT),
        (["emulator", "status", "--state-dir", "/nonexistent/emulator"], SIGPIPE_EXIT),
        (["emulator", "env", "--state-dir", "/nonexistent/emulator"], 1),  # error: stderr
        # argparse writes help and version itself; Python 3.11 ignores the failed write
        # there (exit 0), 3.10 lets it reach the guard (141): quiet either way
        (["--help"], None),
        (["--version"], None),
        (["emulator", "--help"], None),
    ],
)
def test_a_closed_stdout_ends_the_command_quietly(argv: list[str], code: int | None) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write: EPIPE, every time
    try:
        proc = subprocess.run([CLI, *argv], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=60)
    finally:
        os.close(write_end)
    assert proc.returncode == code or (code is None and proc.returncode in (0, SIGPIPE_EXIT))
    if code == 1:
        assert proc.stderr.count("\n") == 1 and "no emulator runs" in proc.stderr
    else:
        assert proc.stderr == ""


def test_control_the_same_command_with_a_reader_prints() -> None:
    proc = subprocess.run([CLI, "ca", "path"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "rds-aws" in proc.stdout


def test_a_shell_pipeline_whose_reader_is_gone_sees_no_traceback() -> None:
    # `true` exits at once, long before the command has started up and written
    proc = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {CLI} ca path | true; echo $?"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.stdout.strip() == str(SIGPIPE_EXIT)
    assert proc.stderr == ""


def test_the_guard_passes_exit_codes_and_other_errors_through() -> None:
    @survives_closed_stdout
    def ok(argv: object = None) -> int:
        return 3

    @survives_closed_stdout
    def broken(argv: object = None) -> int:
        raise BrokenPipeError

    @survives_closed_stdout
    def failing(argv: object = None) -> int:
        raise KeyError("x")

    assert ok() == 3
    assert broken() == SIGPIPE_EXIT
    with pytest.raises(KeyError):
        failing()
