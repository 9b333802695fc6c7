"""The endpoint table: every documented hostname form, partition included (and property tests)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sqlalchemy_rds_iam.endpoints import KINDS, Endpoint, is_region, parse_hostname, partition_of

ID = "c9akciq32lce"
DSQL_ID = "abcdefghijklmnopqrstuvwxyz"

#: Every documented hostname form, with what it must parse to.
FORMS = [
    (f"mydb.{ID}.us-east-1.rds.amazonaws.com", Endpoint("instance", "us-east-1", "aws")),
    (f"app.cluster-{ID}.eu-west-1.rds.amazonaws.com", Endpoint("cluster", "eu-west-1", "aws")),
    (f"app.cluster-ro-{ID}.ap-southeast-5.rds.amazonaws.com",
     Endpoint("cluster-ro", "ap-southeast-5", "aws")),
    (f"reports.cluster-custom-{ID}.us-east-2.rds.amazonaws.com",
     Endpoint("cluster-custom", "us-east-2", "aws")),
    (f"lim.shardgrp-{ID}.us-east-1.rds.amazonaws.com", Endpoint("limitless", "us-east-1", "aws")),
    (f"myproxy.proxy-{ID}.ca-central-1.rds.amazonaws.com", Endpoint("proxy", "ca-central-1", "aws")),
    (f"ro.endpoint.proxy-{ID}.us-west-2.rds.amazonaws.com", Endpoint("proxy", "us-west-2", "aws")),
    (f"app.global-{ID}.global.rds.amazonaws.com", Endpoint("global", None, "aws")),
    (f"mydb.{ID}.rds.cn-north-1.amazonaws.com.cn", Endpoint("instance", "cn-north-1", "aws-cn")),
    (f"app.cluster-{ID}.rds.cn-northwest-1.amazonaws.com.cn",
     Endpoint("cluster", "cn-northwest-1", "aws-cn")),
    (f"mydb.{ID}.cn-north-1.rds.amazonaws.com.cn", Endpoint("instance", "cn-north-1", "aws-cn")),
    (f"p.proxy-{ID}.rds.cn-north-1.amazonaws.com.cn", Endpoint("proxy", "cn-north-1", "aws-cn")),
    (f"mydb.{ID}.us-gov-west-1.rds.amazonaws.com", Endpoint("instance", "us-gov-west-1", "aws-us-gov")),
    (f"app.cluster-{ID}.us-gov-east-1.rds.amazonaws.com",
     Endpoint("cluster", "us-gov-east-1", "aws-us-gov")),
    (f"mydb.{ID}.us-iso-east-1.rds.c2s.ic.gov", Endpoint("instance", "us-iso-east-1", "aws-iso")),
    (f"mydb.{ID}.us-isob-east-1.rds.sc2s.sgov.gov",
     Endpoint("instance", "us-isob-east-1", "aws-iso-b")),
    (f"{DSQL_ID}.dsql.us-east-1.on.aws", Endpoint("dsql", "us-east-1", "aws")),
    (f"APP.Cluster-{ID.upper()}.US-EAST-1.RDS.AMAZONAWS.COM.", Endpoint("cluster", "us-east-1", "aws")),
    (f"{DSQL_ID.upper()}.DSQL.EU-WEST-1.ON.AWS.", Endpoint("dsql", "eu-west-1", "aws")),
]


@pytest.mark.parametrize(("hostname", "expected"), FORMS)
def test_documented_forms(hostname: str, expected: Endpoint) -> None:
    assert parse_hostname(hostname) == expected


def test_every_kind_is_covered() -> None:
    assert {e.kind for _, e in FORMS} == set(KINDS)


@pytest.mark.parametrize(
    "hostname",
    [
        "localhost",
        "127.0.0.1",
        "db.internal.example.com",
        f"mydb.{ID}.us-east-1.rds.amazonaws.com.evil.example",
        "rds.amazonaws.com",
        "mydb.us-east-1.rds.amazonaws.com",
        f"mydb.{ID}.cn-north-1.rds.amazonaws.com",  # China is never under .amazonaws.com
        f"mydb.{ID}.rds.us-east-1.amazonaws.com.cn",  # and commercial never under .cn
        f"mydb.{ID}.us-east-1.rds.c2s.ic.gov",  # ISO suffix, commercial region
        f"mydb.{ID}.us-iso-east-1.rds.amazonaws.com",  # and an ISO region, commercial suffix
        f"ro.endpoint.cluster-{ID}.us-east-1.rds.amazonaws.com",  # only proxies have .endpoint.
        f"{DSQL_ID}.dsql.cn-north-1.on.aws",
        f"x.{DSQL_ID}.dsql.us-east-1.on.aws",
        f"app.global-{ID}.us-east-1.rds.amazonaws.com",  # not the global form, nor an instance
        f"mydb.{ID}.eusc-de-east-1.rds.amazonaws.com",  # EUSC is only under .amazonaws.eu
        f"mydb.{ID}.eu-central-1.rds.amazonaws.eu",  # and commercial never under .eu
        f"{DSQL_ID}.dsql.eusc-de-east-1.on.aws",
    ],
)
def test_other_hostnames_are_not_guessed(hostname: str) -> None:
    assert parse_hostname(hostname) is None


@pytest.mark.parametrize(
    ("region", "partition"),
    [("us-east-1", "aws"), ("cn-northwest-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov"),
     ("us-iso-east-1", "aws-iso"), ("us-isob-east-1", "aws-iso-b"), ("eu-isoe-west-1", "aws"),
     ("eusc-de-east-1", "aws-eusc")],
)
def test_partition_of(region: str, partition: str) -> None:
    assert is_region(region)
    assert partition_of(region) == partition


# --- properties -------------------------------------------------------------------------

labels = st.from_regex(r"\A[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?\Z")
ids = st.from_regex(r"\A[a-z0-9]{1,16}\Z")
regions = st.sampled_from(
    ["us-east-1", "eu-west-3", "ap-southeast-5", "mx-central-1", "us-gov-west-1", "us-gov-east-1",
     "cn-north-1", "cn-northwest-1", "us-iso-east-1", "us-isob-east-1", "eusc-de-east-1"]
)
prefixes = st.sampled_from(
    [("", "instance"), ("cluster-", "cluster"), ("cluster-ro-", "cluster-ro"),
     ("cluster-custom-", "cluster-custom"), ("shardgrp-", "limitless"), ("proxy-", "proxy")]
)
#: How each partition spells an RDS hostname around "<label>.<prefix><id>".
SPELLINGS = {
    "aws": ["{h}.{r}.rds.amazonaws.com"],
    "aws-us-gov": ["{h}.{r}.rds.amazonaws.com"],
    "aws-cn": ["{h}.rds.{r}.amazonaws.com.cn", "{h}.{r}.rds.amazonaws.com.cn"],
    "aws-iso": ["{h}.{r}.rds.c2s.ic.gov"],
    "aws-iso-b": ["{h}.{r}.rds.sc2s.sgov.gov"],
    "aws-eusc": ["{h}.{r}.rds.amazonaws.eu"],
}


@given(labels, prefixes, ids, regions, st.data())
def test_rds_names_round_trip(label: str, prefix: tuple[str, str], id_: str, region: str,
                              data: st.DataObject) -> None:
    """Any name/id in any partition's spelling gives back its kind, region and partition,
    whatever the case and with or without a trailing dot."""
    partition = partition_of(region)
    spelling = data.draw(st.sampled_from(SPELLINGS[partition]))
    host = spelling.format(h=f"{label}.{prefix[0]}{id_}", r=region)
    host = data.draw(st.sampled_from([host, host.upper(), host + "."]))
    assert parse_hostname(host) == Endpoint(prefix[1], region, partition)


@given(labels, ids, regions)
def test_proxy_extra_endpoints(label: str, id_: str, region: str) -> None:
    partition = partition_of(region)
    host = SPELLINGS[partition][0].format(h=f"{label}.endpoint.proxy-{id_}", r=region)
    assert parse_hostname(host) == Endpoint("proxy", region, partition)


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-", max_size=80))
def test_arbitrary_text_never_raises_and_only_matches_aws_suffixes(text: str) -> None:
    endpoint = parse_hostname(text)
    if endpoint is not None:
        assert text.rstrip(".").endswith(
            (".amazonaws.com", ".amazonaws.com.cn", ".c2s.ic.gov", ".sc2s.sgov.gov", ".on.aws")
        )
        assert endpoint.kind in KINDS


@given(st.text(max_size=40))
def test_unicode_never_raises(text: str) -> None:
    parse_hostname(text)


@given(labels, ids)
def test_suffix_spoofing_is_not_recognised(label: str, id_: str) -> None:
    assert parse_hostname(f"{label}.{id_}.us-east-1.rds.amazonaws.com.{label}.example") is None
