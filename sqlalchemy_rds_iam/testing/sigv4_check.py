"""The SigV4 signature of a presigned ``GET /`` that signs only ``host``: both verifiers' check.

RDS tokens (``verifier.py``) and Aurora DSQL tokens (``dsql_verifier.py``) are such URLs;
only the service in the credential scope differs. Standard library only and no import from
the rest of the package: the emulator's verifier process runs it from a copy in its state
directory (``python -I -S``, where the package is not importable), next to the two
verifiers (``verifier.py`` loads that copy first; ``dsql_verifier.py`` then finds it).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote

__all__ = ["ALGORITHM", "canonical_query", "presigned_get_signature"]

ALGORITHM = "AWS4-HMAC-SHA256"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def canonical_query(params: Mapping[str, str]) -> str:
    """URI-encode every key and value (unreserved kept), sort, leave the signature out."""
    encoded = sorted(
        (quote(k, safe="-_.~"), quote(v, safe="-_.~"))
        for k, v in params.items()
        if k != "X-Amz-Signature"
    )
    return "&".join(f"{k}={v}" for k, v in encoded)


def presigned_get_signature(host: str, params: Mapping[str, str], secret: str, scope: str) -> str:
    """The hex signature of ``GET https://<host>/?<params>`` for ``scope``, as AWS computes it.

    ``host`` is the Host header as signed; ``scope`` is ``<date>/<region>/<service>/aws4_request``.
    """
    canonical_request = "\n".join(
        ["GET", "/", canonical_query(params), f"host:{host}", "", "host", _EMPTY_SHA256]
    )
    string_to_sign = "\n".join(
        [
            ALGORITHM,
            params["X-Amz-Date"],
            scope,
            hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
        ]
    )
    key = ("AWS4" + secret).encode("utf-8")
    for part in scope.split("/"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
