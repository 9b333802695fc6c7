"""Hypothesis fuzzing of the plugin's options: any query values, hosts, ports, users.

Properties: every refusal is an ``RdsIamError`` (never a ``TypeError``, ``ValueError`` or
``UnicodeError`` from deep inside); an accepted engine carries exactly the options given,
none left in the driver's URL; and nothing connects while options are being parsed.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import psycopg2
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqlalchemy_rds_iam import RdsIamError, connector
from sqlalchemy_rds_iam.cabundle import SHIPPED_CA_BUNDLE
from sqlalchemy_rds_iam.options import OPTION_NAMES, parse_options

RDS = "db.cluster-abc123.us-east-1.rds.amazonaws.com"
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

texts = st.text(max_size=30)
# Unicode digits and numbers: str.isdigit() and re's \d say yes to many that int() refuses.
digits = st.text(st.characters(categories=("Nd", "No")).filter(str.isdigit), min_size=1, max_size=5)
regions = st.builds("{}-{}-{}".format, st.sampled_from(["us", "eu", "ap", "us-gov", "EU"]),
                    st.sampled_from(["east", "west", "central"]), st.one_of(digits, st.just("1")))
value_for = {
    "aws_region": st.one_of(texts, regions, st.just(" eu-west-1 ")),
    "aws_profile": texts,
    "iam_host": st.one_of(texts, st.sampled_from(["localhost", RDS, " h ", "é.example"])),
    "iam_port": st.one_of(texts, digits, st.integers(-10, 70000).map(str),
                          st.sampled_from([" 6432 ", "0x10", "1e3", ""])),
    "iam_ca_bundle": st.one_of(texts, st.just(str(SHIPPED_CA_BUNDLE)),
                               st.sampled_from(["/", "/nonexistent.pem", "a\0b", "x" * 5000])),
    "iam_tls": st.one_of(texts, st.sampled_from(["verify-full", "VERIFY-CA", "disable"])),
    "aws_role_arn": st.one_of(texts, st.just("arn:aws:iam::123456789012:role/db"),
                              st.builds("arn:aws:iam::{}:role/{}".format, texts, texts)),
    "aws_role_session_name": texts,
    "aws_external_id": texts,
    "aws_role_duration": st.one_of(texts, digits, st.integers(-10, 50_000).map(str)),
    "iam_token_lifetime": st.one_of(texts, digits, st.integers(-10, 700_000).map(str)),
    "iam_connect_retries": st.one_of(texts, digits, st.integers(-3, 30).map(str)),
    "iam_retry_budget": st.one_of(texts, digits, st.floats(allow_nan=True).map(str),
                                  st.sampled_from(["1.5", ".5", "5.", "60", "60.5", "1e1"])),
}
typos = st.sampled_from(["aws_regoin", "iam_prot", "iam_", "aws_", "iam_tls2"])
driver_params = st.sampled_from(["connect_timeout", "application_name", "options"])


@st.composite
def queries(draw: st.DrawFn) -> dict[str, str | tuple[str, ...]]:
    """A URL query: some of our options (maybe repeated or empty), typos, driver parameters."""
    query: dict[str, str | tuple[str, ...]] = {}
    for name in draw(st.lists(st.sampled_from(OPTION_NAMES), unique=True)):
        values = draw(st.lists(value_for[name], min_size=1, max_size=3))
        query[name] = values[0] if len(values) == 1 else tuple(values)
    if draw(st.booleans()):
        query[draw(typos)] = draw(texts)
    if draw(st.booleans()):
        query[draw(driver_params)] = draw(st.text(alphabet="abc123", min_size=1, max_size=5))
    return query


@pytest.mark.parametrize("name", OPTION_NAMES)
@given(data=st.data())
@settings(max_examples=150, deadline=None)
def test_each_option_refuses_only_with_our_error(name: str, data: st.DataObject) -> None:
    value = data.draw(st.one_of(value_for[name], st.lists(value_for[name]).map(tuple)))
    try:
        parse_options({name: value})
    except RdsIamError:
        pass


@given(query=queries())
@FUZZ
def test_parse_options_refuses_only_with_our_error(query: dict[str, Any]) -> None:
    try:
        parse_options(query)
    except RdsIamError:
        pass


@given(
    query=queries(),
    user=st.one_of(st.just("iamuser"), texts),
    host=st.one_of(st.just(RDS), st.just("127.0.0.1"), texts),
    port=st.one_of(st.none(), st.integers(0, 99999)),
)
@FUZZ
def test_create_engine_is_all_or_nothing(query: dict[str, Any], user: str, host: str,
                                         port: int | None) -> None:
    url = sa.engine.URL.create("postgresql+psycopg2", username=user, host=host, port=port,
                               database="app", query={"plugin": "rds_iam", **query})
    with mock.patch.object(psycopg2, "connect", side_effect=AssertionError("connected")):
        try:
            engine = sa.create_engine(url)
        except RdsIamError:
            return
        try:
            options = parse_options(query)  # what was accepted, parsed on its own
            iam = connector(engine)
            # everything given is in effect, nothing was half-applied or dropped
            assert iam.target.user == user
            assert iam.target.host == (options.iam_host or host)
            assert iam.target.port == (options.iam_port or port or 5432)
            assert iam.target.tls_mode == options.iam_tls
            assert iam.target.ca_bundle == (options.iam_ca_bundle or iam.target.ca_bundle)
            assert options.aws_region is None or iam.target.region == options.aws_region
            assert not set(engine.url.query) & set(OPTION_NAMES)
        finally:
            engine.dispose()


def test_fuzz_found_these() -> None:
    """Inputs the fuzzing turned up, kept as plain regressions."""
    with pytest.raises(RdsIamError, match="integer"):
        parse_options({"iam_port": "²"})  # str.isdigit() is true, int() refuses it
    with pytest.raises(RdsIamError, match="not a region"):
        parse_options({"aws_region": "us-east-\u0661"})  # ARABIC-INDIC ONE matched \\d
    with pytest.raises(RdsIamError, match="NUL"):
        parse_options({"iam_ca_bundle": "a\0b"})  # ssl raised ValueError


@given(text=st.one_of(
    texts,
    st.builds("{}://{}@{}:{}/app?{}".format,
              st.sampled_from(["postgresql+psycopg2", "mysql", "mysql+asyncmy", "sqlite", "x"]),
              texts, texts, st.one_of(st.integers(0, 99999).map(str), texts), texts),
))
@settings(max_examples=100, deadline=None)
def test_cli_token_answers_any_url_with_an_exit_code(text: str) -> None:
    from sqlalchemy_rds_iam.cli import main

    with mock.patch("sys.stdout"), mock.patch("sys.stderr"):
        code = main(["token", text])  # no AWS credentials here: nothing gets signed
    assert code in (2, 3, 4, 8)  # options, region, credentials, trust store
