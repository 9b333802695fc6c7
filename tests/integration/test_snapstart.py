"""The SnapStart simulation (``testing.snapstart``) against the emulator, per driver.

init (engine, connect, query) -> snapshot (before hooks) -> restore 30 minutes later with
new container credentials, init's identity retired and its sessions ended -> after hooks ->
first query. Each runs in a fresh process, so that "botocore is not imported by the
restore" means something (this process has imported it long ago). The controls: without
the hooks the first query fails (a dead pooled connection), and with ``pool_pre_ping`` but
no hooks the stale credentials are refused (the refusal count can be non-zero).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from sqlalchemy_rds_iam.testing import Emulator, EmulatorInfo
from sqlalchemy_rds_iam.testing.snapstart import DRIVERS, SnapStartSimulation

pytestmark = [pytest.mark.integration]


def simulate(info: EmulatorInfo, driver: str, *extra: str) -> tuple[int, dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    out = subprocess.run(
        [sys.executable, "-m", "sqlalchemy_rds_iam.testing.snapstart", "--state-dir",
         info.state_dir, "--driver", driver, *extra],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert out.stdout.strip(), out.stderr
    return out.returncode, json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("driver", sorted(DRIVERS))
def test_the_first_query_after_a_restore_succeeds_with_no_refused_login(
    rds_iam_emulator: EmulatorInfo, driver: str
) -> None:
    code, report = simulate(rds_iam_emulator, driver)
    assert code == 0, report
    print(f"SNAPSTART {driver}: restore to first query "
          f"{report['restore_to_first_query'] * 1000:.1f} ms (hooks "
          f"{report['hooks_seconds'] * 1000:.2f} ms)")
    assert report["who"] == "iamuser"
    assert report["pool_pre_ping"] is False
    assert report["refused_logins"] == 0
    assert report["logins"] >= 1  # the verifier log is read: a login was seen
    assert report["sessions_ended"] >= 1  # init's pooled connection was there, and died
    assert report["hooks_registered"]  # through snapshot_restore_py, as on Lambda
    assert report["credential_requests"] == 1  # the new keys came from the endpoint
    assert not report["botocore_at_restore"]
    assert report["botocore_imported_by_restore"] == []
    assert report["hooks_seconds"] < 10  # Lambda's limit for after-restore hooks


def test_with_a_config_file_in_play_botocore_fetches_and_the_report_sees_it(
    rds_iam_emulator: EmulatorInfo,
) -> None:
    """The control of "botocore is not imported by the restore": when botocore's chain
    must decide (an AWS config file exists), the restore imports it, and the report says
    so; the login still succeeds (the hooks made the source choose again)."""
    code, report = simulate(rds_iam_emulator, "psycopg2", "--via-botocore")
    assert code == 0, report
    assert report["refused_logins"] == 0 and report["credential_requests"] == 1
    assert "botocore.credentials" in report["botocore_imported_by_restore"]


@pytest.mark.parametrize("driver", sorted(DRIVERS))
def test_without_the_hooks_the_first_query_after_a_restore_fails(
    rds_iam_emulator: EmulatorInfo, driver: str
) -> None:
    """The negative control: the pooled connection from init is dead on the server."""
    code, report = simulate(rds_iam_emulator, driver, "--no-hooks")
    assert code == 1
    assert "error" in report


def test_without_the_hooks_pre_ping_reconnects_with_stale_credentials_and_is_refused(
    rds_iam_emulator: EmulatorInfo,
) -> None:
    """The refusal count's control: ``pool_pre_ping`` finds the dead connection; the token
    from init has aged past its reuse (the clock moved 30 minutes), so a fresh one is
    signed, but with the credentials read before the snapshot: refused (init's identity
    is retired)."""
    with SnapStartSimulation(Emulator(rds_iam_emulator.state_dir), "psycopg2",
                             hooks=False) as simulation:
        simulation.init(pool_pre_ping=True)
        simulation.snapshot()
        offset = simulation.server.log_offset()
        simulation.restore()
        with pytest.raises(Exception, match="PAM authentication failed"):
            simulation.query()
        refused = [v for v in simulation.server.verifications(offset) if not v.ok]
        assert refused, "the stale credentials' token was refused (then retried: backoff.py)"
        assert not [v for v in simulation.server.verifications(offset) if v.ok]
        assert {v.access_key_id for v in refused} == {simulation.init_identity.access_key_id}
        assert simulation.endpoint is not None and simulation.endpoint.requests == []


def test_in_process_with_the_hooks_the_restore_uses_the_new_keys(
    rds_iam_emulator: EmulatorInfo,
) -> None:
    """The same story in this process, checked from the verifier's side: after the restore
    the login is signed with the restored identity's keys, fetched from the endpoint."""
    with SnapStartSimulation(Emulator(rds_iam_emulator.state_dir), "pymysql") as simulation:
        simulation.init()
        simulation.snapshot()
        offset = simulation.server.log_offset()
        simulation.restore()
        assert simulation.query() == "iamuser"
        logins = simulation.server.verifications(offset)
        assert [(v.ok, v.access_key_id) for v in logins] == [
            (True, simulation.restore_identity.access_key_id)]
        assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" in os.environ
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" not in os.environ  # put back
