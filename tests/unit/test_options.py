from __future__ import annotations

from pathlib import Path

import pytest

from sqlalchemy_rds_iam import ConfigurationError
from sqlalchemy_rds_iam.cabundle import SHIPPED_CA_BUNDLE
from sqlalchemy_rds_iam.options import Options, parse_options


def test_defaults() -> None:
    assert parse_options({}) == Options()
    assert Options().iam_tls == "verify-full"


def test_all_url_options() -> None:
    options = parse_options(
        {
            "aws_region": "EU-West-1",
            "aws_profile": "prod",
            "iam_host": "db.example.com",
            "iam_port": "6432",
            "iam_ca_bundle": str(SHIPPED_CA_BUNDLE),
            "iam_tls": "verify-ca",
            "sslmode": "verify-full",  # not ours: ignored here, left to the driver
        },
    )
    assert options == Options(aws_region="eu-west-1", aws_profile="prod", iam_host="db.example.com",
                              iam_port=6432, iam_ca_bundle=str(SHIPPED_CA_BUNDLE), iam_tls="verify-ca")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"iam_tls": "require"}, "iam_tls"),
        ({"iam_port": "54x"}, "must be an integer"),
        ({"iam_port": "0"}, "between 1 and 65535"),
        ({"iam_port": "70000"}, "between 1 and 65535"),
        ({"aws_region": "useast1"}, "not a region name"),
        ({"aws_regoin": "us-east-1"}, "unknown option"),
        ({"iam_hots": "x"}, "unknown option"),
        ({"aws_profile": ""}, "non-empty"),
        ({"aws_region": ("us-east-1", "us-east-2")}, "given 2 times"),
        ({"iam_ca_bundle": "/nonexistent/ca.pem"}, "cannot read"),
        ({"boto3_session": object()}, "cannot be a URL parameter"),
    ],
)
def test_bad_url_options(values: dict[str, object], message: str) -> None:
    """Each refusal names the option it is about, besides saying what is wrong with it."""
    with pytest.raises(ConfigurationError, match=message) as info:
        parse_options(values)
    (name,) = values
    assert name in str(info.value)


def test_ca_bundle_without_certificates(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    with pytest.raises(ConfigurationError, match="holds no PEM certificate"):
        parse_options({"iam_ca_bundle": str(bogus)})


def test_boto3_session_keyword() -> None:
    import boto3

    session = boto3.Session(region_name="us-west-2")
    assert parse_options(keywords={"boto3_session": session}).boto3_session is session
    with pytest.raises(ConfigurationError, match=r"boto3\.Session"):
        parse_options(keywords={"boto3_session": "default"})
    with pytest.raises(ConfigurationError, match="not both"):
        parse_options(keywords={"boto3_session": session, "aws_profile": "x"})


def test_integer_port_keyword() -> None:
    assert parse_options(keywords={"iam_port": 3306}).iam_port == 3306
    with pytest.raises(ConfigurationError):
        parse_options(keywords={"iam_port": True})
