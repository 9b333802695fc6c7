"""A standard-library SigV4 query presigner: database tokens without importing botocore.

Importing botocore's signer and credential classes costs 50-70 ms of a cold start (Lambda's
case), signing itself 0.1 ms. This module signs the same presigned ``GET /`` request that
botocore's ``SigV4QueryAuth`` signs, byte for byte (``tests/unit/test_sigv4.py`` proves it
against botocore for generated users, hosts, ports, regions, session tokens and clocks):

* RDS / RDS Proxy: ``presign(host, port, {"Action": "connect", "DBUser": user},
  service="rds-db", region=..., expires=900, ...)``
* Aurora DSQL: ``presign(host, None, {"Action": "DbConnect"}, service="dsql", ...)``

It covers only what those tokens need: hosts made of ``[A-Za-z0-9._-]`` (DNS names and IPv4
addresses; :func:`supports` says whether a host qualifies), no headers, an empty body. For
anything else botocore stays the signer.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

__all__ = ["ALGORITHM", "clock", "presign", "supports"]

ALGORITHM = "AWS4-HMAC-SHA256"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: Characters botocore leaves unescaped in query keys and values (``botocore.utils.SAFE_CHARS``).
_SAFE = "-_.~"
#: Hosts whose URL form botocore passes through unchanged and whose ``Host`` header is simply
#: the lowercased name: no IPv6 brackets, userinfo, percent escapes or non-ASCII.
_PLAIN_HOST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
#: urllib's default port for https, which botocore leaves out of the signed ``Host`` header.
_HTTPS_PORT = 443
#: Epoch seconds when ``now`` is not given; replaceable, like botocore's
#: ``botocore.auth.get_current_datetime``, to sign as if at another time (clock-skew tests).
clock: Callable[[], float] = time.time


if TYPE_CHECKING:  # a Protocol class costs a cold start ~0.1 ms to build; only the type
    # checker reads it
    class SigningKeys(Protocol):
        """What signing needs from credentials (our ``FrozenCredentials``, botocore's alike)."""

        @property
        def access_key(self) -> str: ...

        @property
        def secret_key(self) -> str: ...

        @property
        def token(self) -> str | None: ...


def supports(host: str, port: int | None) -> bool:
    """Whether :func:`presign` produces botocore's exact token for this host and port."""
    # a set, not a regex: compiling one would cost every cold start ~0.1 ms
    return (host != "" and _PLAIN_HOST.issuperset(host)
            and (port is None or 0 <= port <= 65535))


def _encode(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k.encode(), safe=_SAFE)}={quote(v.encode(), safe=_SAFE)}"
                    for k, v in pairs)


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def presign(
    host: str,
    port: int | None,
    params: Mapping[str, str],
    *,
    service: str,
    region: str,
    expires: int,
    credentials: SigningKeys,
    now: float | None = None,
) -> str:
    """``host[:port]/?<params>&X-Amz-...&X-Amz-Signature=...``: a presigned GET, no scheme.

    ``params`` keep their order in the result (signing sorts its own copy); ``now`` is
    epoch seconds (default: :data:`clock`). Raises ``ValueError`` for a host or port
    :func:`supports` refuses.
    """
    if not supports(host, port):
        raise ValueError("host or port outside what the standard-library presigner covers")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock() if now is None else now))
    scope = f"{stamp[:8]}/{region}/{service}/aws4_request"
    netloc = host if port is None else f"{host}:{port}"
    signed_host = host.lower() if port is None or port == _HTTPS_PORT else f"{host.lower()}:{port}"
    auth = [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", f"{credentials.access_key}/{scope}"),
        ("X-Amz-Date", stamp),
        ("X-Amz-Expires", str(expires)),
        ("X-Amz-SignedHeaders", "host"),
    ]
    if credentials.token is not None:
        auth.append(("X-Amz-Security-Token", credentials.token))
    query = _encode([*params.items(), *auth])
    # Canonical query: the encoded pairs, sorted by encoded key, then by encoded value.
    canonical_query = "&".join(sorted(query.split("&"), key=lambda p: p.partition("=")[::2]))
    canonical_request = f"GET\n/\n{canonical_query}\nhost:{signed_host}\n\nhost\n{_EMPTY_SHA256}"
    string_to_sign = (f"{ALGORITHM}\n{stamp}\n{scope}\n"
                      f"{hashlib.sha256(canonical_request.encode()).hexdigest()}")
    key = _hmac(f"AWS4{credentials.secret_key}".encode(), stamp[:8])
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{netloc}/?{query}&X-Amz-Signature={signature}"
