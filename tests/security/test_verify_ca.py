"""Finding 6 of issue 20: ``verify-ca`` only where the chain alone proves an RDS server.

Amazon Root CA 1-4 and Starfield G2 issue (exportable) ACM certificates to anyone for their
own domain, so chain-only verification against the Amazon-roots store (RDS Proxy, DSQL) or
the combined store (an IP, a CNAME, a tunnel without ``iam_host``) accepts a stranger's
server. The RDS bundles' roots sign RDS servers only: there ``verify-ca`` stays allowed, as
it does with a CA file the user names.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from sqlalchemy_rds_iam import ConfigurationError
from sqlalchemy_rds_iam.cabundle import SHIPPED_DIR
from tests.fakes import driver_arguments

RDS = "db.cluster-abc123.us-east-1.rds.amazonaws.com"
GOV = "db.cluster-abc123.us-gov-west-1.rds.amazonaws.com"
CN = "db.cluster-abc123.rds.cn-north-1.amazonaws.com.cn"
PROXY = "app.proxy-abc123.us-east-1.rds.amazonaws.com"
DSQL = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws"
OWN_CA = str(SHIPPED_DIR / "china-bundle.pem")  # any CA file the user names (not the default)


def engine(host: str, query: str, driver: str = "postgresql+psycopg2") -> sa.engine.Engine:
    url = f"{driver}://iamuser@{host}:5432/app?plugin=rds_iam&aws_region=us-east-1&{query}"
    if driver.endswith(("asyncpg", "aiomysql", "asyncmy", "psycopg_async")):
        return create_async_engine(url).sync_engine
    return sa.create_engine(url)


@pytest.mark.parametrize("host", [RDS, GOV, CN, "127.0.0.1"])
@pytest.mark.usefixtures("aws_env")
def test_verify_ca_with_an_rds_bundle_is_allowed(host: str) -> None:
    query = "iam_tls=verify-ca" + (f"&iam_host={RDS}" if host == "127.0.0.1" else "")
    query += "&aws_region=" + ("us-gov-west-1" if host == GOV else "cn-north-1" if host == CN
                               else "us-east-1")
    url = f"postgresql+psycopg2://iamuser@{host}:5432/app?plugin=rds_iam&{query}"
    args = driver_arguments(sa.create_engine(url))
    assert args["sslmode"] == "verify-ca"
    assert args["sslrootcert"].endswith(("global-bundle.pem", "govcloud-bundle.pem",
                                         "china-bundle.pem"))


@pytest.mark.parametrize(("host", "store"), [
    (PROXY, "amazon-roots"), (DSQL, "amazon-roots"), ("10.0.0.5", "rds-aws+amazon-roots"),
    ("db.example.com", "rds-aws+amazon-roots"),
])
def test_verify_ca_with_amazon_public_roots_is_refused(host: str, store: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        engine(host, "iam_tls=verify-ca")
    message = str(caught.value)
    assert f"({store})" in message and "ACM certificates to anyone" in message
    assert "iam_host=" in message and "iam_ca_bundle=" in message


@pytest.mark.parametrize(("driver", "query"), [
    ("postgresql+psycopg2", "sslmode=verify-ca"), ("postgresql+psycopg", "sslmode=verify-ca"),
    ("postgresql+asyncpg", "ssl=verify-ca"), ("postgresql+pg8000", "iam_tls=verify-ca"),
    ("mysql+pymysql", "ssl_check_hostname=false"), ("mysql+mysqldb", "ssl_mode=VERIFY_CA"),
    ("mysql+aiomysql", "ssl_check_hostname=false"), ("mysql+asyncmy", "ssl_check_hostname=false"),
])
def test_every_chain_only_spelling_is_held_to_the_same_rule(driver: str, query: str) -> None:
    with pytest.raises(ConfigurationError, match="ACM certificates to anyone"):
        engine("10.0.0.5", query, driver)
    engine("10.0.0.5", f"{query}&iam_host={RDS}", driver)  # the RDS bundle: allowed


@pytest.mark.parametrize("host", [PROXY, "10.0.0.5"])
def test_a_ca_file_the_user_names_is_their_choice(host: str) -> None:
    engine(host, f"iam_tls=verify-ca&iam_ca_bundle={OWN_CA}")
    engine(host, f"sslmode=verify-ca&sslrootcert={OWN_CA}")


def test_verify_full_is_unaffected() -> None:
    for host in (PROXY, "10.0.0.5", RDS):
        engine(host, "iam_tls=verify-full")


@pytest.mark.usefixtures("aws_env")
def test_the_psql_command_holds_the_same_rule(capsys: pytest.CaptureFixture[str]) -> None:
    from sqlalchemy_rds_iam.cli import main

    base = "postgresql://iamuser@10.0.0.5/app?aws_region=us-east-1"
    assert main(["psql", f"{base}&sslmode=verify-ca", "--print"]) == 2
    assert "ACM certificates to anyone" in capsys.readouterr().err
    assert main(["psql", f"{base}&iam_tls=verify-ca", "--print"]) == 2
    capsys.readouterr()
    assert main(["psql", f"{base}&sslmode=verify-ca&iam_host={RDS}", "--print"]) == 0
    assert "sslmode=verify-ca" in capsys.readouterr().out
