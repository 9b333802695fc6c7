"""Trust per endpoint, rotation and refused credentials against the emulator's real servers.

Served under the emulator's own names (127.0.0.1 / localhost), so these use the test seam
(SQLALCHEMY_RDS_IAM_TEST_TRUST_STORES) to stand the emulator's CA in for one trust store
at a time; real-looking RDS/Proxy/DSQL hostnames are the emulator's side (issue 9).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

import sqlalchemy_rds_iam
from sqlalchemy_rds_iam.cabundle import TEST_SEAM_ENV
from sqlalchemy_rds_iam.testing.info import EmulatorInfo, ServerInfo
from sqlalchemy_rds_iam.testing.verifier import token_fingerprint
from tests.fakes import WHO, login, moto_server, signed_tokens

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("rds_iam_aws_env")]

DRIVERS = {"postgresql": ["psycopg2", "psycopg", "pg8000", "asyncpg", "psycopg_async"],
           "mysql": ["pymysql", "mysqldb", "mysqlconnector", "aiomysql", "asyncmy"]}
PROXY = "myproxy.proxy-c9akciq32lce.us-east-1.rds.amazonaws.com"


def default_trust_url(info: ServerInfo, driver: str, **query: str) -> str:
    """The emulator URL without iam_ca_bundle: the default trust store applies."""
    url = sa.make_url(info.url(info.users[0], driver, **query))
    if driver == "mysqldb" and url.host == "localhost":
        # mysqlclient takes "localhost" for the Unix socket (no TLS there): sign for the
        # name, connect to the address (the certificate names both)
        url = url.set(host="127.0.0.1").update_query_dict({"iam_host": "localhost"})
    return url.difference_update_query(["iam_ca_bundle"]).render_as_string(hide_password=False)


def unique_key() -> str:
    """An access key id no other test session uses: the shared emulator's verifier log
    holds every session's logins, so decisions are picked out by key or by token."""
    import secrets

    return "AKIDTEST" + secrets.token_hex(6).upper()


def ours(info: ServerInfo, offset: int, tokens: list[str]) -> list[Any]:
    """The verifier's decisions on these tokens (other sessions share the emulator)."""
    prints = {token_fingerprint(t) for t in tokens}
    return [d for d in info.verifications(offset) if d.token_sha256 in prints]


@pytest.mark.parametrize("store", ["rds-aws", "amazon-roots"])
@pytest.mark.parametrize(("server", "driver"),
                         [(s, d) for s in ("postgresql", "mysql") for d in DRIVERS[s]]
                         + [("pgbouncer", "psycopg2")])
def test_unrecognised_host_trusts_rds_and_amazon_roots(
    rds_iam_emulator: EmulatorInfo, monkeypatch: pytest.MonkeyPatch, server: str, driver: str,
    store: str,
) -> None:
    """127.0.0.1 is no AWS name: its default is the combined store, so a server whose chain
    ends in either part verifies (the emulator's CA standing in for that part)."""
    info = rds_iam_emulator.servers[server]
    monkeypatch.setenv(TEST_SEAM_ENV, json.dumps({store: rds_iam_emulator.ca_path}))
    assert login(default_trust_url(info, driver)) == info.users[0]


@pytest.mark.parametrize(("server", "driver"), [("postgresql", "psycopg2"), ("mysql", "pymysql")])
def test_without_the_seam_the_emulator_ca_is_not_trusted(
    rds_iam_emulator: EmulatorInfo, server: str, driver: str
) -> None:
    info = rds_iam_emulator.servers[server]
    offset, key = info.log_offset(), unique_key()
    with pytest.raises(sa.exc.OperationalError, match=r"(?i)certificate|ssl|tls"):
        login(default_trust_url(info, driver), credentials_provider=lambda: (key, "secret"))
    # refused at the handshake: no token was sent
    assert [d for d in info.verifications(offset) if d.access_key_id == key] == []


#: A name the token is signed for (iam_host), the store that must verify it, one that must not.
SIGNED_FOR = [
    (PROXY, "amazon-roots", "rds-aws"),
    ("ro.endpoint.proxy-c9akciq32lce.us-gov-west-1.rds.amazonaws.com", "amazon-roots",
     "rds-aws-us-gov"),
    ("abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws", "amazon-roots", "rds-aws"),
    ("db.c9akciq32lce.us-east-1.rds.amazonaws.com", "rds-aws", "amazon-roots"),
    ("app.cluster-c9akciq32lce.us-east-1.rds.amazonaws.com", "rds-aws", "amazon-roots"),
    ("db.c9akciq32lce.us-gov-west-1.rds.amazonaws.com", "rds-aws-us-gov", "rds-aws"),
    ("db.c9akciq32lce.rds.cn-north-1.amazonaws.com.cn", "rds-aws-cn", "amazon-roots"),
]


@pytest.mark.parametrize(("signed_for", "right", "wrong"), SIGNED_FOR)
def test_each_endpoint_trusts_its_own_store_only(
    rds_iam_emulator: EmulatorInfo, monkeypatch: pytest.MonkeyPatch, signed_for: str,
    right: str, wrong: str,
) -> None:
    """A token signed for an AWS name (iam_host): with the emulator's CA standing in for the
    wrong store the handshake fails and no token leaves; standing in for the right one, TLS
    passes and the token reaches the verifier (which refuses it: the emulator does not serve
    these names yet; real-looking hostnames are the emulator side of issue 9)."""
    info = rds_iam_emulator.pgbouncer
    url = sa.make_url(default_trust_url(info, "psycopg2", iam_host=signed_for))
    url = url.difference_update_query(["aws_region"]).render_as_string(False)  # in the name
    offset, key, tokens = info.log_offset(), unique_key(), []

    monkeypatch.setenv(TEST_SEAM_ENV, json.dumps({wrong: rds_iam_emulator.ca_path}))
    with pytest.raises(sa.exc.OperationalError, match=r"(?i)certificate|ssl"):
        login(url, tokens, credentials_provider=lambda: (key, "secret"))
    assert len(tokens) == 1 and ours(info, offset, tokens) == []
    monkeypatch.setenv(TEST_SEAM_ENV, json.dumps({right: rds_iam_emulator.ca_path}))
    with pytest.raises(sa.exc.OperationalError):
        login(url, tokens, credentials_provider=lambda: (key, "secret"))
    assert [d.ok for d in ours(info, offset, tokens)] == [False]


# --- rotation -------------------------------------------------------------------------------

@pytest.mark.parametrize("server", ["postgresql", "mysql"])
def test_refused_token_is_never_offered_again(rds_iam_emulator: EmulatorInfo, server: str) -> None:
    """Credentials retired under a live engine: the login with them is refused once; the next
    connection asks for credentials again and signs anew."""
    info = rds_iam_emulator.servers[server]
    primary = rds_iam_emulator.identities["primary"]
    retired = unique_key()
    current = [(retired, "retired-secret")]
    engine = sa.create_engine(info.url(info.users[0], plugin=False), poolclass=NullPool)
    connector = sqlalchemy_rds_iam.attach(
        engine, aws_region=rds_iam_emulator.region, iam_ca_bundle=rds_iam_emulator.ca_path,
        credentials_provider=lambda: current[-1],
        iam_connect_retries=0,  # one login per connect: the backoff's retries reuse a token
    )
    tokens = signed_tokens(connector)
    offset = info.log_offset()
    with pytest.raises(sa.exc.OperationalError):
        engine.connect().close()
    assert [(d.ok, d.access_key_id) for d in ours(info, offset, tokens)] == [(False, retired)]
    current.append((primary.access_key_id, primary.secret_access_key))
    for _ in range(2):
        with engine.connect() as conn:
            assert conn.execute(sa.text(WHO[info.dialect])).scalar() == info.users[0]
    # the retired token was offered once; one new token signed, used for both logins
    assert len(tokens) == 2
    decisions = ours(info, offset, tokens)
    assert [(d.ok, d.access_key_id) for d in decisions if not d.ok] == [(False, retired)]
    assert {(d.ok, d.access_key_id) for d in decisions if d.ok} == {(True, primary.access_key_id)}
    assert token_fingerprint(connector.token()) == token_fingerprint(tokens[1])


def test_rotated_credentials_sign_the_next_connection_of_a_live_pool(
    rds_iam_emulator: EmulatorInfo,
) -> None:
    """A boto3 session shared with the app rotates to another identity while the engine's
    pool is open: pooled connections keep working, new ones sign with the new key, and
    no query fails (pool_pre_ping)."""
    import boto3

    info = rds_iam_emulator.postgresql
    primary = rds_iam_emulator.identities["primary"]
    temporary = rds_iam_emulator.identities["temporary"]
    session = boto3.Session(aws_access_key_id=primary.access_key_id,
                            aws_secret_access_key=primary.secret_access_key,
                            region_name=rds_iam_emulator.region)
    engine = sa.create_engine(info.url(info.users[0], plugin=False), pool_size=2, max_overflow=2,
                              pool_pre_ping=True)
    connector = sqlalchemy_rds_iam.attach(engine, boto3_session=session,
                                          iam_ca_bundle=rds_iam_emulator.ca_path)
    tokens = signed_tokens(connector)
    offset = info.log_offset()
    failures = 0
    with engine.connect() as a:
        a.execute(sa.text("SELECT 1"))
        shared = session._session.get_credentials()
        # what a refresh or rotation does to the shared credential object
        shared.access_key = temporary.access_key_id
        shared.secret_key = temporary.secret_access_key
        shared.token = temporary.session_token
        with engine.connect() as b:
            try:
                b.execute(sa.text("SELECT 1"))
            except sa.exc.DBAPIError:
                failures += 1
        a.execute(sa.text("SELECT 1"))  # the pooled connection still works
    keys = list(dict.fromkeys(d.access_key_id for d in ours(info, offset, tokens) if d.ok))
    assert keys == [primary.access_key_id, temporary.access_key_id]
    assert failures == 0
    engine.dispose()


# --- assumed roles end to end (needs the emulator's identities API, branch `emu`) ---------

@pytest.fixture
def sts(monkeypatch: pytest.MonkeyPatch) -> Any:
    with moto_server(monkeypatch, "sts"):
        yield


@pytest.mark.usefixtures("sts")
def test_assumed_role_logs_in_and_refreshes(rds_iam_emulator: EmulatorInfo) -> None:
    """moto's STS issues the role session; the emulator is told its key; the login is
    verified with the assumed-role key (not the source key); near expiry botocore renews
    the session and the next connection signs with the new key."""
    import datetime

    from sqlalchemy_rds_iam.testing import emulator as emulator_module
    from sqlalchemy_rds_iam.testing.info import Identity

    if not hasattr(emulator_module.Emulator, "add_identity"):
        pytest.skip("needs the emulator's identities API (Emulator.add_identity, branch emu)")
    emulator: Any = emulator_module.Emulator(rds_iam_emulator.state_dir)
    info = rds_iam_emulator.postgresql
    source_key = rds_iam_emulator.identities["primary"].access_key_id
    engine = sa.create_engine(info.url(info.users[0], aws_role_arn="arn:aws:iam::123456789012:role/db",
                                       aws_role_duration="3600"), poolclass=NullPool)
    connector = sqlalchemy_rds_iam.connector(engine)
    source: Any = connector.source
    tokens = signed_tokens(connector)
    added: list[str] = []

    def trust_current_session() -> str:
        creds = source.frozen()
        name = f"assumed-{len(added)}"
        emulator.add_identity(Identity(name, creds.access_key, creds.secret_key, creds.token))
        added.append(name)
        return str(creds.access_key)

    offset = info.log_offset()
    try:
        first = trust_current_session()
        assert first != source_key
        with engine.connect() as conn:
            assert conn.execute(sa.text(WHO[info.dialect])).scalar() == info.users[0]
        later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=55)
        source.clock = lambda: later  # inside botocore's mandatory refresh window
        import botocore.credentials

        real_now = botocore.credentials._local_now
        botocore.credentials._local_now = lambda: later  # type: ignore[assignment]
        try:
            second = trust_current_session()
        finally:
            botocore.credentials._local_now = real_now  # type: ignore[assignment]
        assert second != first
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        keys = list(dict.fromkeys(d.access_key_id for d in ours(info, offset, tokens) if d.ok))
        assert keys == [first, second]
    finally:
        for name in added:
            emulator.retire_identity(name)
