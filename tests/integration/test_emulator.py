"""The emulator accepts what RDS accepts and rejects what RDS rejects, through real servers.

Drivers are used directly (not the plugin): these tests judge the emulator itself. Every
rejection is checked against the reason the verifier logged, so a test cannot pass because a
login failed for some other reason (a TLS or network error, say).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import psycopg2
import pymysql
import pytest

from sqlalchemy_rds_iam.testing import (
    Emulator,
    EmulatorInfo,
    Identity,
    ServerInfo,
    Verification,
    presign_token,
)
from sqlalchemy_rds_iam.testing.cli import add_emulator_parser
from sqlalchemy_rds_iam.testing.errors import EmulatorError, ServerNotRunningError
from sqlalchemy_rds_iam.testing.servers import MAX_PASSWORD

pytestmark = pytest.mark.integration

SERVERS = ("postgresql", "pgbouncer", "mysql")
DB_ERRORS = (psycopg2.OperationalError, pymysql.err.OperationalError)


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest, rds_iam_emulator: EmulatorInfo) -> ServerInfo:
    return rds_iam_emulator.servers[request.param]


@pytest.fixture
def info(rds_iam_emulator: EmulatorInfo) -> EmulatorInfo:
    return rds_iam_emulator


def boto3_token(
    info: EmulatorInfo,
    server: ServerInfo,
    user: str,
    identity: str = "primary",
    *,
    port: int | None = None,
    session_token: str | bool | None = True,
) -> str:
    """The reference implementation: boto3's generate_db_auth_token."""
    ident = info.identities[identity]
    token = ident.session_token if session_token is True else session_token or None
    client = boto3.client(
        "rds",
        region_name=info.region,
        aws_access_key_id=ident.access_key_id,
        aws_secret_access_key=ident.secret_access_key,
        aws_session_token=token,
    )
    return str(client.generate_db_auth_token(server.host, port or server.port, user))


@contextlib.contextmanager
def connect(server: ServerInfo, user: str, password: str, *, tls: bool = True) -> Iterator[Any]:
    conn: Any
    if server.dialect == "postgresql":
        conn = psycopg2.connect(
            host=server.host,
            port=server.port,
            dbname=server.database,
            user=user,
            password=password,
            sslmode="verify-full" if tls else "disable",
            sslrootcert=server.ca_path,
            connect_timeout=10,
        )
    elif tls:
        conn = pymysql.connect(
            host=server.host,
            port=server.port,
            database=server.database,
            user=user,
            password=password,
            ssl_ca=server.ca_path,
            ssl_verify_cert=True,  # PyMySQL 1.1 (what aiomysql needs) does not imply it
            ssl_verify_identity=True,
            connect_timeout=10,
        )
    else:
        conn = pymysql.connect(
            host=server.host,
            port=server.port,
            database=server.database,
            user=user,
            password=password,
            ssl_disabled=True,
            connect_timeout=10,
        )
    try:
        yield conn
    finally:
        conn.close()


def login(
    server: ServerInfo, user: str, token: str, *, tls: bool = True
) -> tuple[bool, list[Verification]]:
    """Try to log in; return whether it worked and what the verifier logged meanwhile."""
    offset = server.log_offset()
    try:
        with connect(server, user, token, tls=tls) as conn:
            cur = conn.cursor()
            cur.execute("SELECT current_user" if server.dialect == "postgresql" else "SELECT 1")
            cur.fetchall()
            cur.close()
        ok = True
    except DB_ERRORS:
        ok = False
    return ok, server.verifications(offset, token=token)


def codes(verifications: list[Verification]) -> set[str]:
    """The decisions on one token. A set: another process sharing the emulator may have
    logged in with the very same token (same identity, user and second) meanwhile."""
    assert verifications, "the verifier did not run"
    return {v.code for v in verifications}


def unique_token(info: EmulatorInfo, server: ServerInfo, user: str) -> str:
    """A valid token no other process will send: signed a random number of seconds ago."""
    ident = info.identities["primary"]
    back = datetime.timedelta(seconds=secrets.randbelow(600) + 1)
    return presign_token(
        server.host,
        server.port,
        user,
        access_key_id=ident.access_key_id,
        secret_access_key=ident.secret_access_key,
        region=info.region,
        signed_at=datetime.datetime.now(datetime.timezone.utc) - back,
    )


def assert_rejected(server: ServerInfo, user: str, token: str, code: str) -> None:
    ok, verifications = login(server, user, token)
    assert not ok, "the server accepted a token RDS would reject"
    assert codes(verifications) == {code}, [v.reason for v in verifications]
    assert verifications[-1].user == user
    assert verifications[-1].token_length == min(len(token), MAX_PASSWORD.get(server.name, 10**6))


# -- accepted ----------------------------------------------------------------------------------


def test_accepts_boto3_token_over_verified_tls(info: EmulatorInfo, server: ServerInfo) -> None:
    token = boto3_token(info, server, "iamuser")
    offset = server.log_offset()
    plugins: list[bytes] = []
    original = pymysql.connections.Connection._process_auth  # type: ignore[attr-defined]

    def record(self: Any, plugin_name: bytes, *args: Any, **kwargs: Any) -> Any:
        plugins.append(plugin_name)
        return original(self, plugin_name, *args, **kwargs)

    with (
        mock.patch.object(pymysql.connections.Connection, "_process_auth", record),
        connect(server, "iamuser", token) as conn,
    ):
        cur = conn.cursor()
        if server.name == "postgresql":
            cur.execute("SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert cur.fetchone() == ("iamuser", True)
        elif server.name == "pgbouncer":
            cur.execute("SELECT current_user, current_database()")
            assert cur.fetchone() == ("iamuser", "app")
        else:
            cur.execute("SELECT current_user(), database()")
            assert cur.fetchone() == ("iamuser@%", "app")
            cur.execute("SHOW STATUS LIKE 'Ssl_version'")
            assert str(cur.fetchone()[1]).startswith("TLSv1.")
            # The cleartext exchange RDS MySQL uses.
            assert plugins == [b"mysql_clear_password"]
    verification = server.verifications(offset, token=token)[-1]
    assert verification.ok and verification.reason == "ok"
    assert verification.access_key_id == info.identities["primary"].access_key_id
    assert verification.service == server.name


def test_accepts_temporary_credentials(info: EmulatorInfo, server: ServerInfo) -> None:
    ok, verifications = login(
        server, "iamuser2", boto3_token(info, server, "iamuser2", "temporary")
    )
    assert ok and codes(verifications) == {"ok"}


def test_restricted_identity_may_connect_as_its_user(
    info: EmulatorInfo, server: ServerInfo
) -> None:
    token = boto3_token(info, server, "iamuser2", "restricted")
    ok, verifications = login(server, "iamuser2", token)
    assert ok and codes(verifications) == {"ok"}


def test_iam_users_can_create_tables(info: EmulatorInfo, server: ServerInfo) -> None:
    """Migrations (alembic) run as IAM users."""
    for user in server.users:
        table = f"t_{user}_{secrets.token_hex(4)}"
        with connect(server, user, boto3_token(info, server, user)) as conn:
            cur = conn.cursor()
            cur.execute(f"CREATE TABLE {table} (id integer primary key)")
            cur.execute(f"INSERT INTO {table} VALUES (1)")  # noqa: S608
            cur.execute(f"SELECT id FROM {table}")  # noqa: S608
            assert cur.fetchall() in ([(1,)], ((1,),))
            cur.execute(f"DROP TABLE {table}")
            conn.commit()


# -- rejected ----------------------------------------------------------------------------------


def test_rejects_tampered_signature(info: EmulatorInfo, server: ServerInfo) -> None:
    token = boto3_token(info, server, "iamuser")
    tampered = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert_rejected(server, "iamuser", tampered, "signature")


def test_rejects_unknown_access_key(info: EmulatorInfo, server: ServerInfo) -> None:
    client = boto3.client(
        "rds",
        region_name=info.region,
        aws_access_key_id="AKIAUNKNOWNUNKNOWN00",
        aws_secret_access_key=info.identities["primary"].secret_access_key,
    )
    token = client.generate_db_auth_token(server.host, server.port, "iamuser")
    assert_rejected(server, "iamuser", token, "access-key")


def test_rejects_another_users_token(info: EmulatorInfo, server: ServerInfo) -> None:
    assert_rejected(server, "iamuser", boto3_token(info, server, "iamuser2"), "user")


def test_rejects_token_for_another_port(info: EmulatorInfo, server: ServerInfo) -> None:
    other = next(s for s in info.servers.values() if s.port != server.port)
    token = boto3_token(info, server, "iamuser", port=other.port)
    assert_rejected(server, "iamuser", token, "endpoint")


def test_rejects_expired_token(info: EmulatorInfo, server: ServerInfo) -> None:
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=16)
    with mock.patch("botocore.auth.get_current_datetime", return_value=past.replace(tzinfo=None)):
        token = boto3_token(info, server, "iamuser")
    assert_rejected(server, "iamuser", token, "expired")


def test_rejects_expires_above_900(info: EmulatorInfo, server: ServerInfo) -> None:
    ident = info.identities["primary"]
    token = presign_token(
        server.host,
        server.port,
        "iamuser",
        access_key_id=ident.access_key_id,
        secret_access_key=ident.secret_access_key,
        region=info.region,
        expires=901,
    )
    assert "X-Amz-Expires=901" in token
    assert_rejected(server, "iamuser", token, "expires")


def test_rejects_missing_session_token(info: EmulatorInfo, server: ServerInfo) -> None:
    token = boto3_token(info, server, "iamuser", "temporary", session_token=None)
    assert "X-Amz-Security-Token" not in token
    assert_rejected(server, "iamuser", token, "session-token")


def test_rejects_wrong_session_token(info: EmulatorInfo, server: ServerInfo) -> None:
    token = boto3_token(info, server, "iamuser", "temporary", session_token="FQoGZXIvYXdzEwrong")
    assert_rejected(server, "iamuser", token, "session-token")


def test_rejects_identity_the_policy_denies(info: EmulatorInfo, server: ServerInfo) -> None:
    token = boto3_token(info, server, "iamuser", "restricted")
    assert_rejected(server, "iamuser", token, "policy")


def test_rejects_login_without_tls(info: EmulatorInfo, server: ServerInfo) -> None:
    ok, verifications = login(server, "iamuser", unique_token(info, server, "iamuser"), tls=False)
    assert not ok
    if server.dialect == "postgresql":
        # pg_hba (hostnossl ... reject) and PgBouncer (client_tls_sslmode=require) refuse
        # before asking for a password: the token never leaves the client.
        assert verifications == []
    else:
        # MariaDB runs the auth plugin before it enforces REQUIRE SSL: the token has
        # crossed in clear text by then, which is why the client must insist on TLS.
        assert codes(verifications) == {"ok"}


# -- the emulator itself -----------------------------------------------------------------------


def test_start_is_idempotent(info: EmulatorInfo) -> None:
    again, started = Emulator(info.state_dir).ensure_started()
    assert not started
    assert again == info
    assert Emulator(info.state_dir).status() == info


def test_info_round_trips_through_json(info: EmulatorInfo) -> None:
    assert EmulatorInfo.from_json(info.to_json()) == info
    data = json.loads(info.to_json())
    assert set(data["servers"]) == set(SERVERS)
    assert data["identities"]["temporary"]["session_token"]
    for server in data["servers"].values():
        assert {"host", "port", "database", "users", "ca_path"} <= set(server)


def test_urls_and_env(info: EmulatorInfo) -> None:
    url = info.postgresql.url("iamuser2")
    assert url == (
        f"postgresql+psycopg2://iamuser2@localhost:{info.postgresql.port}/app?plugin=rds_iam"
        f"&aws_region={info.region}&iam_ca_bundle={info.ca_path}"
    )
    assert info.mysql.url().startswith(f"mysql+pymysql://iamuser@localhost:{info.mysql.port}/")
    assert "AWS_SESSION_TOKEN" not in info.aws_env()
    assert info.aws_env("temporary")["AWS_SESSION_TOKEN"] == (
        info.identities["temporary"].session_token
    )


def test_aws_env_fixture(rds_iam_aws_env: dict[str, str], info: EmulatorInfo) -> None:
    assert os.environ["AWS_ACCESS_KEY_ID"] == info.identities["primary"].access_key_id
    assert "AWS_PROFILE" not in os.environ
    client = boto3.client("rds")
    token = client.generate_db_auth_token(info.postgresql.host, info.postgresql.port, "iamuser")
    ok, _ = login(info.postgresql, "iamuser", token)
    assert ok


def test_servers_are_private_and_unprivileged(info: EmulatorInfo) -> None:
    state = Path(info.state_dir)
    for server in info.servers.values():
        assert server.port not in (5432, 3306)
        assert Path(server.verifier_log).is_relative_to(state)
    ps = subprocess.run(
        ["ps", "-ww", "-eo", "user=,args="], capture_output=True, text=True, check=True
    ).stdout
    ours = [
        line
        for line in ps.splitlines()
        if str(state) + "/" in line
        and Path(line.split()[1]).name in ("postgres", "mariadbd", "pgbouncer")
    ]
    assert len(ours) == 3
    assert all(line.split()[0] in ("postgres", "mysql") for line in ours)
    # The verifier's copy and the PAM files are root's alone to change.
    assert (state / "verifier.py").stat().st_uid == 0
    assert (state / "verifier.py").stat().st_mode & 0o022 == 0
    # One verifier process, root's; one socket per server, only that server's user may ask.
    verifier = [
        line for line in ps.splitlines() if f"{state}/verifier.py" in line and "-I" in line
    ]
    assert len(verifier) == 1 and verifier[0].split()[0] == "root"
    for server in info.servers.values():
        sock = state / "verifier" / f"{server.name}.sock"
        owner = "mysql" if server.name == "mysql" else "postgres"
        assert sock.is_socket() and sock.owner() == owner
        assert sock.stat().st_mode & 0o777 == 0o600
    assert (state / "verifier" / "config.json").stat().st_mode & 0o077 == 0


def test_verifier_log_holds_no_secrets(info: EmulatorInfo, server: ServerInfo) -> None:
    token = boto3_token(info, server, "iamuser", "temporary")
    login(server, "iamuser", token)
    text = Path(server.verifier_log).read_text()
    signature = token.rpartition("=")[2]
    for ident in info.identities.values():
        assert ident.secret_access_key not in text
        assert ident.session_token is None or ident.session_token not in text
    assert signature not in text
    assert "X-Amz-Signature=" not in text
    assert "Action=connect" not in text


def run_cli(*argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="sqlalchemy-rds-iam")
    add_emulator_parser(parser.add_subparsers())
    args = parser.parse_args(["emulator", *argv])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = args.func(args)
    return status, out.getvalue()


def test_cli_status_and_start_json(info: EmulatorInfo) -> None:
    status, out = run_cli("status", "--json", "--state-dir", info.state_dir)
    assert status == 0 and EmulatorInfo.from_json(out) == info
    status, out = run_cli("start", "--json", "--state-dir", info.state_dir)
    assert status == 0 and EmulatorInfo.from_json(out) == info


def test_cli_help_texts() -> None:
    for sub in ("start", "stop", "status", "retire"):
        with pytest.raises(SystemExit) as exc:
            run_cli(sub, "--help")
        assert exc.value.code == 0


# -- lifecycle of a second, separate emulator --------------------------------------------------


def test_stale_state_is_restarted_and_stop_cleans_up(
    info: EmulatorInfo, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A crashed run (a server gone) is detected, cleaned up and started afresh."""
    state_dir = Path("/tmp") / f"rds-iam-emulator-test-{secrets.token_hex(4)}"
    emulator = Emulator(state_dir, servers=["postgresql", "mysql"])
    try:
        first, started = emulator.ensure_started()
        assert started and set(first.servers) == {"postgresql", "mysql"}
        assert first.skipped == {"pgbouncer": "left out (servers=)"}
        with pytest.raises(ServerNotRunningError, match="without pgbouncer: left out"):
            first.pgbouncer  # noqa: B018
        pam_files = [Path("/etc/pam.d") / s.pam_service for s in first.servers.values()]
        assert all(p.exists() for p in pam_files)

        state = json.loads((state_dir / "state.json").read_text())
        os.kill(state["pids"]["mysql"], 9)
        deadline = time.monotonic() + 10
        while emulator.status() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert emulator.status() is None

        second, started = emulator.ensure_started()
        assert started and second.mysql.port != 0
        ok, _ = login(second.mysql, "iamuser", boto3_token(second, second.mysql, "iamuser"))
        assert ok

        # Leases: the starter does not stop an emulator another live process uses.
        emulator.acquire()
        with subprocess.Popen(["sleep", "60"]) as other:
            (state_dir / "leases" / str(other.pid)).touch()
            assert not emulator.release(stop=True)
            assert emulator.status() == second
            other.kill()
        assert emulator.release(stop=True)
        assert emulator.status() is None
    finally:
        emulator.stop()
    assert not state_dir.exists()
    assert not any(p.exists() for p in pam_files)
    assert not emulator.stop()
    # The session's emulator is untouched.
    assert Emulator(info.state_dir).status() == info


def test_identity_repr_hides_secrets(info: EmulatorInfo) -> None:
    ident: Identity = info.identities["temporary"]
    assert ident.secret_access_key not in repr(ident)
    assert str(ident.session_token) not in repr(ident)


# -- real-size tokens through every driver -------------------------------------------------------

PG_DRIVERS = ["psycopg2", "psycopg", "psycopg_async", "pg8000", "asyncpg"]
MY_DRIVERS = ["pymysql", "mysqldb", "mysqlconnector", "aiomysql", "asyncmy"]
DRIVER_CASES = (
    [(d, "postgresql") for d in PG_DRIVERS]
    + [(d, "pgbouncer") for d in PG_DRIVERS]
    + [(d, "mysql") for d in MY_DRIVERS]
)


@pytest.fixture(scope="module")
def big_identity(rds_iam_emulator: EmulatorInfo) -> Iterator[EmulatorInfo]:
    """An identity whose session token makes tokens of more than 4 KB, added for this module."""
    from sqlalchemy_rds_iam.testing.identities import session_token

    name = f"big-{secrets.token_hex(3)}"
    ident = Identity(name, "ASIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30),
                     session_token(3600))
    emulator = Emulator(rds_iam_emulator.state_dir)
    info = emulator.add_identity(ident)
    try:
        yield info
    finally:
        emulator.retire_identity(name)


def _plugin_url(server: ServerInfo, driver: str) -> str:
    # mysqlclient's "localhost" is the Unix socket (no TLS): TCP, token still for localhost.
    if driver == "mysqldb":
        return server.url(driver=driver, iam_host="localhost").replace("@localhost:", "@127.0.0.1:")
    return server.url(driver=driver)


def _plugin_login(url: str, driver: str) -> None:
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    from sqlalchemy_rds_iam.drivers import DRIVERS

    if DRIVERS[driver].is_async:
        import asyncio

        async def run() -> None:
            engine = create_async_engine(url, poolclass=NullPool)
            try:
                async with engine.connect() as conn:
                    assert (await conn.execute(sa.text("SELECT 1"))).scalar() == 1
            finally:
                await engine.dispose()

        asyncio.run(run())
    else:
        engine = sa.create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                assert conn.execute(sa.text("SELECT 1")).scalar() == 1
        finally:
            engine.dispose()


@pytest.mark.parametrize("size", ["1200-char session token", "4 KB token"])
@pytest.mark.parametrize(("driver", "server_name"), DRIVER_CASES)
def test_real_size_tokens_through_every_driver(
    big_identity: EmulatorInfo, monkeypatch: pytest.MonkeyPatch, driver: str,
    server_name: str, size: str,
) -> None:
    """Lambda's tokens (role credentials carry a session token) arrive whole and verify."""
    info = big_identity
    server = info.servers[server_name]
    identity = "temporary" if size.startswith("1200") else next(
        n for n in info.identities if n.startswith("big-")
    )
    session = info.identities[identity].session_token
    assert session is not None
    assert len(session) >= (1200 if identity == "temporary" else 3600)
    for name, value in info.aws_env(identity).items():
        monkeypatch.setenv(name, value)
    since = server.log_offset()
    access_key = info.identities[identity].access_key_id
    cut = MAX_PASSWORD.get(server_name)
    if cut is not None and size == "4 KB token":
        # PgBouncer 1.18 cannot take it: a password packet over its 4 KB packet buffer is
        # refused outright, a shorter one is cut to 2047 characters (MAX_PASSWORD, compiled
        # in), which the verifier reports as "truncated" rather than as a bad signature.
        with pytest.raises(Exception, match=r"partial pkt|PAM authentication failed"):
            _plugin_login(_plugin_url(server, driver), driver)
        mine = [v for v in server.verifications(since) if v.user == "iamuser"]
        assert all(v.code == "truncated" and v.token_length == cut for v in mine)
        return
    _plugin_login(_plugin_url(server, driver), driver)
    mine = [v for v in server.verifications(since) if v.access_key_id == access_key and v.ok]
    assert mine, "the verifier did not accept the token"
    assert mine[-1].token_length >= (1500 if identity == "temporary" else 4096)


def test_cut_or_padded_real_size_tokens_are_rejected(
    big_identity: EmulatorInfo, server: ServerInfo
) -> None:
    info = big_identity
    name = "temporary" if server.name == "pgbouncer" else next(
        n for n in info.identities if n.startswith("big-")
    )
    token = boto3_token(info, server, "iamuser", name)
    assert len(token) > (1500 if name == "temporary" else 4096)
    ok, verifications = login(server, "iamuser", token)
    assert ok and codes(verifications) == {"ok"}
    # Cut where pam_exec used to cut (the signature is lost), cut by one, padded by one.
    assert_rejected(server, "iamuser", token[:511], "malformed")
    for variant in (token[:-1], token + "A"):
        assert_rejected(server, "iamuser", variant, "signature")


# -- rds_iam semantics: IAM users and password users ---------------------------------------------


@pytest.mark.parametrize("server_name", ["postgresql", "mysql"])
def test_password_user_logs_in_with_its_password_only(
    info: EmulatorInfo, server_name: str
) -> None:
    """As on RDS: a user outside rds_iam uses a password, and a token gets it nowhere."""
    import sqlalchemy as sa

    server = info.servers[server_name]
    assert server.password_user == "pwuser" and server.password
    engine = sa.create_engine(server.password_url())
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT current_user")).scalar() in ("pwuser", "pwuser@%")
    engine.dispose()
    # A valid token for the password user is just a wrong password: the verifier is not asked.
    token = unique_token(info, server, "pwuser")
    ok, verifications = login(server, "pwuser", token)
    assert not ok and verifications == []


@pytest.mark.parametrize("server_name", ["postgresql", "mysql"])
def test_iam_user_is_refused_with_a_password(info: EmulatorInfo, server_name: str) -> None:
    server = info.servers[server_name]
    assert server.password is not None
    password = server.password + secrets.token_hex(2)  # unique, so the log line is ours
    ok, verifications = login(server, "iamuser", password)
    assert not ok and codes(verifications) == {"malformed"}


def test_password_login_needs_tls(info: EmulatorInfo) -> None:
    server = info.postgresql
    assert server.password is not None
    with pytest.raises(psycopg2.OperationalError, match=r"no encryption|pg_hba"):
        with connect(server, "pwuser", server.password, tls=False):
            pass


def test_pgbouncer_has_its_own_pam_file(info: EmulatorInfo) -> None:
    """PgBouncer's PAM service name is fixed: it gets a private /etc/pam.d, not the machine's."""
    from sqlalchemy_rds_iam.testing import pam

    assert pam.owner_of(Path("/etc/pam.d/pgbouncer")) != info.state_dir
    private = Path(info.state_dir) / "pgbouncer" / "pam.d" / "pgbouncer"
    assert "pam_rds_iam" in private.read_text()


# -- identities on a running emulator ----------------------------------------------------------


def test_identity_added_and_retired_on_a_running_emulator(info: EmulatorInfo) -> None:
    server = info.postgresql
    name = f"rotated-{secrets.token_hex(3)}"
    ident = Identity(name, "AKIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30))
    emulator = Emulator(info.state_dir)

    def token() -> str:
        return presign_token(server.host, server.port, "iamuser",
                             access_key_id=ident.access_key_id,
                             secret_access_key=ident.secret_access_key, region=info.region)

    before = token()
    assert_rejected(server, "iamuser", before, "access-key")
    added = emulator.add_identity(ident)
    assert added.identities[name].access_key_id == ident.access_key_id
    status, out = run_cli("status", "--json", "--state-dir", info.state_dir)
    assert status == 0 and json.loads(out)["identities"][name]["secret_access_key"]
    tok = token()
    ok, verifications = login(server, "iamuser", tok)
    assert ok and codes(verifications) == {"ok"}
    retired = emulator.retire_identity(name)
    assert name not in retired.identities
    assert_rejected(server, "iamuser", tok, "access-key")
    with pytest.raises(Exception, match="no identity"):
        emulator.retire_identity(name)
    # The same from the command line: start --identity adds to a running emulator.
    spec = f"{name}={ident.access_key_id}:{ident.secret_access_key}"
    assert run_cli("start", "--state-dir", info.state_dir, "--identity", spec)[0] == 0
    assert codes(login(server, "iamuser", token())[1]) == {"ok"}
    assert run_cli("retire", name, "--state-dir", info.state_dir) == (0, f"retired {name}\n")
    assert name not in Emulator(info.state_dir).status().identities  # type: ignore[union-attr]


def test_identity_option_parses() -> None:
    ident = Identity.parse("app=ASIAXYZ:sec/ret+key:IQoJb3JpZ2luX2VjE+/=")
    assert (ident.name, ident.access_key_id, ident.session_token) == (
        "app", "ASIAXYZ", "IQoJb3JpZ2luX2VjE+/="
    )
    assert Identity.parse("ci=AKIAXYZ:secret").session_token is None
    for bad in ("noequals", "x=AKIA", "x=:secret", "=AKIA:secret"):
        with pytest.raises(ValueError, match="NAME=ACCESS_KEY_ID"):
            Identity.parse(bad)


# -- throttling --------------------------------------------------------------------------------


def _burst(count: int, login_once: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(login_once, range(count)))


def test_iam_throttling_spares_cached_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    """--iam-rate-limit 50: one engine's 200 new connections reuse its cached token and pass;
    200 logins each with a freshly signed token (AWS's guide's pattern) get throttled."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    state_dir = Path("/tmp") / f"rds-iam-throttle-{secrets.token_hex(4)}"
    emulator = Emulator(state_dir)
    mine = Identity("mine", "ASIA" + secrets.token_hex(8).upper(), "s3cret", "IQoJb3JpZ2luX2VjE")
    try:
        status, out = run_cli(
            "start", "--json", "--state-dir", str(state_dir), "--servers", "postgresql",
            "--iam-rate-limit", "50", "--identity",
            f"mine={mine.access_key_id}:{mine.secret_access_key}:{mine.session_token}",
        )
        assert status == 0
        info = EmulatorInfo.from_json(out)
        assert info.rate_limit == 50 and set(info.servers) == {"postgresql"}
        assert info.identities["mine"] == mine and "primary" in info.identities
        server = info.postgresql
        for name, value in info.aws_env().items():
            monkeypatch.setenv(name, value)
        engine = sa.create_engine(server.url(), poolclass=NullPool)

        def engine_login(_: int) -> None:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))

        since = server.log_offset()
        _burst(200, engine_login)
        cached = server.verifications(since)
        assert len(cached) == 200 and all(v.ok for v in cached)
        engine.dispose()

        ident = info.identities["primary"]
        now = datetime.datetime.now(datetime.timezone.utc)
        results: list[bool] = []

        def fresh_login(i: int) -> None:
            token = presign_token(
                server.host, server.port, "iamuser", access_key_id=ident.access_key_id,
                secret_access_key=ident.secret_access_key, region=info.region,
                signed_at=now - datetime.timedelta(seconds=i),  # 200 distinct tokens
            )
            try:
                with connect(server, "iamuser", token):
                    results.append(True)
            except psycopg2.OperationalError:
                results.append(False)

        since = server.log_offset()
        _burst(200, fresh_login)
        fresh = server.verifications(since)
        throttled = [v for v in fresh if v.code == "throttled"]
        print(f"throttled: cached-token burst 0/200, fresh-token burst {len(throttled)}/200")
        assert len(fresh) == 200 and throttled
        assert results.count(False) == len(throttled)
        assert "IAM authentication rate exceeded (50 new tokens per second)" in throttled[0].reason
        # The same token again is never throttled, however fast.
        time.sleep(1.1)  # out of the fresh burst's window
        token = unique_token(info, server, "iamuser")
        since = server.log_offset()  # (the burst may have sent this very token: same second)
        ok, _ = login(server, "iamuser", token)
        assert ok
        _burst(60, lambda _: login(server, "iamuser", token))
        assert codes(server.verifications(since, token=token)) == {"ok"}
        # Throttling can be turned off on the running emulator.
        assert emulator.set_rate_limit(None).rate_limit is None
    finally:
        emulator.stop()


def test_a_failed_start_reports_every_server_and_records_what_ran(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sqlalchemy_rds_iam.testing import launch, servers
    from sqlalchemy_rds_iam.testing.layout import Layout

    def pg_start(self: Any, tls: Any, record: Any) -> None:
        record(os.getpid())  # a process exists, then the setup fails
        raise servers.EmulatorError("initdb failed: disk full")

    def my_start(self: Any, tls: Any, record: Any) -> None:
        raise RuntimeError("mariadbd crashed")

    seen: list[dict[str, Any] | None] = []
    real_teardown = launch.teardown

    def teardown(layout: Layout) -> None:
        seen.append(layout.state.read())
        real_teardown(layout)

    monkeypatch.setattr(servers.PostgresServer, "start", pg_start)
    monkeypatch.setattr(servers.MariaDbServer, "start", my_start)
    monkeypatch.setattr(launch, "teardown", teardown)
    state_dir = Path("/tmp") / f"rds-iam-emulator-fail-{secrets.token_hex(4)}"
    with pytest.raises(EmulatorError) as exc:
        Emulator(state_dir).ensure_started()
    message = str(exc.value)
    assert "postgresql: EmulatorError: initdb failed: disk full" in message
    assert "mysql: RuntimeError: mariadbd crashed" in message
    assert "pgbouncer: EmulatorError: not started: PostgreSQL failed" in message
    recorded = seen[-1]
    assert recorded is not None and recorded["pids"]["postgresql"] == os.getpid()
    assert "verifier" in recorded["pids"]
    assert not state_dir.exists()
