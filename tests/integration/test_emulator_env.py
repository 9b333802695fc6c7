"""``eval "$(sqlalchemy-rds-iam emulator env)"``, then code written for RDS connects unchanged:
the URLs carry ``?plugin=rds_iam`` alone (region and trust store from the hostname)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from sqlalchemy_rds_iam.testing.info import EmulatorInfo

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).with_name("sqlalchemy-rds-iam"))

SNIPPET = textwrap.dedent("""
    import os
    from sqlalchemy import create_engine, text

    for variable in ("RDS_IAM_POSTGRESQL_URL", "RDS_IAM_MYSQL_URL", "RDS_IAM_PROXY_URL"):
        engine = create_engine(os.environ[variable])
        with engine.connect() as conn:
            print(variable, conn.execute(text("SELECT current_user")).scalar())
""")


def test_eval_env_then_connect_unchanged(rds_iam_emulator: EmulatorInfo) -> None:
    info = rds_iam_emulator
    offsets = {name: info.servers[name].log_offset() for name in ("postgresql", "mysql")}
    script = (
        f'set -e; eval "$({CLI} emulator env --state-dir {info.state_dir})"; '
        f"exec {sys.executable} -c {_quote(SNIPPET)}"
    )
    # conftest left no AWS_* variables: only what `eval` sets can sign
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "RDS_IAM_POSTGRESQL_URL iamuser",
        "RDS_IAM_MYSQL_URL iamuser@%",
        "RDS_IAM_PROXY_URL iamuser",
    ]
    primary = info.identities["primary"].access_key_id
    for name, offset in offsets.items():
        verdicts = [v for v in info.servers[name].verifications(offset)
                    if v.access_key_id == primary]
        assert verdicts and all(v.ok for v in verdicts), name


def test_env_output_names_the_trust_store_override_and_no_options(
    rds_iam_emulator: EmulatorInfo,
) -> None:
    out = subprocess.run(
        [CLI, "emulator", "env", "--state-dir", rds_iam_emulator.state_dir],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    names = [line.split("=", 1)[0].removeprefix("export ") for line in out.splitlines()
             if line.startswith("export ")]
    assert names[:4] == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                         "AWS_REGION"]
    assert "SQLALCHEMY_RDS_IAM_TEST_TRUST_STORES" in names
    assert "unset AWS_SESSION_TOKEN AWS_SECURITY_TOKEN" in out.splitlines()
    urls = [line for line in out.splitlines() if "_URL=" in line]
    assert len(urls) == 3 and all(u.endswith("?plugin=rds_iam'") for u in urls)


def test_env_without_a_running_emulator_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([CLI, "emulator", "env", "--state-dir", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert "no emulator runs in" in line and "sqlalchemy-rds-iam emulator start" in line


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)
