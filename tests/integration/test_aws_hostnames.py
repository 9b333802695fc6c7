"""Every driver against the emulator's real-looking AWS endpoints, with default options.

The emulator resolves instance, cluster, GovCloud, China, RDS Proxy and Aurora DSQL names to
127.0.0.1 (``/etc/hosts``); each presents a certificate from the throwaway CA standing in
for its trust store (``info.trust_stores``, through the test seam). No ``iam_ca_bundle``, no
``aws_region``: the library must pick the store and the region from the hostname alone.
"""

from __future__ import annotations

import json
import secrets
import socket
import ssl
from typing import Any

import pytest
import sqlalchemy as sa

import sqlalchemy_rds_iam
from sqlalchemy_rds_iam.cabundle import TEST_SEAM_ENV
from sqlalchemy_rds_iam.testing import hosts
from sqlalchemy_rds_iam.testing.info import EmulatorInfo, Identity
from sqlalchemy_rds_iam.testing.topology import EmulatedEndpoint
from sqlalchemy_rds_iam.testing.verifier import token_fingerprint
from tests.fakes import login, signed_tokens

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("rds_iam_topology_env")]

DRIVERS = {"postgresql": ["psycopg2", "psycopg", "pg8000", "asyncpg", "psycopg_async"],
           "mysql": ["pymysql", "mysqldb", "mysqlconnector", "aiomysql", "asyncmy"]}
PG_KEYS = ["postgresql-instance", "postgresql-cluster", "postgresql-govcloud",
           "postgresql-china", "proxy", "dsql"]
MY_KEYS = ["mysql-instance", "mysql-cluster", "mysql-govcloud", "mysql-china"]
MATRIX = [(k, d) for k in PG_KEYS for d in DRIVERS["postgresql"]] + [
    (k, d) for k in MY_KEYS for d in DRIVERS["mysql"]]


@pytest.fixture(autouse=True)
def _no_region_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The region must come from the hostname (the emulator's own is us-east-1)."""
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)


def endpoint(info: EmulatorInfo, key: str) -> EmulatedEndpoint:
    if key not in info.topology:
        pytest.skip(f"{key}: its server does not run here ({info.skipped})")
    return info.topology[key]


def decisions(info: EmulatorInfo, ep: EmulatedEndpoint, offset: int, tokens: list[str]) -> list[Any]:
    prints = {token_fingerprint(t) for t in tokens}
    server = info.servers[ep.server]
    return [d for d in server.verifications(offset) if d.token_sha256 in prints]


@pytest.mark.parametrize(("key", "driver"), MATRIX)
def test_every_driver_connects_to_every_endpoint(
    rds_iam_emulator: EmulatorInfo, key: str, driver: str
) -> None:
    """Default options: the store and region come from the name; the server verified the
    token (its log says ok, for the primary key)."""
    ep = endpoint(rds_iam_emulator, key)
    user = ep.users[0]  # "admin" on DSQL: DbConnectAdmin
    url = ep.url(user, driver)
    assert "iam_ca_bundle" not in url and "aws_region" not in url
    offset, tokens = rds_iam_emulator.servers[ep.server].log_offset(), []
    assert login(url, tokens) == user
    primary = rds_iam_emulator.identities["primary"].access_key_id
    assert [(d.ok, d.access_key_id) for d in decisions(rds_iam_emulator, ep, offset, tokens)] \
        == [(True, primary)]


@pytest.mark.parametrize("driver", [*DRIVERS["postgresql"][:2], "asyncpg"])
def test_dsql_ordinary_role_uses_dbconnect(rds_iam_emulator: EmulatorInfo, driver: str) -> None:
    ep = endpoint(rds_iam_emulator, "dsql")
    tokens: list[str] = []
    assert login(ep.url("iamuser", driver), tokens) == "iamuser"
    assert "Action=DbConnect&" in tokens[0] and ":" not in tokens[0].partition("/")[0]


def test_dsql_admin_token_is_refused_for_another_role(rds_iam_emulator: EmulatorInfo) -> None:
    """DbConnectAdmin logs in as admin only: the verifier refuses it for iamuser."""
    import psycopg2

    from sqlalchemy_rds_iam.credentials import FrozenCredentials
    from sqlalchemy_rds_iam.tokens import TokenKey, sign_token

    ep = endpoint(rds_iam_emulator, "dsql")
    ident = rds_iam_emulator.identities["primary"]
    creds = FrozenCredentials(ident.access_key_id, ident.secret_access_key, None, None)
    token = sign_token(TokenKey(ep.hostname, ep.port, "iamuser", ep.region, "dsql",
                                "DbConnectAdmin", 900), creds)
    server = rds_iam_emulator.servers[ep.server]
    offset = server.log_offset()
    ca = rds_iam_emulator.trust_stores["amazon-roots"]
    with pytest.raises(psycopg2.OperationalError, match="authentication failed"):
        psycopg2.connect(host=ep.hostname, port=ep.port, user="iamuser", password=token,
                         dbname=ep.database, sslmode="verify-full", sslrootcert=ca).close()
    [decision] = server.verifications(offset, token=token)
    assert not decision.ok and "DbConnectAdmin cannot log in as 'iamuser'" in decision.reason


def _swapped(info: EmulatorInfo) -> str:
    """The seam with every store's stand-in moved to another store: each endpoint now
    presents a certificate from a CA its own store does not hold (a proxy with an RDS-CA
    certificate, an instance with an Amazon-root one, GovCloud's with China's ...)."""
    names = sorted(info.trust_stores)
    return json.dumps({n: info.trust_stores[names[(i + 1) % len(names)]]
                       for i, n in enumerate(names)})


@pytest.mark.parametrize(("key", "driver"),
                         [("proxy", "psycopg2"), ("proxy", "asyncpg"), ("dsql", "psycopg"),
                          ("postgresql-instance", "psycopg2"), ("postgresql-govcloud", "pg8000"),
                          ("mysql-instance", "pymysql"), ("mysql-china", "mysqlconnector")])
def test_certificate_from_the_wrong_store_fails_before_the_token_leaves(
    rds_iam_emulator: EmulatorInfo, monkeypatch: pytest.MonkeyPatch, key: str, driver: str
) -> None:
    ep = endpoint(rds_iam_emulator, key)
    monkeypatch.setenv(TEST_SEAM_ENV, _swapped(rds_iam_emulator))
    offset, tokens = rds_iam_emulator.servers[ep.server].log_offset(), []
    access_key = "AKIDTEST" + secrets.token_hex(6).upper()
    # asyncpg lets the ssl module's own error through
    with pytest.raises((sa.exc.DBAPIError, ssl.SSLError), match=r"(?i)certif|ssl|tls"):
        login(ep.url(ep.users[0], driver), tokens,
              credentials_provider=lambda: (access_key, "secret"))
    server = rds_iam_emulator.servers[ep.server]
    assert [d for d in server.verifications(offset) if d.access_key_id == access_key] == []


def test_hostnames_resolve_to_loopback_through_marked_lines(
    rds_iam_emulator: EmulatorInfo,
) -> None:
    names = {ep.hostname for ep in rds_iam_emulator.topology.values()}
    assert set(hosts.owners().get(rds_iam_emulator.state_dir, [])) == names
    for name in names:
        assert socket.gethostbyname(name) == "127.0.0.1"
    again = EmulatorInfo.from_json(rds_iam_emulator.to_json())
    assert again.topology == rds_iam_emulator.topology
    assert again.trust_store_env() == rds_iam_emulator.trust_store_env()


def test_rotation_retires_a_key_under_a_live_pool(rds_iam_emulator: EmulatorInfo) -> None:
    """The emulator retires an access key while a pooled engine runs: pooled connections keep
    working, connections opened after it sign with the new key, no query fails.

    The rotation is what a refresh does to the boto3 session's shared credential object (a
    ``credentials_provider`` without expiry is asked again only after a refused login)."""
    import boto3

    from sqlalchemy_rds_iam.testing.emulator import Emulator

    ep = endpoint(rds_iam_emulator, "postgresql-instance")
    emulator = Emulator(rds_iam_emulator.state_dir)
    tag = secrets.token_hex(4)
    old = Identity(f"rotate-old-{tag}", "AKIDOLD" + tag.upper(), secrets.token_hex(20))
    new = Identity(f"rotate-new-{tag}", "AKIDNEW" + tag.upper(), secrets.token_hex(20))
    emulator.add_identity(old)
    session = boto3.Session(aws_access_key_id=old.access_key_id,
                            aws_secret_access_key=old.secret_access_key)
    engine = sa.create_engine(ep.url(), pool_size=4, max_overflow=4, pool_pre_ping=True,
                              boto3_session=session)
    tokens: list[str] = []
    signed_tokens(sqlalchemy_rds_iam.connector(engine), tokens)
    offset = rds_iam_emulator.servers[ep.server].log_offset()
    failures = 0

    def query(conns: list[Any]) -> None:
        nonlocal failures
        for conn in conns:
            try:
                conn.execute(sa.text("SELECT 1"))
            except sa.exc.DBAPIError:
                failures += 1

    try:
        pooled = [engine.connect() for _ in range(2)]
        query(pooled)
        for conn in pooled:
            conn.close()  # back to the pool, still logged in with the old key
        emulator.add_identity(new)
        shared = session._session.get_credentials()
        shared.access_key, shared.secret_key = new.access_key_id, new.secret_access_key
        emulator.retire_identity(old.name)
        live = [engine.connect() for _ in range(5)]  # 2 pooled (pre-pinged), 3 new logins
        query(live)
        for conn in live:
            conn.close()
    finally:
        engine.dispose()
        emulator.retire_identity(new.name)
    keys = [(d.ok, d.access_key_id) for d in decisions(rds_iam_emulator, ep, offset, tokens)]
    assert failures == 0
    # one token per key (the cache), each verified once per login
    assert len(tokens) == 2
    assert keys == [(True, old.access_key_id)] * 2 + [(True, new.access_key_id)] * 3


def test_docs_topology_snippet_runs(rds_iam_emulator: EmulatorInfo) -> None:
    import re
    from pathlib import Path

    readme = Path(__file__).resolve().parents[2] / "docs" / "reference" / "emulator.md"
    section = readme.read_text().split("**Real-looking AWS endpoints.**", 1)[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.S)
    assert snippet is not None
    namespace: dict[str, Any] = {}
    exec(compile(snippet.group(1), "emulator.md", "exec"), namespace)  # noqa: S102 (our docs)
    endpoint(rds_iam_emulator, "proxy")
    namespace["test_proxy"](rds_iam_emulator, None)


def test_cli_summary_lists_the_endpoints_and_stand_ins(rds_iam_emulator: EmulatorInfo) -> None:
    import io

    from sqlalchemy_rds_iam.testing.cli import _print_summary

    out = io.StringIO()
    _print_summary(rds_iam_emulator, out)
    for ep in rds_iam_emulator.topology.values():
        assert ep.endpoint in out.getvalue()
    for pem in rds_iam_emulator.trust_stores.values():
        assert pem in out.getvalue()
