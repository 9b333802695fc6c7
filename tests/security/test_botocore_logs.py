"""Finding 3 of issue 20: assumed-role credentials in DEBUG logs.

With ``logging.basicConfig(level=DEBUG)`` botocore logs the STS request (the base session
token in ``X-Amz-Security-Token``, the signature) and the STS response body (the role's
``SecretAccessKey`` and ``SessionToken``). Every record of every logger, as a handler or an
error tracker reads it (``getMessage()``, ``args``, ``exc_text``), must hold none of them
while the plugin assumes a role through moto's STS on loopback; the positive control is the
same STS call made with botocore directly, whose records do hold the role's secret.
"""

from __future__ import annotations

import io
import logging
import string
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.pool import NullPool

import sqlalchemy_rds_iam
from sqlalchemy_rds_iam.botocore_logs import scrub_text
from sqlalchemy_rds_iam.testing.info import EmulatorInfo
from tests.fakes import WHO, driver_arguments, moto_server

RDS = "db.cluster-abc123.us-east-1.rds.amazonaws.com"
ROLE = "arn:aws:iam::123456789012:role/db-connect"
BASE_KEY, BASE_SECRET = "ASIABASEEXAMPLE", "base-secret-key-0123456789abcdef"
BASE_TOKEN = "base-session-token-FwoGZXIvYXdzEXAMPLE0123456789"


class Everything(logging.Handler):
    """Keeps every record, as an error tracker's logging integration would."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def texts(self) -> list[str]:
        out = []
        for r in self.records:
            out += [r.getMessage(), repr(r.args), r.exc_text or "", repr(r.msg)]
        return out


@pytest.fixture
def debug_logs() -> Iterator[tuple[Everything, io.StringIO]]:
    """``logging.basicConfig(level=DEBUG)`` (forced past pytest's handlers) plus a recorder."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    logging.basicConfig(level=logging.DEBUG, stream=stream, force=True)
    everything = Everything()
    root.addHandler(everything)
    try:
        yield everything, stream
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


@pytest.fixture
def sts(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with moto_server(monkeypatch, "sts") as endpoint:
        yield endpoint


def leaks(debug_logs: tuple[Everything, io.StringIO], secrets: dict[str, str]) -> list[str]:
    everything, stream = debug_logs
    texts = [*everything.texts(), stream.getvalue()]
    return sorted(name for name, value in secrets.items() if any(value in t for t in texts))


@pytest.mark.usefixtures("sts")
def test_assume_role_at_debug_logs_no_secret(
    monkeypatch: pytest.MonkeyPatch, debug_logs: tuple[Everything, io.StringIO]
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", BASE_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", BASE_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", BASE_TOKEN)
    engine = sa.create_engine(f"postgresql+psycopg2://iamuser@{RDS}/app?plugin=rds_iam"
                              f"&aws_role_arn={ROLE}&aws_external_id=ext-id-secret-123")
    token = driver_arguments(engine)["password"]
    role = sqlalchemy_rds_iam.connector(engine).source.frozen()
    assert role.access_key.startswith("ASIA") and role.access_key != BASE_KEY and role.token
    everything, _ = debug_logs
    names = {r.name for r in everything.records}
    assert {"botocore.endpoint", "botocore.parsers"} <= names  # botocore did log, at DEBUG
    assert leaks(debug_logs, {
        "base secret key": BASE_SECRET, "base session token": BASE_TOKEN,
        "role secret key": role.secret_key, "role session token": role.token,
        "IAM token": token, "IAM token signature": token.rsplit("X-Amz-Signature=", 1)[1],
        "external id": "ext-id-secret-123",
    }) == []
    # what is left is still a useful log: the STS call and its status
    assert any("AssumeRole" in t for t in everything.texts())


@pytest.mark.usefixtures("sts")
def test_positive_control_botocore_alone_logs_the_role_secret(
    debug_logs: tuple[Everything, io.StringIO]
) -> None:
    import botocore.session

    client = botocore.session.Session().create_client(
        "sts", region_name="us-east-1", aws_access_key_id=BASE_KEY,
        aws_secret_access_key=BASE_SECRET, aws_session_token=BASE_TOKEN)
    credentials = client.assume_role(RoleArn=ROLE, RoleSessionName="control")["Credentials"]
    assert leaks(debug_logs, {
        "base session token": BASE_TOKEN, "role secret key": credentials["SecretAccessKey"],
        "role session token": credentials["SessionToken"],
    }) == ["base session token", "role secret key", "role session token"]


def test_records_of_other_threads_are_untouched(debug_logs: tuple[Everything, io.StringIO]) -> None:
    import threading

    from sqlalchemy_rds_iam.botocore_logs import scrubbed_logs

    other = threading.Thread(target=lambda: logging.getLogger("app").debug("Token=visible"))
    with scrubbed_logs("known-secret-value"):
        logging.getLogger("botocore.x").debug("a %s and <SessionToken>abc</SessionToken>",
                                              "known-secret-value")
        other.start()
        other.join()
    logging.getLogger("botocore.x").debug("after: %s", "known-secret-value")
    texts = [r.getMessage() for r in debug_logs[0].records]
    assert texts == ["a *** and <SessionToken>***</SessionToken>", "Token=visible",
                     "after: known-secret-value"]


@pytest.mark.parametrize(("text", "expected"), [
    ("<SecretAccessKey>abc/+=</SecretAccessKey>", "<SecretAccessKey>***</SecretAccessKey>"),
    ('{"SecretAccessKey": "abc", "Token": "t"}', '{"SecretAccessKey": "***", "Token": "***"}'),
    ("{'X-Amz-Security-Token': b'IQo+/=', 'Authorization': b'AWS4-HMAC-SHA256 Credential=A/x, "
     "SignedHeaders=host, Signature=abc123'}",
     "{'X-Amz-Security-Token': b'***', 'Authorization': b'*** Credential=A/x, "
     "SignedHeaders=host, Signature=***'}"),
    ("x-amz-security-token:IQo\nhost:sts", "x-amz-security-token:***\nhost:sts"),
    ("Signature:\nabcdef", "Signature:\n***"),
    ("?X-Amz-Security-Token=a%2Fb&X-Amz-Signature=ff", "?X-Amz-Security-Token=***&X-Amz-Signature=***"),
    ("{'ExternalId': 'e'}", "{'ExternalId': '***'}"),
    ("Response headers: {'Content-Type': 'text/xml'}", "Response headers: {'Content-Type': 'text/xml'}"),
])
def test_scrub_text(text: str, expected: str) -> None:
    assert scrub_text(text) == expected


@pytest.mark.integration
@pytest.mark.usefixtures("sts", "rds_iam_aws_env")
def test_a_login_through_an_assumed_role_at_debug_logs_no_secret(
    rds_iam_emulator: EmulatorInfo, rds_iam_aws_env: dict[str, str],
    debug_logs: tuple[Everything, io.StringIO],
) -> None:
    """A real login (the emulator verifies the role session's token) with every logger at
    DEBUG, SQLAlchemy's included."""
    from sqlalchemy_rds_iam.testing import emulator as emulator_module
    from sqlalchemy_rds_iam.testing.info import Identity
    from tests.fakes import signed_tokens

    emulator: Any = emulator_module.Emulator(rds_iam_emulator.state_dir)
    info = rds_iam_emulator.postgresql
    engine = sa.create_engine(info.url(aws_role_arn=ROLE), poolclass=NullPool, echo="debug")
    connector = sqlalchemy_rds_iam.connector(engine)
    tokens = signed_tokens(connector)
    role: Any = connector.source.frozen()
    emulator.add_identity(Identity("assumed-logs", role.access_key, role.secret_key, role.token))
    with engine.connect() as conn:
        assert conn.execute(sa.text(WHO[info.dialect])).scalar() == info.users[0]
    assert tokens and "X-Amz-Security-Token=" in tokens[0]
    base = {k: v for k, v in rds_iam_aws_env.items()
            if k in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN") and v}
    assert leaks(debug_logs, {**base, "role secret key": role.secret_key,
                              "role session token": role.token, "IAM token": tokens[0]}) == []


_VALUES = st.text(alphabet=string.ascii_letters + string.digits + "+/=%-_.", min_size=8,
                  max_size=60)
_SHAPES = ["<{n}>{v}</{n}>", '"{n}": "{v}"', "'{n}': b'{v}'", "{n}:{v}\n", "?{n}={v}&x=1",
           "{n}:\n{v}", "{{'{n}': '{v}', 'k': 1}}"]


@given(name=st.sampled_from(["SecretAccessKey", "SessionToken", "X-Amz-Security-Token",
                             "Signature", "X-Amz-Signature", "Token", "ExternalId",
                             "secretAccessKey", "sessionToken", "accessToken", "password"]),
       shape=st.sampled_from(_SHAPES), value=_VALUES,
       prefix=st.text(alphabet=" <>{}:='\"\n\\,", max_size=12))
def test_no_secret_named_value_survives(name: str, shape: str, value: str, prefix: str) -> None:
    text = prefix + " " + shape.format(n=name, v=value)
    assert value not in scrub_text(text)


@pytest.fixture
def rds_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with moto_server(monkeypatch, "rds") as endpoint:
        yield endpoint


@pytest.mark.usefixtures("rds_api")
def test_describe_global_clusters_at_debug_logs_no_secret(
    debug_logs: tuple[Everything, io.StringIO]
) -> None:
    """The global writer endpoint's one AWS API call: a signed request botocore logs."""
    from sqlalchemy_rds_iam.credentials import FrozenCredentials
    from sqlalchemy_rds_iam.globaldb import writer_region

    credentials = FrozenCredentials(BASE_KEY, BASE_SECRET, BASE_TOKEN, None)
    with pytest.raises(sqlalchemy_rds_iam.RegionError, match="no global database 'app'"):
        writer_region("app", credentials, "eu-west-1")
    everything, _ = debug_logs
    assert any("DescribeGlobalClusters" in t for t in everything.texts())  # it did log
    assert leaks(debug_logs, {"secret key": BASE_SECRET, "session token": BASE_TOKEN}) == []


@pytest.mark.usefixtures("rds_api")
def test_positive_control_botocore_alone_logs_the_session_token(
    debug_logs: tuple[Everything, io.StringIO]
) -> None:
    import botocore.session

    client = botocore.session.Session().create_client(
        "rds", region_name="eu-west-1", aws_access_key_id=BASE_KEY,
        aws_secret_access_key=BASE_SECRET, aws_session_token=BASE_TOKEN)
    client.describe_global_clusters()
    assert leaks(debug_logs, {"session token": BASE_TOKEN}) == ["session token"]
