"""IAM authentication tokens: signing with botocore's SigV4 query signer, and a cache.

An RDS token is a SigV4 presigned ``connect`` request for ``host:port`` and a database
user, valid for 15 minutes. An Aurora DSQL token is a presigned ``DbConnect`` (or, for
the ``admin`` role, ``DbConnectAdmin``) request for the host alone, service ``dsql``,
valid for a lifetime the client picks. Signing takes ~0.1 ms; building a boto3 client to
do the same takes 100+ ms (it loads the service model), so we use the signer directly.

The cache hands out a token until a margin before it expires (:data:`REUSE_MARGIN` of a
15-minute token, the same third of any other lifetime), or :data:`CREDENTIAL_MARGIN`
before the temporary credentials that signed it expire, whichever comes first; and never
once the engine's credentials have moved on to another access key. It refreshes lazily,
on demand: there is no background thread, because Lambda freezes them between invocations.
Concurrent callers for one key wait for a single signature (single flight).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Hashable

from .credentials import FrozenCredentials
from .errors import ConfigurationError, TokenError

__all__ = [
    "CREDENTIAL_MARGIN",
    "REUSE_MARGIN",
    "TOKEN_LIFETIME",
    "SignedToken",
    "TokenCache",
    "TokenKey",
    "clear_all",
    "credential_margin",
    "reuse_margin",
    "sign_token",
    "token_shape",
]

logger = logging.getLogger("sqlalchemy_rds_iam")

#: Seconds a token is valid (RDS fixes this at 15 minutes).
TOKEN_LIFETIME = 900
#: Stop reusing a token this many seconds before it expires: room for clock skew
#: between client and server and for slow connects.
REUSE_MARGIN = 300
#: Stop reusing a token this many seconds before the credentials that signed it expire.
CREDENTIAL_MARGIN = 60


#: Endpoint kind -> (SigV4 service, action for ordinary users, action for ``admin``).
_SERVICES = {"dsql": ("dsql", "DbConnect", "DbConnectAdmin")}
_RDS = ("rds-db", "connect", "connect")
#: Services whose signed URL names the port and the database user (DSQL's names neither).
_SIGNS_PORT_AND_USER = {"rds-db": True, "dsql": False}


class TokenKey(tuple[str, int, str, str, str, str, int]):
    """Everything a token depends on except the credentials (the cache's owner holds those):
    ``(host, port, user, region, service, action, lifetime)``.

    ``service``, ``action`` and ``lifetime`` say which kind of token: RDS (``rds-db``,
    ``connect``, 900) or Aurora DSQL (``dsql``, ``DbConnect``/``DbConnectAdmin``, chosen).
    A tuple, hashed in C on every connect, written out by hand: a named tuple costs a cold
    start ~0.25 ms to build.
    """

    __slots__ = ()

    def __new__(cls, host: str, port: int, user: str, region: str, service: str = "rds-db",
                action: str = "connect", lifetime: int = TOKEN_LIFETIME) -> TokenKey:
        return tuple.__new__(cls, (host, port, user, region, service, action, lifetime))

    @property
    def host(self) -> str:
        """The host the token is signed for."""
        return self[0]

    @property
    def port(self) -> int:
        """The port the token is signed for."""
        return self[1]

    @property
    def user(self) -> str:
        """The database user."""
        return self[2]

    @property
    def region(self) -> str:
        """The region it is signed in."""
        return self[3]

    @property
    def service(self) -> str:
        """``rds-db`` or ``dsql``."""
        return self[4]

    @property
    def action(self) -> str:
        """``connect``, ``DbConnect`` or ``DbConnectAdmin``."""
        return self[5]

    @property
    def lifetime(self) -> int:
        """Seconds the token is valid."""
        return self[6]

    def __repr__(self) -> str:
        return ("TokenKey(host={!r}, port={!r}, user={!r}, region={!r}, service={!r}, "
                "action={!r}, lifetime={!r})".format(*self))


def token_shape(
    kind: str | None, user: str, lifetime: int | None, *, family: str = "postgresql"
) -> tuple[str, str, int]:
    """(service, action, lifetime) of the tokens for an endpoint ``kind`` and ``user``.

    Raises :class:`ConfigurationError` for options the endpoint cannot honour.
    """
    service, action, admin_action = _SERVICES.get(kind or "", _RDS)
    if service == "rds-db" and lifetime is not None and lifetime != TOKEN_LIFETIME:
        raise ConfigurationError(
            "iam_token_lifetime applies to Aurora DSQL endpoints only: RDS fixes IAM tokens "
            f"at {TOKEN_LIFETIME} s; drop the option"
        )
    if service == "dsql" and family != "postgresql":
        raise ConfigurationError("Aurora DSQL speaks PostgreSQL: use a postgresql+... URL")
    return service, admin_action if user == "admin" else action, lifetime or TOKEN_LIFETIME


def reuse_margin(lifetime: int) -> float:
    """Seconds before expiry to stop reusing a token: a third of its lifetime (300 of 900)."""
    return lifetime * REUSE_MARGIN / TOKEN_LIFETIME


def credential_margin(lifetime: int) -> float:
    """Seconds before the credentials expire to stop reusing: 60, less for short tokens."""
    return min(CREDENTIAL_MARGIN, lifetime * CREDENTIAL_MARGIN / TOKEN_LIFETIME)


class SignedToken:
    """A token just signed, with the access key that signed it and its credentials' expiry.

    A plain class (a dataclass costs a cold start ~0.5 ms to build), not a tuple: nothing
    that walks sequences (an error reporter's serializer) finds the token; repr omits it.
    """

    __slots__ = ("access_key", "credential_expiry", "token")

    def __init__(self, token: str, access_key: str, credential_expiry: float | None) -> None:
        self.token = token
        self.access_key = access_key
        self.credential_expiry = credential_expiry

    def __repr__(self) -> str:
        return (f"SignedToken(access_key={self.access_key!r}, "
                f"credential_expiry={self.credential_expiry!r})")


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


def sign_token(key: TokenKey, credentials: FrozenCredentials, now: float | None = None) -> str:
    """Sign a token exactly as boto3 does: ``rds`` ``generate_db_auth_token``, or ``dsql``
    ``generate_db_connect_auth_token`` / ``generate_db_connect_admin_auth_token``.

    Credentials read from the environment are signed by :mod:`.sigv4` (standard library,
    byte-identical), which spares importing botocore at all on Lambda; ``now`` (epoch
    seconds) is honoured by that path only, botocore reads its own clock.
    """
    with_port_and_user = _SIGNS_PORT_AND_USER[key.service]
    body = {"Action": key.action, **({"DBUser": key.user} if with_port_and_user else {})}
    if credentials.from_environment:
        from . import sigv4

        port = key.port if with_port_and_user else None
        if sigv4.supports(key.host, port):
            try:
                return sigv4.presign(key.host, port, body, service=key.service,
                                     region=key.region, expires=key.lifetime,
                                     credentials=credentials, now=now)
            except UnicodeError as exc:  # a lone surrogate in the user or a key
                raise TokenError(f"could not sign a token for {key.user!r}@{key.host}:"
                                 f"{key.port}: {type(exc).__name__}") from exc
    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import create_request_object, prepare_request_dict
    from botocore.credentials import ReadOnlyCredentials

    request_dict = {
        "url_path": "/",
        "query_string": "",
        "headers": {},
        "body": body,
        "method": "GET",
    }
    # botocore's URL handling needs a scheme; RDS wants the token without one.
    netloc = f"{key.host}:{key.port}" if with_port_and_user else key.host
    prepare_request_dict(request_dict, f"https://{netloc}")
    request = create_request_object(request_dict)
    signer = SigV4QueryAuth(
        ReadOnlyCredentials(credentials.access_key, credentials.secret_key, credentials.token),
        key.service,
        key.region,
        expires=key.lifetime,
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


class _CachedToken:
    """A cached token, when to stop handing it out, and the access key that signed it.

    A plain class for the reasons of :class:`SignedToken`.
    """

    __slots__ = ("access_key", "refresh_at", "token")

    def __init__(self, token: str, refresh_at: float, access_key: str) -> None:
        self.token = token
        self.refresh_at = refresh_at
        self.access_key = access_key

    def __repr__(self) -> str:
        return f"_CachedToken(refresh_at={self.refresh_at!r}, access_key={self.access_key!r})"


class TokenCache:
    """Tokens per :class:`TokenKey`, refreshed on demand; one signing at a time per key."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        """Seconds since the epoch, as the cache sees it; :meth:`advance` moves it."""
        self._entries: dict[Hashable, _CachedToken] = {}
        self._locks: dict[Hashable, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        _CACHES.add(self)

    def advance(self, seconds: float) -> None:
        """Move this cache's clock ``seconds`` ahead, for simulations and tests.

        What a process frozen that long finds on waking (a Lambda sandbox, a suspended
        laptop): cached tokens age, so one past its refresh time is signed anew at the next
        connect. Tokens themselves are unchanged: servers check them against real time.
        """
        clock = self.clock
        self.clock = lambda: clock() + seconds

    def _after_fork(self) -> None:
        """In a forked child: fresh locks. A lock another thread held at ``fork()`` stays
        held forever in the child (that thread does not exist there), so its first
        connect would hang. Cached tokens stay: they are still valid in the child."""
        self._locks = {}
        self._locks_lock = threading.Lock()

    def peek(self, key: Hashable, access_key: str | None = None) -> str | None:
        """The cached token for ``key`` if it may still be used, else ``None``; never blocks.

        ``access_key``: the key the engine's credentials hold now, if known without I/O; a
        token signed with another (rotated, refreshed) key is not handed out again.
        """
        entry = self._entries.get(key)
        if (
            entry is not None
            and self.clock() < entry.refresh_at
            and (access_key is None or access_key == entry.access_key)
        ):
            return entry.token
        return None

    def get(
        self, key: Hashable, sign: Callable[[], SignedToken], access_key: str | None = None
    ) -> str:
        """Return a valid token for ``key``, calling ``sign`` only when none is cached."""
        token = self.peek(key, access_key)
        return token if token is not None else self._refresh(key, sign, access_key)

    def _refresh(
        self, key: Hashable, sign: Callable[[], SignedToken], access_key: str | None
    ) -> str:
        with self._locks_lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            # Another thread may have signed while we waited.
            token = self.peek(key, access_key)
            if token is not None:
                return token
            now = self.clock()
            signed = sign()
            lifetime = getattr(key, "lifetime", TOKEN_LIFETIME)
            refresh_at = now + lifetime - reuse_margin(lifetime)
            if signed.credential_expiry is not None:
                refresh_at = min(
                    refresh_at, signed.credential_expiry - credential_margin(lifetime)
                )
            self._entries[key] = _CachedToken(signed.token, refresh_at, signed.access_key)
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "signed IAM token for %s (access key %s, %d chars), valid until %s, "
                    "reused for %.0f s",
                    key, signed.access_key, len(signed.token),
                    time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + lifetime)),
                    max(0.0, refresh_at - now),
                )
            return signed.token

    def invalidate(self, key: Hashable) -> None:
        """Forget the token for ``key``: the next request signs anew."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget every cached token (the next connect signs anew)."""
        self._entries.clear()


#: Every live cache, so a forked child (gunicorn/celery pre-fork) can replace their locks.
_CACHES: weakref.WeakSet[TokenCache] = weakref.WeakSet()


def clear_all() -> None:
    """Forget the tokens of every live cache (``snapshot.py``: a snapshot must hold none)."""
    for cache in list(_CACHES):
        cache.clear()


def _reset_locks_after_fork() -> None:
    global _quiet_lock
    _quiet_lock = threading.Lock()
    for cache in list(_CACHES):
        cache._after_fork()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_reset_locks_after_fork)
