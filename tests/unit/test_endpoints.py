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


# --- the patterns endpoints.py checks by hand, as it held them before (issue 16) ----------

import re  # noqa: E402

_R = r"(?:eusc-[a-z]{2}|[a-z]{2}(?:-gov|-iso[a-z]?)?)-[a-z]+-[0-9]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_ID = r"[a-z0-9]+"
_RDS = re.compile(
    rf"{_LABEL}(?P<extra>\.endpoint)?\."
    rf"(?:(?P<prefix>cluster-ro|cluster-custom|cluster|shardgrp|proxy)-)?{_ID}\."
    rf"(?:(?P<region>{_R})\.rds\."
    rf"(?P<suffix>amazonaws\.com(?:\.cn)?|amazonaws\.eu|c2s\.ic\.gov|sc2s\.sgov\.gov)"
    rf"|rds\.(?P<cn_region>{_R})\.amazonaws\.com\.cn)")
_GLOBAL = re.compile(rf"{_LABEL}\.global-{_ID}\.global\.rds\.amazonaws\.com")
_DSQL = re.compile(rf"{_ID}\.dsql\.(?P<region>{_R})\.on\.aws")
_PREFIX_KINDS = {None: "instance", "cluster": "cluster", "cluster-ro": "cluster-ro",
                 "cluster-custom": "cluster-custom", "shardgrp": "limitless", "proxy": "proxy"}
_SUFFIX_PARTITIONS = {"amazonaws.com": ("aws", "aws-us-gov"), "amazonaws.com.cn": ("aws-cn",),
                      "c2s.ic.gov": ("aws-iso",), "sc2s.sgov.gov": ("aws-iso-b",),
                      "amazonaws.eu": ("aws-eusc",)}


def reference(hostname: str) -> Endpoint | None:
    """parse_hostname as the regular expressions said it (fullmatch: no trailing newline)."""
    name = hostname.strip().rstrip(".").lower()
    match = _RDS.fullmatch(name)
    if match:
        region = match["cn_region"] or match["region"]
        allowed = _SUFFIX_PARTITIONS["amazonaws.com.cn" if match["cn_region"] else match["suffix"]]
        if partition_of(region) not in allowed:
            return None
        kind = _PREFIX_KINDS[match["prefix"]]
        if match["extra"] and kind != "proxy":
            return None
        return Endpoint(kind, region, partition_of(region))
    if _GLOBAL.fullmatch(name):
        return Endpoint("global", None, "aws")
    match = _DSQL.fullmatch(name)
    if match and partition_of(match["region"]) == "aws":
        return Endpoint("dsql", match["region"], "aws")
    return None


#: Pieces the hostnames below are assembled from: every label the forms name, near misses
#: (hyphens at the edges, upper case, non-ASCII letters and digits, empty labels).
PIECES = ["mydb", "a", "x-1", "-x", "x-", "endpoint", "proxy-abc", "cluster-abc", "cluster-ro-1",
          "cluster-custom-z9", "shardgrp-0", "cluster-", "cluster-ro-", "proxy", "global-abc",
          "global", "globalxabc", "rds", "dsql", "on", "aws", "amazonaws", "com", "cn", "eu", "c2s", "ic", "gov",
          "sc2s", "sgov", "us-east-1", "us-gov-west-1", "cn-north-1", "us-iso-east-1",
          "us-isob-east-1", "us-isobb-east-1", "eusc-de-east-1", "eusc-d-east-1", "us-east-",
          "us--1", "u-east-1", "usa-east-1", "us-east-1x", "us-east-\u0661", "us-ēast-1", "US-EAST-1",
          "", "a" * 63, "a" * 64, "ab_c", "abc def", "xn--e1a"]


#: The forms, slot by slot: each slot draws a value that fits it or any of PIECES (a near
#: miss in one place of an otherwise valid name is where a hand check goes wrong).
SLOTS = {
    "label": ["mydb", "a", "x-1", "a" * 63], "id": ["abc", "c9akciq32lce", "0"],
    "prefixed": ["proxy-abc", "abc", "cluster-abc", "cluster-ro-1", "cluster-custom-z9", "shardgrp-0",
                 ],
    "region": ["us-east-1", "us-gov-west-1", "cn-north-1", "us-iso-east-1", "us-isob-east-1",
               "eusc-de-east-1", "eu-west-3"],
}
FORMS_BY_SLOT = [
    ["label", "prefixed", "us-east-1", "rds", "amazonaws", "com"],
    ["label", "endpoint", "prefixed", "us-gov-west-1", "rds", "amazonaws", "com"],
    ["label", "prefixed", "cn-north-1", "rds", "amazonaws", "com", "cn"],
    ["label", "prefixed", "rds", "cn-northwest-1", "amazonaws", "com", "cn"],
    ["label", "endpoint", "eu-west-3", "rds", "amazonaws", "com"],
    ["label", "prefixed", "eusc-de-east-1", "rds", "amazonaws", "eu"],
    ["label", "prefixed", "us-iso-east-1", "rds", "c2s", "ic", "gov"],
    ["label", "prefixed", "us-isob-east-1", "rds", "sc2s", "sgov", "gov"],
    ["label", "global-abc", "global", "rds", "amazonaws", "com"],
    ["id", "dsql", "us-east-2", "on", "aws"],
]


@pytest.mark.parametrize("form", FORMS_BY_SLOT, ids=".".join)
@pytest.mark.parametrize("miss", PIECES)
def test_one_near_miss_anywhere_is_judged_as_the_patterns_judge_it(form: list[str],
                                                                   miss: str) -> None:
    """Each form with its slots filled validly, then one slot at a time given ``miss``."""
    valid = [SLOTS.get(slot, [slot])[0] for slot in form]
    assert parse_hostname(".".join(valid)) == reference(".".join(valid)) is not None
    for i in range(len(form)):
        host = ".".join([*valid[:i], miss, *valid[i + 1:]])
        assert parse_hostname(host) == reference(host), host


@given(st.sampled_from(FORMS_BY_SLOT), st.data(), st.sampled_from(["", ".", "\n", " "]))
def test_the_hand_checks_are_the_patterns_they_replace(form: list[str], data: st.DataObject,
                                                       end: str) -> None:
    labels = [data.draw(st.sampled_from(SLOTS.get(slot, [slot]))) for slot in form]
    host = ".".join(labels) + end
    assert parse_hostname(host) == reference(host)


@pytest.mark.parametrize("name", [*PIECES, *SLOTS["region"], "us-gov-west-1\n", "us-isob-east-12"])
def test_is_region_on_near_misses(name: str) -> None:
    assert is_region(name) == (re.fullmatch(_R, name) is not None)


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-", max_size=80))
def test_the_hand_checks_agree_on_arbitrary_text(text: str) -> None:
    assert parse_hostname(text) == reference(text)


@given(st.one_of(st.sampled_from(PIECES), st.text(max_size=20),
                 st.from_regex(rf"\A{_R}\Z"), st.from_regex(r"\A[a-z]{2,4}(-[a-z]{1,4}){1,3}-[0-9]\Z")))
def test_is_region_is_the_region_pattern(name: str) -> None:
    assert is_region(name) == (re.fullmatch(_R, name) is not None)
