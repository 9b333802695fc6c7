"""A plugin engine's first real connect imports only the pinned modules (tests/pinned_imports.py).

The unit test stops at the driver call; here the login happens, against the emulator's
PostgreSQL (which verifies the token), after the same app has logged in with a stored password.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlalchemy_rds_iam.testing.info import EmulatorInfo
from tests.pinned_imports import DIFFLIB_ON_THE_CONNECT_PATH, drift, plugin_imports, report

pytestmark = [pytest.mark.integration]

_FIRST_QUERY = """
with engine.connect() as conn:
    assert conn.execute(sa.text("SELECT current_user")).scalar() == {user!r}
"""


def _apps(info: EmulatorInfo) -> tuple[str, str]:
    server = info.postgresql
    baseline = (f"engine = sa.create_engine({server.password_url('psycopg2')!r})"
                + _FIRST_QUERY.format(user=server.password_user))
    plugin = (f"engine = sa.create_engine({server.url('iamuser', 'psycopg2')!r})"
              + _FIRST_QUERY.format(user="iamuser"))
    return baseline, plugin


def test_a_first_login_imports_only_the_pinned_modules(
    rds_iam_emulator: EmulatorInfo, rds_iam_aws_env: dict[str, str]
) -> None:
    env = {**rds_iam_aws_env, "AWS_CONFIG_FILE": "/dev/null",
           "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
    problems = drift(plugin_imports(*_apps(rds_iam_emulator), env))
    assert not problems, report(problems)


def test_the_pin_reports_difflib_on_a_real_connect_path(
    rds_iam_emulator: EmulatorInfo, rds_iam_aws_env: dict[str, str], tmp_path: Path
) -> None:
    site = tmp_path / "sitecustomize.py"
    site.write_text(DIFFLIB_ON_THE_CONNECT_PATH)
    env = {**rds_iam_aws_env, "AWS_CONFIG_FILE": "/dev/null",
           "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "PYTHONPATH": str(tmp_path)}
    assert drift(plugin_imports(*_apps(rds_iam_emulator), env)) == [
        "other modules added to the connect path: difflib"]
