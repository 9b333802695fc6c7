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

import functools
import re

__all__ = ["KINDS", "REGION_PATTERN", "Endpoint", "is_region", "parse_hostname", "partition_of"]

#: Region names as AWS spells them: us-east-1, us-gov-west-1, cn-north-1, us-isob-east-1,
#: eusc-de-east-1 (the European Sovereign Cloud) ...
REGION_PATTERN = r"(?:eusc-[a-z]{2}|[a-z]{2}(?:-gov|-iso[a-z]?)?)-[a-z]+-[0-9]+"  # [0-9], not \d
_R = REGION_PATTERN
_REGION = rf"^{REGION_PATTERN}$"

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

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_ID = r"[a-z0-9]+"
_PREFIX = r"(?:(?P<prefix>cluster-ro|cluster-custom|cluster|shardgrp|proxy)-)?"

#: RDS hostname suffix (after ``<region>.rds.``) -> the partitions whose regions use it.
_SUFFIXES = {
    "amazonaws.com": ("aws", "aws-us-gov"),
    "amazonaws.com.cn": ("aws-cn",),  # the older China form, <region>.rds.amazonaws.com.cn
    "c2s.ic.gov": ("aws-iso",),
    "sc2s.sgov.gov": ("aws-iso-b",),
    "amazonaws.eu": ("aws-eusc",),  # botocore's partitions.json: dnsSuffix of aws-eusc
}

# One pattern for every RDS form (few patterns: compiling them is part of a cold start).
_RDS = (
    rf"^{_LABEL}(?P<extra>\.endpoint)?\.{_PREFIX}{_ID}\."
    rf"(?:(?P<region>{_R})\.rds\."
    rf"(?P<suffix>amazonaws\.com(?:\.cn)?|amazonaws\.eu|c2s\.ic\.gov|sc2s\.sgov\.gov)"
    rf"|rds\.(?P<cn_region>{_R})\.amazonaws\.com\.cn)$"
)
_GLOBAL = rf"^{_LABEL}\.global-{_ID}\.global\.rds\.amazonaws\.com$"
_DSQL = rf"^{_ID}\.dsql\.(?P<region>{_R})\.on\.aws$"


@functools.cache
def _pattern(source: str) -> re.Pattern[str]:
    """Compiled on first use: an RDS name's cold start compiles the RDS pattern alone."""
    return re.compile(source)


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
    """Whether ``name`` is spelled like an AWS region (``us-east-1``)."""
    return bool(_pattern(_REGION).match(name))


def partition_of(region: str) -> str:
    """The AWS partition a region belongs to."""
    return next(partition for prefix, partition in _PARTITIONS if region.startswith(prefix))


def parse_hostname(hostname: str) -> Endpoint | None:
    """Return the endpoint a hostname names, or ``None`` if it is not a known AWS form.

    Case and a trailing dot are ignored. A region whose partition contradicts the
    hostname's suffix (``cn-north-1`` under ``.amazonaws.com``) is not recognised.
    """
    name = hostname.strip().rstrip(".").lower()
    match = _pattern(_RDS).match(name)
    if match:
        region = match["cn_region"] or match["region"]
        allowed = _SUFFIXES["amazonaws.com.cn" if match["cn_region"] else match["suffix"]]
        partition = partition_of(region)
        if partition not in allowed:
            return None  # e.g. a China region under .amazonaws.com
        kind = _PREFIXES[match["prefix"]]
        if match["extra"] and kind != "proxy":
            return None  # only RDS Proxy has extra ``<ep>.endpoint.`` endpoints
        return Endpoint(kind, region, partition)
    if _pattern(_GLOBAL).match(name):
        return Endpoint("global", None, "aws")
    match = _pattern(_DSQL).match(name)
    if match and partition_of(match["region"]) == "aws":
        return Endpoint("dsql", match["region"], "aws")
    return None
