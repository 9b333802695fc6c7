"""What an RDS hostname says: the kind of endpoint, its region and its AWS partition.

Tokens are signed for a region; users should not have to repeat the region that is
already spelled in their endpoint. Only names that match a known RDS pattern are
trusted; anything else (an IP, a tunnel, a CNAME) returns ``None`` and the region
must come from an option or the AWS configuration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Endpoint", "parse_hostname"]

#: Region names as AWS spells them: us-east-1, us-gov-west-1, cn-north-1, ap-southeast-5 ...
_REGION = r"[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d+"
#: The label between the name and the region: instance hash, or cluster/proxy prefixed hash.
_KIND = r"(?:(?P<kind>cluster-ro|cluster-custom|cluster|proxy)-)?[a-z0-9]+"

# Commercial and GovCloud: <name>.<kind+id>.<region>.rds.amazonaws.com
# China:                   <name>.<kind+id>.rds.<region>.amazonaws.com.cn
# RDS Proxy extra endpoints put one more label before the id: <ep>.endpoint.proxy-<id>...
_PATTERNS = (
    re.compile(rf"^[a-z0-9-]+(?:\.endpoint)?\.{_KIND}\.(?P<region>{_REGION})\.rds\.amazonaws\.com$"),
    re.compile(rf"^[a-z0-9-]+(?:\.endpoint)?\.{_KIND}\.rds\.(?P<region>{_REGION})\.amazonaws\.com\.cn$"),
)

_KINDS = {
    None: "instance",
    "cluster": "cluster",
    "cluster-ro": "cluster-ro",
    "cluster-custom": "cluster-custom",
    "proxy": "proxy",
}


@dataclass(frozen=True)
class Endpoint:
    """An RDS/Aurora/RDS Proxy endpoint recognised from its hostname."""

    kind: str
    """``instance``, ``cluster``, ``cluster-ro``, ``cluster-custom`` or ``proxy``."""
    region: str
    partition: str
    """``aws``, ``aws-cn`` or ``aws-us-gov``."""


def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def parse_hostname(hostname: str) -> Endpoint | None:
    """Return the endpoint a hostname names, or ``None`` if it is not an RDS hostname."""
    name = hostname.strip().rstrip(".").lower()
    for pattern in _PATTERNS:
        match = pattern.match(name)
        if match:
            region = match["region"]
            return Endpoint(_KINDS[match["kind"]], region, _partition(region))
    return None
