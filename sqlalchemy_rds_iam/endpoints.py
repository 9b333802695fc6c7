"""What an AWS database hostname says: the kind of endpoint, its region and its partition.

Tokens are signed for a region; users should not have to repeat the region that is
already spelled in their endpoint. The partition picks the trust store that verifies the
server (``cabundle.trust_store_for``). Only names that match a documented pattern are
trusted; anything else (an IP, a tunnel, a CNAME) returns ``None`` and the region must
come from an option or the AWS configuration.

Documented forms (``<region>`` as AWS spells it, ``<suffix>`` per partition below)::

    <name>.<id>.<region>.<suffix>                      instance
    <name>.cluster-<id>.<region>.<suffix>              Aurora cluster (writer)
    <name>.cluster-ro-<id>.<region>.<suffix>           Aurora reader
    <name>.cluster-custom-<id>.<region>.<suffix>       Aurora custom endpoint
    <name>.shardgrp-<id>.<region>.<suffix>             Aurora Limitless shard group
    <name>.proxy-<id>.<region>.<suffix>                RDS Proxy (default endpoint)
    <ep>.endpoint.proxy-<id>.<region>.<suffix>         RDS Proxy (extra endpoint)
    <name>.global-<id>.global.rds.amazonaws.com        Aurora global writer (no region)
    <name>.<id>.rds.<region>.amazonaws.com.cn          China (also the older form above)
    <name>.<id>.<region>.rds.amazonaws.eu              European Sovereign Cloud (all kinds)
    <cluster-id>.dsql.<region>.on.aws                  Aurora DSQL
"""

from __future__ import annotations

__all__ = ["KINDS", "REGION_PATTERN", "Endpoint", "is_region", "parse_hostname", "partition_of"]

#: Region names as AWS spells them: us-east-1, us-gov-west-1, cn-north-1, us-isob-east-1,
#: eusc-de-east-1 (the European Sovereign Cloud) ... As a regular expression for readers
#: and tests; :func:`is_region` checks the same by hand (no regex compiled on a cold start).
REGION_PATTERN = r"(?:eusc-[a-z]{2}|[a-z]{2}(?:-gov|-iso[a-z]?)?)-[a-z]+-[0-9]+"  # [0-9], not \d

#: Endpoint kinds, by the prefix of the label after the name (``None``: no prefix).
_PREFIXES = {
    None: "instance",
    "cluster": "cluster",
    "cluster-ro": "cluster-ro",
    "cluster-custom": "cluster-custom",
    "shardgrp": "limitless",
    "proxy": "proxy",
}
#: Every kind :func:`parse_hostname` returns.
KINDS = (*_PREFIXES.values(), "global", "dsql")

#: Region prefix -> partition; first match wins (so ``us-isob-`` before ``us-iso-``).
_PARTITIONS = (
    ("cn-", "aws-cn"),
    ("eusc-", "aws-eusc"),
    ("us-gov-", "aws-us-gov"),
    ("us-isob-", "aws-iso-b"),
    ("us-iso-", "aws-iso"),
    ("", "aws"),
)

#: RDS hostname suffix (after ``<region>.rds.``) -> the partitions whose regions use it.
_SUFFIXES = {
    "amazonaws.com": ("aws", "aws-us-gov"),
    "amazonaws.com.cn": ("aws-cn",),  # the older China form, <region>.rds.amazonaws.com.cn
    "c2s.ic.gov": ("aws-iso",),
    "sc2s.sgov.gov": ("aws-iso-b",),
    "amazonaws.eu": ("aws-eusc",),  # botocore's partitions.json: dnsSuffix of aws-eusc
}

# The forms are checked label by label with character sets, not with regular expressions:
# compiling the RDS pattern cost every cold start ~0.6 ms (issue 16). The unit tests hold
# the patterns this replaces and check both agree (tests/unit/test_endpoints.py):
#   <label>(.endpoint)?.(<prefix>-)?<id>.(<region>.rds.<suffix> | rds.<region>.amazonaws.com.cn)
#   <label>.global-<id>.global.rds.amazonaws.com
#   <id>.dsql.<region>.on.aws
# with <label> = [a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])? and <id> = [a-z0-9]+ (ASCII only).
_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")
_ALNUM = _LOWER | frozenset("0123456789")
_LABEL_CHARS = _ALNUM | {"-"}
_DIGITS = frozenset("0123456789")


def _label(text: str) -> bool:
    """A DNS label as RDS names use it: 1-63 of [a-z0-9-], not starting or ending with -."""
    return (0 < len(text) <= 63 and _LABEL_CHARS.issuperset(text)
            and text[0] != "-" and text[-1] != "-")


def _id(text: str) -> bool:
    return text != "" and _ALNUM.issuperset(text)


def _letters(text: str) -> bool:
    return text != "" and _LOWER.issuperset(text)


def _prefixed_id(label: str) -> tuple[bool, str | None]:
    """Whether ``label`` is ``(<prefix>-)?<id>``, and its prefix (``None``: none)."""
    for prefix in ("cluster-ro", "cluster-custom", "cluster", "shardgrp", "proxy"):
        if label.startswith(prefix) and label[len(prefix):len(prefix) + 1] == "-":
            if _id(label[len(prefix) + 1:]):
                return True, prefix
    return _id(label), None


def _rds_match(labels: list[str]) -> tuple[bool, str | None, str, str | None] | None:
    """``(extra, prefix, region, suffix)`` of an RDS form (``suffix`` ``None``: the older
    China form ``rds.<region>.amazonaws.com.cn``), or ``None``. Like the pattern, it reads
    ``<name>.endpoint.`` as an extra endpoint first and as an instance id after."""
    if len(labels) < 5 or not _label(labels[0]):
        return None
    for extra in ((True, False) if labels[1] == "endpoint" else (False,)):
        rest = labels[2:] if extra else labels[1:]
        good, prefix = _prefixed_id(rest[0])
        if not good:
            continue
        tail = rest[1:]
        if len(tail) >= 3 and is_region(tail[0]) and tail[1] == "rds":
            suffix = ".".join(tail[2:])
            if suffix in _SUFFIXES:
                return extra, prefix, tail[0], suffix
        if (len(tail) == 5 and tail[0] == "rds" and is_region(tail[1])
                and tail[2:] == ["amazonaws", "com", "cn"]):
            return extra, prefix, tail[1], None
    return None


class Endpoint(tuple[str, "str | None", str]):
    """A database endpoint recognised from its hostname: ``(kind, region, partition)``.

    - ``kind``: one of :data:`KINDS` (``instance``, ``cluster``, ..., ``proxy``, ``global``,
      ``dsql``);
    - ``region``: ``None`` only for the Aurora global writer endpoint, whose name has none;
    - ``partition``: ``aws``, ``aws-cn``, ``aws-us-gov``, ``aws-iso``, ``aws-iso-b`` or
      ``aws-eusc``.

    A triple written out by hand: a named tuple costs a cold start ~0.2 ms to build.
    """

    __slots__ = ()

    def __new__(cls, kind: str, region: str | None, partition: str) -> Endpoint:
        return tuple.__new__(cls, (kind, region, partition))

    @property
    def kind(self) -> str:
        return self[0]

    @property
    def region(self) -> str | None:
        return self[1]

    @property
    def partition(self) -> str:
        return self[2]

    def __repr__(self) -> str:
        return "Endpoint(kind={!r}, region={!r}, partition={!r})".format(*self)


def is_region(name: str) -> bool:
    """Whether ``name`` is spelled like an AWS region (``us-east-1``): :data:`REGION_PATTERN`."""
    parts = name.split("-")
    if len(parts) == 4 and parts[0] == "eusc":
        head_ok = len(parts[1]) == 2 and _letters(parts[1])
    elif len(parts) == 4:
        head_ok = (len(parts[0]) == 2 and _letters(parts[0])
                   and (parts[1] == "gov" or (parts[1][:3] == "iso" and len(parts[1]) <= 4
                                              and _LOWER.issuperset(parts[1]))))
    elif len(parts) == 3:
        head_ok = len(parts[0]) == 2 and _letters(parts[0])
    else:
        return False
    return head_ok and _letters(parts[-2]) and parts[-1] != "" and _DIGITS.issuperset(parts[-1])


def partition_of(region: str) -> str:
    """The AWS partition a region belongs to."""
    return next(partition for prefix, partition in _PARTITIONS if region.startswith(prefix))


def parse_hostname(hostname: str) -> Endpoint | None:
    """Return the endpoint a hostname names, or ``None`` if it is not a known AWS form.

    Case and a trailing dot are ignored. A region whose partition contradicts the
    hostname's suffix (``cn-north-1`` under ``.amazonaws.com``) is not recognised.
    """
    name = hostname.strip().rstrip(".").lower()
    labels = name.split(".")
    match = _rds_match(labels)
    if match:
        extra, prefix, region, suffix = match
        allowed = _SUFFIXES["amazonaws.com.cn" if suffix is None else suffix]
        partition = partition_of(region)
        if partition not in allowed:
            return None  # e.g. a China region under .amazonaws.com
        kind = _PREFIXES[prefix]
        if extra and kind != "proxy":
            return None  # only RDS Proxy has extra ``<ep>.endpoint.`` endpoints
        return Endpoint(kind, region, partition)
    if (len(labels) == 6 and _label(labels[0]) and labels[1][:7] == "global-"
            and _id(labels[1][7:]) and labels[2:] == ["global", "rds", "amazonaws", "com"]):
        return Endpoint("global", None, "aws")
    if (len(labels) == 5 and _id(labels[0]) and labels[1] == "dsql" and is_region(labels[2])
            and labels[3:] == ["on", "aws"] and partition_of(labels[2]) == "aws"):
        return Endpoint("dsql", labels[2], "aws")
    return None
