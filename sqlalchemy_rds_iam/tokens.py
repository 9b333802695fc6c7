"""IAM authentication tokens: signing with botocore's SigV4 query signer, and a cache.

A token is a SigV4 presigned ``connect`` request for ``host:port`` and a database user,
valid for 15 minutes. Signing takes ~0.1 ms; building ``boto3.client("rds")`` to do the
same takes 100+ ms (it loads the service model), so we use the signer directly.

The cache hands out a token until :data:`REUSE_MARGIN` before it expires, or
:data:`CREDENTIAL_MARGIN` before the temporary credentials that signed it expire,
whichever comes first. It refreshes lazily, on demand: there is no background thread,
because Lambda freezes them between invocations. Concurrent callers for one key wait
for a single signature (single flight).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from .credentials import FrozenCredentials
from .errors import TokenError

__all__ = [
    "CREDENTIAL_MARGIN",
    "REUSE_MARGIN",
    "TOKEN_LIFETIME",
    "SignedToken",
    "TokenCache",
    "TokenKey",
    "sign_token",
]

logger = logging.getLogger("sqlalchemy_rds_iam")

#: Seconds a token is valid (RDS fixes this at 15 minutes).
TOKEN_LIFETIME = 900
#: Stop reusing a token this many seconds before it expires: room for clock skew
#: between client and server and for slow connects.
REUSE_MARGIN = 300
#: Stop reusing a token this many seconds before the credentials that signed it expire.
CREDENTIAL_MARGIN = 60


@dataclass(frozen=True)
class TokenKey:
    """Everything a token depends on except the credentials (the cache's owner holds those)."""

    host: str
    port: int
    user: str
    region: str


@dataclass(frozen=True)
class SignedToken:
    token: str = field(repr=False)
    access_key: str
    credential_expiry: float | None


class _QuietSigner(logging.Filter):
    """Drops ``botocore.auth`` DEBUG records while this thread signs a database token.

    botocore logs the canonical request (with the session token) and the signature at
    DEBUG: enough to rebuild the token. Other signing in the process still logs.
    """

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.local, "active", False)


_quiet: _QuietSigner | None = None
_quiet_lock = threading.Lock()


def _quiet_filter() -> _QuietSigner:
    global _quiet
    if _quiet is None:
        with _quiet_lock:
            if _quiet is None:
                _quiet = _QuietSigner()
                logging.getLogger("botocore.auth").addFilter(_quiet)
    return _quiet


def sign_token(key: TokenKey, credentials: FrozenCredentials) -> str:
    """Sign a token exactly as ``boto3.client("rds").generate_db_auth_token`` does."""
    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import create_request_object, prepare_request_dict
    from botocore.credentials import ReadOnlyCredentials

    request_dict = {
        "url_path": "/",
        "query_string": "",
        "headers": {},
        "body": {"Action": "connect", "DBUser": key.user},
        "method": "GET",
    }
    # botocore's URL handling needs a scheme; RDS wants the token without one.
    prepare_request_dict(request_dict, f"https://{key.host}:{key.port}")
    request = create_request_object(request_dict)
    signer = SigV4QueryAuth(
        ReadOnlyCredentials(credentials.access_key, credentials.secret_key, credentials.token),
        "rds-db",
        key.region,
        expires=TOKEN_LIFETIME,
    )
    quiet = _quiet_filter()
    quiet.local.active = True
    try:
        signer.add_auth(request)
        request.prepare()
    except Exception as exc:
        raise TokenError(f"could not sign a token for {key.user}@{key.host}:{key.port}: "
                         f"{type(exc).__name__}") from exc
    finally:
        quiet.local.active = False
    url: str = request.url
    return url[len("https://"):]


@dataclass(frozen=True)
class _Entry:
    token: str = field(repr=False)
    refresh_at: float


class TokenCache:
    """Tokens per :class:`TokenKey`, refreshed on demand; one signing at a time per key."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        """Seconds since the epoch; replaceable to simulate time passing (e.g. a Lambda freeze)."""
        self._entries: dict[Hashable, _Entry] = {}
        self._locks: dict[Hashable, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def peek(self, key: Hashable) -> str | None:
        """The cached token for ``key`` if it may still be used, else ``None``; never blocks."""
        entry = self._entries.get(key)
        if entry is not None and self.clock() < entry.refresh_at:
            return entry.token
        return None

    def get(self, key: Hashable, sign: Callable[[], SignedToken]) -> str:
        """Return a valid token for ``key``, calling ``sign`` only when none is cached."""
        token = self.peek(key)
        return token if token is not None else self._refresh(key, sign)

    def _refresh(self, key: Hashable, sign: Callable[[], SignedToken]) -> str:
        with self._locks_lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            # Another thread may have signed while we waited.
            entry = self._entries.get(key)
            now = self.clock()
            if entry is not None and now < entry.refresh_at:
                return entry.token
            signed = sign()
            refresh_at = now + TOKEN_LIFETIME - REUSE_MARGIN
            if signed.credential_expiry is not None:
                refresh_at = min(refresh_at, signed.credential_expiry - CREDENTIAL_MARGIN)
            self._entries[key] = _Entry(signed.token, refresh_at)
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "signed IAM token for %s (access key %s, %d chars), valid until %s, "
                    "reused for %.0f s",
                    key, signed.access_key, len(signed.token),
                    time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + TOKEN_LIFETIME)),
                    max(0.0, refresh_at - now),
                )
            return signed.token

    def invalidate(self, key: Hashable) -> None:
        """Forget the token for ``key``: the next request signs anew."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget every cached token (the next connect signs anew)."""
        self._entries.clear()
