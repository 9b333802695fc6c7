"""The target is resolved once: the plugin, the CLI and ``doctor`` read the same one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa

import sqlalchemy_rds_iam
from sqlalchemy_rds_iam.cabundle import bundle_path
from sqlalchemy_rds_iam.cli import _connector
from sqlalchemy_rds_iam.doctor import State, step_options
from sqlalchemy_rds_iam.options import parse_options
from sqlalchemy_rds_iam.target import Target, plain_url, resolve_target, without_options
from sqlalchemy_rds_iam.tls import TLS_MODES, VERIFY_CA, VERIFY_FULL

PACKAGE = Path(sqlalchemy_rds_iam.__file__).parent
RDS = "db.cluster-abc123.us-east-1.rds.amazonaws.com"
PROXY = "app.proxy-abc123.eu-west-1.rds.amazonaws.com"


def _resolve(url: str, **options: object) -> Target:
    parsed = sa.make_url(url)
    return resolve_target(parsed, parsed.get_dialect()(), parse_options(keywords=options))


def test_rds_name_gives_region_partition_store_and_default_port() -> None:
    target = _resolve(f"postgresql+psycopg2://iamuser@{RDS}/app")
    assert (target.user, target.host, target.port) == ("iamuser", RDS, 5432)
    assert target.address == (RDS, 5432)
    assert target.endpoint is not None and target.endpoint.kind == "cluster"
    assert (target.region, target.region_source, target.partition) == (
        "us-east-1", "hostname", "aws")
    assert target.ca_bundle == bundle_path("rds-aws")
    assert target.tls_mode == VERIFY_FULL
    assert target.shape == ("rds-db", "connect", 900)
    assert target.spec.family == "postgresql"


def test_tunnel_signs_for_iam_host_but_connects_to_the_url() -> None:
    target = _resolve("mysql+pymysql://iamuser@127.0.0.1:13306/app", iam_host=PROXY,
                      iam_port=3306)
    assert (target.host, target.port) == (PROXY, 3306)
    assert target.address == ("127.0.0.1", 13306)
    assert target.ca_bundle == bundle_path("amazon-roots")  # RDS Proxy: Amazon's roots
    assert target.region_source == "hostname" and target.tls_mode == "verify-full"


def test_other_names_take_the_region_from_the_option_or_later() -> None:
    assert _resolve("postgresql+psycopg2://u@10.0.0.5/app").region_source == "configuration"
    target = _resolve("postgresql+psycopg2://u@10.0.0.5/app", aws_region="eu-west-1")
    assert (target.region, target.region_source, target.partition) == (
        "eu-west-1", "aws_region", "aws")
    assert target.ca_bundle == bundle_path("rds-aws+amazon-roots")


def test_target_is_frozen() -> None:
    target = _resolve(f"postgresql+psycopg2://iamuser@{RDS}/app")
    with pytest.raises(AttributeError):
        target.host = "elsewhere"  # type: ignore[misc]


@pytest.mark.usefixtures("aws_env")
def test_plugin_cli_and_doctor_read_one_target() -> None:
    url = f"postgresql+psycopg2://iamuser@{RDS}:6432/app?plugin=rds_iam&iam_port=5432"
    engine = sa.create_engine(url)
    from_plugin = sqlalchemy_rds_iam.connector(engine).target
    from_cli = _connector(url)[0].target
    state = State(url, 1.0, False)
    step_options(state)
    assert state.target == from_plugin
    assert (from_cli.user, from_cli.host, from_cli.port, from_cli.address, from_cli.region,
            from_cli.ca_bundle, from_cli.tls_mode) == (
        from_plugin.user, from_plugin.host, from_plugin.port, from_plugin.address,
        from_plugin.region, from_plugin.ca_bundle, from_plugin.tls_mode)
    assert from_plugin.address == (RDS, 6432) and from_plugin.port == 5432


def test_url_helpers_strip_the_plugin_and_our_options() -> None:
    url = plain_url(f"postgresql://u@{RDS}/app?plugin=rds_iam&aws_region=us-east-1&sslmode=x")
    assert dict(url.query) == {"aws_region": "us-east-1", "sslmode": "x"}
    assert dict(without_options(url).query) == {"sslmode": "x"}


def test_tls_modes_are_the_tls_words() -> None:
    assert TLS_MODES == ("verify-full", "verify-ca") == (VERIFY_FULL, VERIFY_CA)
    from sqlalchemy_rds_iam import options

    assert options.TLS_MODES is TLS_MODES


#: A rule, and the one module allowed to apply it (its definition's module aside).
ONE_PLACE = {
    r"\bparse_hostname\(": {"endpoints.py", "target.py"},
    r"\bdefault_ca_bundle\(|\btrust_store_for\(": {"cabundle.py", "target.py"},
    r"\bmissing_region_root\(": {"cabundle.py", "target.py"},
    r"\btoken_shape\(": {"tokens.py", "target.py"},
    r"\.default_port\b": {"drivers/__init__.py", "target.py"},
    r"\biam_host\s+or\b|\biam_port\s+or\b": {"target.py"},
    r"difference_update_query\(": {"target.py"},
    r"\"disable\", \"allow\", \"prefer\"": {"drivers/postgresql.py"},
    # ours are tls.TLS_MODES'; drivers/postgresql.py spells asyncpg's and libpq's own words (they coincide)
    r"\"verify-full\", \"verify-ca\"|\"verify-ca\", \"verify-full\"": {"drivers/postgresql.py"},
}


@pytest.mark.parametrize("pattern", sorted(ONE_PLACE))
def test_each_rule_lives_in_one_place(pattern: str) -> None:
    """Grep the package (the emulator aside): nothing outside its module re-derives a rule."""
    found = {
        path.relative_to(PACKAGE).as_posix()
        for path in [*PACKAGE.glob("*.py"), *PACKAGE.glob("drivers/*.py")]
        if re.search(pattern, path.read_text())
    }
    assert found <= ONE_PLACE[pattern], found - ONE_PLACE[pattern]
