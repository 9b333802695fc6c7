"""Verify an Aurora DSQL token the way DSQL does, with the standard library only.

A DSQL token is a SigV4-presigned ``GET https://<host>/?Action=DbConnect[Admin]`` for
service ``dsql``: no port and no ``DBUser`` in it (the role logging in is checked against
the action instead: ``DbConnectAdmin`` for ``admin`` only, ``DbConnect`` for every other
role), and a lifetime (``X-Amz-Expires``) of 1 to 604,800 seconds chosen by the client.
A pure function, so the emulator's verifier and offline tests can share it.
"""

from __future__ import annotations

import datetime as _dt
import hmac
import importlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

__all__ = ["MAX_EXPIRES", "DsqlVerdict", "verify_dsql_token"]


if TYPE_CHECKING:
    from sqlalchemy_rds_iam.testing import sigv4_check
else:
    # In the verifier process, verifier.py loaded sigv4_check.py (its copy, by path) before
    # it loads this module: that one. Imported from the package (tests): the package's.
    sigv4_check = sys.modules.get("sigv4_check") or importlib.import_module(
        f"{__package__}.sigv4_check"
    )


#: DSQL's longest token lifetime, in seconds (one week).
MAX_EXPIRES = 604_800
_REQUIRED = ("Action", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
             "X-Amz-SignedHeaders", "X-Amz-Signature")


@dataclass(frozen=True)
class DsqlVerdict:
    """``ok`` and, when refused, a ``reason`` that never contains the signature."""

    ok: bool
    reason: str = ""
    access_key_id: str | None = None


def _refuse(reason: str, access_key_id: str | None = None) -> DsqlVerdict:
    return DsqlVerdict(False, reason, access_key_id)


def _params(query: str) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for pair in query.split("&"):
        key, sep, value = pair.partition("=")
        if not sep or unquote(key) in params:
            return None
        params[unquote(key)] = unquote(value)
    return params


def _epoch(amz_date: str) -> float | None:
    try:
        moment = _dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")
    except ValueError:
        return None
    return moment.replace(tzinfo=_dt.timezone.utc).timestamp()


def verify_dsql_token(
    token: str,
    *,
    host: str,
    role: str,
    region: str,
    secrets: Mapping[str, str],
    now: float,
    skew: float = 300.0,
) -> DsqlVerdict:
    """Check ``token`` for a login as ``role`` to the DSQL cluster ``host`` in ``region``.

    ``secrets`` maps access key ids to secret keys (the identities the server knows).
    """
    where, sep, query = token.partition("/?")
    if not sep or where.lower() != host.lower():
        return _refuse("token is not for this host (or carries a port)")
    params = _params(query)
    if params is None or any(name not in params for name in _REQUIRED):
        return _refuse("malformed token query")
    if "DBUser" in params:
        return _refuse("DBUser in a DSQL token (an RDS token?)")
    expected = "DbConnectAdmin" if role == "admin" else "DbConnect"
    if params["Action"] != expected:
        return _refuse(f"Action={params['Action']} cannot log in as {role!r}; needs {expected}")
    algorithm, signed = params["X-Amz-Algorithm"], params["X-Amz-SignedHeaders"]
    if algorithm != sigv4_check.ALGORITHM or signed != "host":
        return _refuse("unsupported signing algorithm or signed headers")
    access_key, _, scope = params["X-Amz-Credential"].partition("/")
    date, _, rest = scope.partition("/")
    if rest != f"{region}/dsql/aws4_request":
        return _refuse(f"credential scope is not {region}/dsql", access_key)
    signed_at = _epoch(params["X-Amz-Date"])
    expires = params["X-Amz-Expires"]
    if signed_at is None or not params["X-Amz-Date"].startswith(date) or not expires.isdigit():
        return _refuse("malformed date or expiry", access_key)
    if not 1 <= int(expires) <= MAX_EXPIRES:
        return _refuse(f"X-Amz-Expires must be 1..{MAX_EXPIRES}", access_key)
    if now < signed_at - skew:
        return _refuse("token signed in the future (clock skew)", access_key)
    if now > signed_at + int(expires):
        return _refuse("token expired", access_key)
    secret = secrets.get(access_key)
    if secret is None:
        return _refuse("unknown access key", access_key)
    wanted = sigv4_check.presigned_get_signature(host.lower(), params, secret, scope)
    if not hmac.compare_digest(wanted, params["X-Amz-Signature"]):
        return _refuse("signature does not match", access_key)
    return DsqlVerdict(True, "", access_key)
