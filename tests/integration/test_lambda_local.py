"""``python -m sqlalchemy_rds_iam.testing.lambda_local``: the Lambda runner from the package,
on a handler of your own in a directory of your own (what a pip user has)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from sqlalchemy_rds_iam.testing.info import EmulatorInfo

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("rds_iam_emulator")]

APP = textwrap.dedent("""
    import os
    from sqlalchemy import URL, create_engine, text

    engine = create_engine(URL.create(
        "mysql+pymysql", username=os.environ["DBUserName"], host=os.environ["DBEndPoint"],
        port=int(os.environ["DBPort"]), database=os.environ["DatabaseName"],
        query={"plugin": "rds_iam", "iam_ca_bundle": os.environ["DBCaBundle"]},
    ), pool_pre_ping=True)

    def handle(event, context):
        with engine.connect() as connection:
            return {"database": connection.scalar(text("SELECT DATABASE()")),
                    "request": context.aws_request_id}
""")


def _run(state_dir: str, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sqlalchemy_rds_iam.testing.lambda_local", "--state-dir",
         state_dir, *argv],
        capture_output=True, text=True, timeout=300, cwd=cwd,
    )


def test_your_own_handler_from_your_own_directory(
    rds_iam_emulator: EmulatorInfo, tmp_path: Path
) -> None:
    (tmp_path / "app.py").write_text(APP)
    proc = _run(rds_iam_emulator.state_dir, "--handler", "app.handle", "--server", "mysql",
                "--invocations", "6", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (report,) = json.loads(proc.stdout)
    assert report["ok"] and report["errors"] == [] and report["auth_failures"] == 0
    assert report["databases"] == [rds_iam_emulator.mysql.database]
    assert report["logins_verified"] >= 1 and report["logins_rejected"] == 0
    assert report["tokens_signed"] >= 2  # the freeze halfway made it sign anew


def test_a_missing_module_is_one_line(rds_iam_emulator: EmulatorInfo, tmp_path: Path) -> None:
    proc = _run(rds_iam_emulator.state_dir, "--function", "postgresql", cwd=tmp_path)
    assert proc.returncode == 2
    (line,) = proc.stderr.splitlines()
    assert "no postgresql_function.py in" in line and "--dir" in line
