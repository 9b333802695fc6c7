"""botocore's refresh rules, shared by the sources that read credentials without botocore.

:class:`~.environment.EnvironmentSource` (``AWS_*`` variables) and
:class:`~.container.ContainerSource` (the container credentials endpoint) both hold
temporary credentials with an expiry, and both must refresh them exactly when botocore's
``RefreshableCredentials`` would: within the advisory window they try and keep the old
values on failure, within the mandatory window they must succeed. The expiry arrives as
ISO 8601 text; only the forms whose meaning is beyond doubt are read here, anything else
is left to botocore (:class:`NotPlain`).
"""

from __future__ import annotations

import datetime
import functools
import re

from .base import NotPlain

__all__ = ["ADVISORY_REFRESH", "MANDATORY_REFRESH", "STILL_EXPIRED", "NotPlain", "parse_expiry"]

#: botocore's ``RefreshableCredentials`` windows, in seconds before the expiry: within the
#: advisory one it refreshes and keeps the old values if that fails; within the mandatory
#: one it must refresh.
ADVISORY_REFRESH, MANDATORY_REFRESH = 15 * 60, 10 * 60
#: botocore's message when a refresh returned credentials that have already expired.
STILL_EXPIRED = "Credentials were refreshed, but the refreshed credentials are still expired."
#: The ISO 8601 form STS, the CLI (``export-credentials``) and containers write. Anything
#: else dateutil might read differently, so botocore reads it.
_ISO_EXPIRY = r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(Z|[+-]\d\d:\d\d)"


@functools.cache
def _iso_expiry() -> re.Pattern[str]:
    """Compiled on first use: Lambda's environment has no expiry to parse."""
    return re.compile(_ISO_EXPIRY, re.ASCII)


def parse_expiry(text: str) -> float:
    """Epoch seconds of an ISO 8601 expiry with a zone; :class:`NotPlain` for anything else."""
    match = _iso_expiry().fullmatch(text)
    if match is None:
        raise NotPlain
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    fraction, zone = match.group(7), match.group(8)
    offset = datetime.timedelta()
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        offset = sign * datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    try:
        moment = datetime.datetime(
            year, month, day, hour, minute, second, int((fraction or "0").ljust(6, "0")),
            tzinfo=datetime.timezone(offset),
        )
    except ValueError as exc:  # month 13, hour 25, offset of a day or more ...
        raise NotPlain from exc
    return moment.timestamp()
