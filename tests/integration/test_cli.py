"""The command line against the emulator: native clients log in, doctor pinpoints failures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sqlalchemy_rds_iam.cabundle import SHIPPED_CA_BUNDLE
from sqlalchemy_rds_iam.testing.info import EmulatorInfo

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("rds_iam_aws_env")]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sqlalchemy_rds_iam.cli", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("driver", ["psycopg2", "asyncpg", "psycopg_async"])
def test_token_is_accepted_by_the_server(rds_iam_emulator: EmulatorInfo, driver: str) -> None:
    info = rds_iam_emulator.postgresql
    token = cli("token", info.url(driver=driver)).stdout.strip()
    assert token.startswith(f"localhost:{info.port}/?Action=connect&DBUser=iamuser&")
    psql = subprocess.run(
        ["psql", "-Atc", "SELECT current_user"],
        env={"PGHOST": "localhost", "PGPORT": str(info.port), "PGUSER": "iamuser",
             "PGDATABASE": info.database, "PGSSLMODE": "verify-full",
             "PGSSLROOTCERT": info.ca_path, "PGPASSWORD": token, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=30)
    assert psql.stdout.strip() == "iamuser", psql.stderr


@pytest.mark.parametrize(("server", "client", "query", "expected"), [
    ("postgresql", "psql", ["-Atc", "SELECT current_user"], "iamuser"),
    ("pgbouncer", "psql", ["-Atc", "SELECT current_user"], "iamuser"),
    ("mysql", "mysql", ["-N", "-e", "SELECT SUBSTRING_INDEX(USER(), '@', 1)"], "iamuser"),
])
def test_native_clients_log_in(rds_iam_emulator: EmulatorInfo, server: str, client: str,
                               query: list[str], expected: str) -> None:
    info = rds_iam_emulator.servers[server]
    offset = info.log_offset()
    result = cli(client, info.url(), "--", *query)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected
    assert [d.ok for d in info.verifications(offset) if d.user == "iamuser"][-1:] == [True]


def doctor(url: str) -> tuple[int, dict[str, object]]:
    result = cli("doctor", "--json", "--timeout", "5", url)
    return result.returncode, json.loads(result.stdout)


@pytest.mark.parametrize(("server", "driver"), [
    ("postgresql", "psycopg2"), ("pgbouncer", "psycopg2"), ("postgresql", "psycopg"),
    ("postgresql", "psycopg_async"), ("postgresql", "pg8000"), ("postgresql", "asyncpg"),
    ("mysql", "pymysql"), ("mysql", "mysqlconnector"), ("mysql", "aiomysql"),
    ("mysql", "asyncmy"),
])
def test_doctor_passes_every_step(rds_iam_emulator: EmulatorInfo, server: str, driver: str) -> None:
    code, report = doctor(rds_iam_emulator.servers[server].url(driver=driver))
    assert (code, report["ok"]) == (0, True), report
    steps = report["steps"]
    assert isinstance(steps, list)
    assert [s["name"] for s in steps] == ["options", "region", "credentials", "dns", "tcp", "tls",
                                          "certificate", "token", "login"]


@pytest.mark.parametrize(("server", "create", "other"), [
    ("postgresql", "GRANT rds_iam TO nosuchuser", "AWSAuthenticationPlugin"),
    ("mysql", "CREATE USER nosuchuser IDENTIFIED WITH AWSAuthenticationPlugin", "rds_iam"),
])
def test_doctor_wrong_user_is_a_refused_login_with_the_checklist(
    rds_iam_emulator: EmulatorInfo, server: str, create: str, other: str
) -> None:
    code, report = doctor(rds_iam_emulator.servers[server].url("nosuchuser"))
    assert (code, report["failed_step"]) == (10, "login")
    text = json.dumps(report)
    assert create in text and other not in text


def test_doctor_reports_a_refused_login_once(rds_iam_emulator: EmulatorInfo) -> None:
    """The listener's refused-login warning is held back: doctor's own report says it."""
    result = cli("doctor", "--timeout", "5", rds_iam_emulator.postgresql.url("nosuchuser"))
    assert result.returncode == 10
    assert "[FAIL] login" in result.stdout
    assert "refused the IAM token" not in result.stdout + result.stderr


def test_doctor_master_user_is_never_made_an_iam_user(rds_iam_emulator: EmulatorInfo) -> None:
    code, report = doctor(rds_iam_emulator.mysql.url("admin"))  # no such user here: refused
    assert (code, report["failed_step"]) == (10, "login")
    text = json.dumps(report)
    assert "CREATE USER admin" not in text and "master user" in text


def test_doctor_whoami_unreachable_still_runs_every_step(
    rds_iam_emulator: EmulatorInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{closed}")
    result = cli("doctor", "--json", "--whoami", "--timeout", "2", rds_iam_emulator.postgresql.url())
    report = json.loads(result.stdout)
    assert [(s["name"], s["ok"]) for s in report["steps"]] == [
        ("options", True), ("region", True), ("credentials", True), ("whoami", False),
        ("dns", True), ("tcp", True), ("tls", True), ("certificate", True), ("token", True),
        ("login", True)]
    # everything else passed: the advisory failure alone picks the code
    assert (result.returncode, report["failed_step"]) == (4, None)


def test_doctor_ca_that_does_not_match(rds_iam_emulator: EmulatorInfo) -> None:
    code, report = doctor(rds_iam_emulator.mysql.url(iam_ca_bundle=str(SHIPPED_CA_BUNDLE)))
    assert (code, report["failed_step"]) == (8, "certificate")


def test_doctor_no_credentials(rds_iam_emulator: EmulatorInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    code, report = doctor(rds_iam_emulator.postgresql.url())
    assert (code, report["failed_step"]) == (4, "credentials")


def test_doctor_wrong_region_is_a_refused_login(rds_iam_emulator: EmulatorInfo) -> None:
    # localhost says nothing about the region, so only the server can notice: login step.
    code, report = doctor(rds_iam_emulator.postgresql.url(aws_region="eu-west-1"))
    assert (code, report["failed_step"]) == (10, "login")
    assert "region (eu-west-1)" in json.dumps(report)
