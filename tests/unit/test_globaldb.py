"""The global writer endpoint's region, from rds:DescribeGlobalClusters on a local moto server.

moto (server mode, loopback) holds a global database with a primary cluster in us-east-1 and
a secondary in eu-west-1; a switchover is simulated by moving moto's writer flag (moto has
no SwitchoverGlobalCluster). The database side is a stand-in ``dialect.connect`` that, as
the writer would, refuses a token signed for any region but the current writer's. The
AccessDenied case is a loopback HTTP server answering with RDS's Query API error document.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote

import botocore.session
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

import sqlalchemy_rds_iam
from sqlalchemy_rds_iam import RdsIamError, RegionError
from tests.fakes import moto_server, set_aws_env

GLOBAL = "app.global-abcdef123456.global.rds.amazonaws.com"
ACCOUNT = "123456789012"


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    set_aws_env(monkeypatch)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")  # where the Lambda runs: the API's region
    with moto_server(monkeypatch, "rds") as endpoint:
        import urllib.request

        # moto keeps its state in this process: start each test from an empty account
        reset = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")  # noqa: S310
        urllib.request.urlopen(reset, timeout=10).close()  # noqa: S310 (http on loopback)
        yield endpoint


def _rds(endpoint: str, region: str) -> Any:
    return botocore.session.get_session().create_client(
        "rds", region_name=region, endpoint_url=endpoint,
        aws_access_key_id="testing", aws_secret_access_key="testing")


def _global_database(endpoint: str) -> None:
    east, west = _rds(endpoint, "us-east-1"), _rds(endpoint, "eu-west-1")
    east.create_global_cluster(GlobalClusterIdentifier="app", Engine="aurora-postgresql")
    for client, name in ((east, "app-east"), (west, "app-west")):
        client.create_db_cluster(DBClusterIdentifier=name, Engine="aurora-postgresql",
                                 GlobalClusterIdentifier="app", MasterUsername="admin",
                                 MasterUserPassword="password-123")


def _switchover_to(region: str) -> None:
    """What SwitchoverGlobalCluster does to DescribeGlobalClusters: another writer."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.rds.models import rds_backends

    cluster = rds_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].global_clusters["app"]
    for member in cluster.members:
        member.is_writer = f":{region}:" in member.db_cluster_arn


def _writer(endpoint: str) -> str:
    answer = _rds(endpoint, "eu-west-1").describe_global_clusters()
    (member,) = [m for m in answer["GlobalClusters"][0]["GlobalClusterMembers"] if m["IsWriter"]]
    return str(member["DBClusterArn"].split(":")[3])


class Writer:
    """Stand-in for the database behind the global endpoint: accepts only tokens signed for
    the current writer's region (read from moto, as the endpoint's DNS would follow it)."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.regions: list[str] = []

    def __call__(self, *cargs: Any, **cparams: Any) -> Any:
        import psycopg2

        query = parse_qs(cparams["password"].split("?", 1)[1])
        region = unquote(query["X-Amz-Credential"][0]).split("/")[2]
        assert cparams["password"].startswith(GLOBAL + ":5432/")  # signed for the global name
        self.regions.append(region)
        if region != _writer(self.endpoint):
            raise psycopg2.OperationalError(
                'connection failed: FATAL:  PAM authentication failed for user "iamuser"')
        return object()


def test_the_writer_region_is_resolved_once_and_again_after_a_switchover(
        moto: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _global_database(moto)
    engine = sa.create_engine(f"postgresql+psycopg2://iamuser@{GLOBAL}/app?plugin=rds_iam",
                              poolclass=NullPool)
    iam = sqlalchemy_rds_iam.connector(engine)
    writer = Writer(moto)
    engine.dialect.connect = writer  # type: ignore[method-assign]
    cparams = dict(engine.dialect.create_connect_args(engine.url)[1])

    iam.connect(engine.dialect, [], dict(cparams))
    iam.connect(engine.dialect, [], dict(cparams))  # the cached token, the cached region
    assert writer.regions == ["us-east-1", "us-east-1"]
    assert iam.writer_region is not None and iam.writer_region.calls == 1
    assert iam.key().region == "us-east-1"

    _switchover_to("eu-west-1")
    assert _writer(moto) == "eu-west-1"
    iam.connect(engine.dialect, [], dict(cparams))  # cached token refused: region asked again
    assert writer.regions[2:] == ["us-east-1", "eu-west-1"]
    assert iam.writer_region.calls == 2 and iam.key().region == "eu-west-1"

    iam.connect(engine.dialect, [], dict(cparams))
    assert writer.regions[4:] == ["eu-west-1"] and iam.writer_region.calls == 2


def test_aws_region_skips_the_call(moto: str) -> None:
    engine = sa.create_engine(f"postgresql+psycopg2://iamuser@{GLOBAL}/app?plugin=rds_iam"
                              "&aws_region=ap-south-1")
    iam = sqlalchemy_rds_iam.connector(engine)
    assert iam.writer_region is None and iam.key().region == "ap-south-1"


def test_an_unknown_global_database_is_a_clear_error(moto: str) -> None:
    iam = sqlalchemy_rds_iam.connector(sa.create_engine(
        f"postgresql+psycopg2://iamuser@{GLOBAL}/app?plugin=rds_iam"))
    with pytest.raises(RegionError, match=r"no global database 'app'.*aws_region="):
        iam.key()


class _Denied(http.server.BaseHTTPRequestHandler):
    """RDS's Query API answering an action the caller's policy does not allow."""

    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.seen.append(parse_qs(body)["Action"][0])
        document = (
            '<ErrorResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/"><Error>'
            "<Type>Sender</Type><Code>AccessDenied</Code><Message>User: "
            f"arn:aws:iam::{ACCOUNT}:user/app is not authorized to perform: "
            f"rds:DescribeGlobalClusters on resource: arn:aws:rds::{ACCOUNT}:global-cluster:app"
            " because no identity-based policy allows the rds:DescribeGlobalClusters action"
            "</Message></Error><RequestId>7f3c1a2e-0000-4000-8000-000000000000</RequestId>"
            "</ErrorResponse>"
        ).encode()
        self.send_response(403)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(document)))
        self.end_headers()
        self.wfile.write(document)

    def log_message(self, *args: Any) -> None:
        pass


def test_access_denied_names_the_missing_permission(monkeypatch: pytest.MonkeyPatch) -> None:
    set_aws_env(monkeypatch)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Denied)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_RDS", f"http://127.0.0.1:{server.server_port}")
        engine = sa.create_engine(f"postgresql+psycopg2://iamuser@{GLOBAL}/app?plugin=rds_iam",
                                  poolclass=NullPool)
        with pytest.raises(RdsIamError) as info:
            engine.connect()
    finally:
        server.shutdown()
        server.server_close()
    message = str(info.value)
    assert "rds:DescribeGlobalClusters" in message and "aws_region=" in message
    assert "global-cluster:app" in message
    assert _Denied.seen == ["DescribeGlobalClusters"]  # one call, no retry loop


def test_botocore_is_imported_only_on_this_path() -> None:
    import subprocess
    import sys

    code = ("import sys, sqlalchemy as sa, sqlalchemy_rds_iam; "
            "sa.create_engine('postgresql+psycopg2://u@db.abcdefghijkl.us-east-1.rds.amazonaws.com"
            f"/a?plugin=rds_iam'); sa.create_engine('postgresql+psycopg2://u@{GLOBAL}/a"
            "?plugin=rds_iam'); print('botocore' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout.strip()
    assert out == "False"
