"""Sign RDS IAM tokens with botocore, including ones RDS must refuse, for negative tests.

``boto3.client("rds").generate_db_auth_token`` can only make a valid token *now*. Tests of a
verifier also need tokens signed at another time, for longer than 900 seconds, for another
service or region: :func:`presign_token` builds them with botocore's own ``SigV4QueryAuth``,
so that botocore, not our verifier, stays the reference for what a signature is.
"""

from __future__ import annotations

import datetime
from typing import Any

__all__ = ["presign_token"]


def presign_token(
    host: str,
    port: int,
    user: str,
    *,
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None = None,
    region: str,
    expires: int = 900,
    signed_at: datetime.datetime | None = None,
    service: str = "rds-db",
) -> str:
    """Return ``host:port/?Action=connect&DBUser=...`` signed as botocore signs it.

    ``signed_at`` (UTC; naive values are taken as UTC) defaults to now. With the defaults
    the result equals what ``generate_db_auth_token`` returns at the same second.
    """
    from botocore.auth import SIGV4_TIMESTAMP, SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    if signed_at is None:
        signed_at = datetime.datetime.now(datetime.timezone.utc)
    elif signed_at.tzinfo is not None:
        signed_at = signed_at.astimezone(datetime.timezone.utc)
    timestamp = signed_at.strftime(SIGV4_TIMESTAMP)

    class _FixedClockQueryAuth(SigV4QueryAuth):
        # add_auth stamps the request with the current time right before this hook; the
        # hook runs before anything reads the stamp, so replacing it here moves the clock.
        def _modify_request_before_signing(self, request: Any) -> None:
            request.context["timestamp"] = timestamp
            super()._modify_request_before_signing(request)  # type: ignore[misc]

    request = AWSRequest(
        method="GET",
        url=f"https://{host}:{port}/",
        params={"Action": "connect", "DBUser": user},
    )
    signer = _FixedClockQueryAuth(
        Credentials(access_key_id, secret_access_key, session_token), service, region, expires
    )
    signer.add_auth(request)
    url = request.url
    assert url is not None
    return url[len("https://") :]
