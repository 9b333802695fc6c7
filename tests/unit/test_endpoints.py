from __future__ import annotations

import pytest

from sqlalchemy_rds_iam.endpoints import Endpoint, parse_hostname


@pytest.mark.parametrize(
    ("hostname", "expected"),
    [
        ("mydb.c9akciq32lce.us-east-1.rds.amazonaws.com", Endpoint("instance", "us-east-1", "aws")),
        ("app.cluster-c9akciq32lce.eu-west-1.rds.amazonaws.com", Endpoint("cluster", "eu-west-1", "aws")),
        ("app.cluster-ro-c9akciq32lce.ap-southeast-5.rds.amazonaws.com",
         Endpoint("cluster-ro", "ap-southeast-5", "aws")),
        ("reports.cluster-custom-c9akciq32lce.us-east-2.rds.amazonaws.com",
         Endpoint("cluster-custom", "us-east-2", "aws")),
        ("myproxy.proxy-c9akciq32lce.ca-central-1.rds.amazonaws.com", Endpoint("proxy", "ca-central-1", "aws")),
        ("ro.endpoint.proxy-c9akciq32lce.us-west-2.rds.amazonaws.com", Endpoint("proxy", "us-west-2", "aws")),
        ("mydb.c9akciq32lce.rds.cn-north-1.amazonaws.com.cn", Endpoint("instance", "cn-north-1", "aws-cn")),
        ("app.cluster-c9akciq32lce.rds.cn-northwest-1.amazonaws.com.cn",
         Endpoint("cluster", "cn-northwest-1", "aws-cn")),
        ("mydb.c9akciq32lce.us-gov-west-1.rds.amazonaws.com", Endpoint("instance", "us-gov-west-1", "aws-us-gov")),
        ("APP.Cluster-C9AKCIQ32LCE.US-EAST-1.RDS.AMAZONAWS.COM.", Endpoint("cluster", "us-east-1", "aws")),
    ],
)
def test_rds_hostnames(hostname: str, expected: Endpoint) -> None:
    assert parse_hostname(hostname) == expected


@pytest.mark.parametrize(
    "hostname",
    [
        "localhost",
        "127.0.0.1",
        "db.internal.example.com",
        "mydb.c9akciq32lce.us-east-1.rds.amazonaws.com.evil.example",
        "rds.amazonaws.com",
        "mydb.us-east-1.rds.amazonaws.com",
    ],
)
def test_other_hostnames_are_not_guessed(hostname: str) -> None:
    assert parse_hostname(hostname) is None
