"""Container credentials (Lambda SnapStart, ECS, EKS Pod Identity), read without botocore.

Under SnapStart, ECS and EKS Pod Identity the role's credentials come from an HTTP endpoint
named by ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` (or ``_RELATIVE_URI`` on 169.254.170.2),
with ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` (or ``_TOKEN_FILE``) as the ``Authorization``
header. Importing botocore to make one GET costs hundreds of milliseconds on a SnapStart
restore's critical path, so :class:`ContainerSource` makes it with the standard library,
under botocore's rules (``ContainerProvider``, ``ContainerMetadataFetcher``, held to them by
``tests/unit/test_container.py``): https to any host, plain http only to a loopback address
or one of AWS's link-local hosts; 2 s timeout, 3 attempts a second apart; the JSON fields
``AccessKeyId``, ``SecretAccessKey``, ``Token`` and ``Expiration``; refreshed in
``RefreshableCredentials``' advisory and mandatory windows. Neither the credentials, the
authorization token nor the endpoint's answer is ever logged or put in an error.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import CredentialsError
from .base import FrozenCredentials, configured_region
from .refresh import ADVISORY_REFRESH, MANDATORY_REFRESH, STILL_EXPIRED, parse_expiry

__all__ = [
    "ALLOWED_HOSTS",
    "ATTEMPTS",
    "FULL_URI",
    "RELATIVE_URI",
    "TIMEOUT",
    "ContainerSource",
    "chain_reaches_container",
    "configured",
    "endpoint_url",
    "warm",
]

logger = logging.getLogger("sqlalchemy_rds_iam")

RELATIVE_URI = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
FULL_URI = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
AUTH_TOKEN = "AWS_CONTAINER_AUTHORIZATION_TOKEN"  # noqa: S105 -- a variable's name
AUTH_TOKEN_FILE = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"  # noqa: S105
#: ECS's endpoint, the host of every ``_RELATIVE_URI``.
ECS_HOST = "169.254.170.2"
#: Hosts plain http may reach besides loopback addresses (botocore's ``_ALLOWED_HOSTS``):
#: ECS, EKS Pod Identity (IPv4 and IPv6) and localhost.
ALLOWED_HOSTS = (ECS_HOST, "169.254.170.23", "fd00:ec2::23", "localhost")
#: botocore's ``ContainerMetadataFetcher``: seconds per attempt, attempts, pause between them.
TIMEOUT, ATTEMPTS, RETRY_PAUSE = 2.0, 3, 1.0
#: The most of an answer read: credentials are a few kilobytes.
_MAX_BODY = 1 << 20
#: What to fix, by the endpoint's HTTP status.
_STATUS_FIXES = {
    401: f"check {AUTH_TOKEN} / {AUTH_TOKEN_FILE}",
    403: f"check {AUTH_TOKEN} / {AUTH_TOKEN_FILE}",
}


def configured(environ: Mapping[str, str]) -> bool:
    """Whether botocore's ``ContainerProvider`` would answer (either variable is set)."""
    return RELATIVE_URI in environ or FULL_URI in environ


#: Variables that bring a link of botocore's chain before the container provider into play:
#: a profile (assume-role, SSO, credential_process...), web identity, the old credential files.
_EARLIER_VARIABLES = (
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CREDENTIAL_FILE", "BOTO_CONFIG",
)


def chain_reaches_container(environ: Mapping[str, str]) -> bool:
    """Whether botocore's default chain, past the environment variables, would take its
    credentials from the container endpoint: a container variable is set and nothing that
    an earlier link reads is (no profile variable, no web identity, none of the config and
    credential files). Otherwise botocore decides, as it always did."""
    if not configured(environ) or any(name in environ for name in _EARLIER_VARIABLES):
        return False
    files = (
        environ.get("AWS_CONFIG_FILE", "~/.aws/config"),
        environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
        "/etc/boto.cfg",
        "~/.boto",
    )
    return not any(os.path.exists(os.path.expanduser(path)) for path in files)


def endpoint_url(environ: Mapping[str, str]) -> str:
    """The URL to ask: a relative URI (it wins, as in botocore) on 169.254.170.2, else
    the full one."""
    if RELATIVE_URI in environ:
        return f"http://{ECS_HOST}{environ[RELATIVE_URI]}"
    return environ[FULL_URI]


def _shown(url: str) -> str:
    """The URL without query or userinfo, for messages."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if _port(parts) is not None else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _port(parts: Any) -> int | None:
    try:
        port: int | None = parts.port
    except ValueError:
        return None
    return port


def allowed_problem(url: str) -> str | None:
    """Why botocore would refuse to fetch from ``url`` (its wording), or ``None``."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme == "https":
        return None
    host = parts.hostname
    if host is not None:
        import ipaddress

        try:
            if ipaddress.ip_address(host).is_loopback:
                return None
        except ValueError:
            pass
        if host in ALLOWED_HOSTS:
            return None
    return (
        f"Unsupported host '{host}'.  Can only retrieve metadata from a loopback address or "
        f"one of these hosts: {', '.join(ALLOWED_HOSTS)}"
    )


def warm() -> None:
    """Import what a fetch needs (``http.client`` and its kin), ahead of the first fetch."""
    import encodings.idna  # noqa: F401  -- how the socket module encodes a host name
    import http.client  # noqa: F401
    import ipaddress  # noqa: F401
    import json  # noqa: F401
    import ssl  # noqa: F401
    import urllib.parse  # noqa: F401


class _Retryable(Exception):
    """One attempt failed in a way botocore retries (the message names no secret)."""


class ContainerSource:
    """Credentials from the container credentials endpoint, botocore's way, without botocore.

    The credentials fetched are kept until botocore would refresh them: a fetch in the
    advisory window (15 minutes before the expiry) that fails keeps them, one in the
    mandatory window (10 minutes) raises. One fetch at a time (a lock, re-checked after
    acquiring it). ``clock`` (epoch seconds) and ``sleep`` can be replaced, for tests.
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._environ = os.environ if environ is None else environ
        self.clock = clock
        self._sleep = sleep
        self._current: FrozenCredentials | None = None
        self._lock = threading.Lock()
        _SOURCES.add(self)

    # -- the CredentialSource interface ------------------------------------------------------

    def frozen(self) -> FrozenCredentials:
        current = self._current
        if current is None:
            with self._lock:
                if self._current is None:
                    self._current = self._fetch()
                current = self._current
        if not self._refresh_needed(current, ADVISORY_REFRESH):
            return current
        # botocore's RefreshableCredentials._refresh: in the advisory window one thread
        # refreshes and the others go on with the current values; in the mandatory one
        # every thread waits for the refresh.
        if self._lock.acquire(blocking=False):
            try:
                if self._refresh_needed(self._current, ADVISORY_REFRESH):
                    self._protected_refresh(self._refresh_needed(self._current, MANDATORY_REFRESH))
            finally:
                self._lock.release()
        elif self._refresh_needed(current, MANDATORY_REFRESH):
            with self._lock:
                if self._refresh_needed(self._current, MANDATORY_REFRESH):
                    self._protected_refresh(mandatory=True)
        current = self._current
        if current is None:  # forget() ran meanwhile
            return self.frozen()
        return current

    def region(self) -> str | None:
        return configured_region(self._environ)

    def describe(self) -> str:
        try:
            where = _shown(endpoint_url(self._environ))
        except KeyError:  # the variables went away
            where = "nowhere: the variables are unset"
        return f"container credentials from {where}"

    def access_key_hint(self) -> str | None:
        current = self._current
        return current.access_key if current is not None else None

    def forget(self) -> None:
        """Drop the credentials fetched (a snapshot is about to be taken, or was restored)."""
        self._current = None

    def warm(self) -> None:
        """Import what a fetch needs, now rather than on the first connect (SnapStart init)."""
        warm()

    # -- refreshing --------------------------------------------------------------------------

    def _refresh_needed(self, current: FrozenCredentials | None, window: float) -> bool:
        if current is None:  # forgotten: fetch
            return True
        return current.expiry is not None and current.expiry - self.clock() < window

    def _protected_refresh(self, mandatory: bool) -> None:
        """Fetch anew (lock held); botocore's ``_protected_refresh``: a failure keeps the
        current values in the advisory window, raises in the mandatory one."""
        try:
            fresh = self._fetch()
        except CredentialsError as exc:
            logger.warning("refreshing container credentials failed during the %s refresh "
                           "period: %s", "mandatory" if mandatory else "advisory", exc)
            if mandatory or self._current is None:
                raise
            return
        self._current = fresh
        if self._refresh_needed(fresh, 0):
            raise CredentialsError(f"could not load AWS credentials ({self.describe()}): "
                                   f"{STILL_EXPIRED} Check the clock of this machine")

    # -- fetching ----------------------------------------------------------------------------

    def _fetch(self) -> FrozenCredentials:
        """GET the endpoint (3 attempts) and read the credentials from its JSON answer."""
        try:
            url = endpoint_url(self._environ)
        except KeyError:
            raise CredentialsError(
                f"no AWS credentials found: neither {FULL_URI} nor {RELATIVE_URI} is set any more"
            ) from None
        problem = allowed_problem(url)
        if problem is None and not url.lower().startswith(("http://", "https://")):
            problem = f"Not supported URL scheme {url.partition(':')[0]!r}"  # botocore's too
        if problem is not None:
            raise CredentialsError(
                f"could not load AWS credentials ({self.describe()}): {problem}; use https, "
                f"or fix {FULL_URI}"
            )
        headers = {"Accept": "application/json", "User-Agent": "sqlalchemy-rds-iam"}
        authorization = self._authorization()
        if authorization is not None:
            headers["Authorization"] = authorization
        del authorization
        last = ""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                answer = _get_json(url, headers)
                break
            except _Retryable as exc:
                last = str(exc)
                logger.debug("container credentials, attempt %d of %d: %s",
                             attempt, ATTEMPTS, last)
                if attempt < ATTEMPTS:
                    self._sleep(RETRY_PAUSE)
        else:
            status = last.rpartition("HTTP ")[2]
            fix = _STATUS_FIXES.get(int(status) if status.isdigit() else 0,
                                    "check that the endpoint is up and answers as AWS's does")
            raise CredentialsError(
                f"could not load AWS credentials ({self.describe()}): {last} "
                f"(after {ATTEMPTS} attempts); {fix}"
            )
        return self._credentials(answer)

    def _authorization(self) -> str | None:
        """The header's value: the token file (re-read at every fetch) wins over the variable."""
        if AUTH_TOKEN_FILE in self._environ:
            path = self._environ[AUTH_TOKEN_FILE]
            try:
                with open(path, encoding="utf-8") as fh:
                    value = fh.read()
            except (OSError, UnicodeError) as exc:
                raise CredentialsError(
                    f"could not read {AUTH_TOKEN_FILE} ({path!r}): {type(exc).__name__}; "
                    "fix the path or the file's permissions"
                ) from None
        elif AUTH_TOKEN in self._environ:
            value = self._environ[AUTH_TOKEN]
        else:
            return None
        if "\r" in value or "\n" in value:
            source = AUTH_TOKEN_FILE if AUTH_TOKEN_FILE in self._environ else AUTH_TOKEN
            raise CredentialsError(
                f"the container authorization token ({source}) is not a legal header value: "
                "it holds a line break (a file written with a trailing newline?)"
            )
        return value

    def _credentials(self, answer: object) -> FrozenCredentials:
        fields = ("AccessKeyId", "SecretAccessKey", "Token", "Expiration")
        values = answer if isinstance(answer, dict) else {}
        missing = [name for name in fields if not isinstance(values.get(name), str)]
        if missing:
            raise CredentialsError(
                f"could not load AWS credentials ({self.describe()}): the endpoint's answer "
                f"lacks {', '.join(missing)}; check that the URI names a credentials endpoint"
            )
        expiry = parse_expiry(values["Expiration"])  # NotPlain: botocore reads it instead
        credentials = FrozenCredentials(values["AccessKeyId"], values["SecretAccessKey"],
                                        values["Token"] or None, expiry, from_environment=True)
        logger.debug("fetched container credentials (access key %s), valid until %s",
                     credentials.access_key,
                     time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expiry)))
        return credentials

    def _after_fork(self) -> None:
        self._lock = threading.Lock()


def _get_json(url: str, headers: Mapping[str, str]) -> object:
    """One GET; :class:`_Retryable` for what botocore retries (unreachable, not 200, not JSON)."""
    import http.client
    import json
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    https = parts.scheme == "https"
    port = _port(parts) or (443 if https else 80)
    host = parts.hostname or ""
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection: http.client.HTTPConnection
    if https:
        import ssl

        connection = http.client.HTTPSConnection(host, port, timeout=TIMEOUT,
                                                 context=ssl.create_default_context())
    else:
        connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        connection.request("GET", target, headers=dict(headers))
        response = connection.getresponse()
        status, body = response.status, response.read(_MAX_BODY)
    except (OSError, http.client.HTTPException) as exc:
        raise _Retryable(f"the endpoint could not be reached: {type(exc).__name__}: {exc}") \
            from None
    finally:
        connection.close()
    if status != 200:
        raise _Retryable(f"the endpoint answered HTTP {status}")
    try:
        return json.loads(body.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError included
        raise _Retryable("Unable to parse JSON returned from container metadata services") \
            from None


#: Every live source, so a forked child can replace their locks.
_SOURCES: weakref.WeakSet[ContainerSource] = weakref.WeakSet()


def _reset_locks_after_fork() -> None:
    for source in list(_SOURCES):
        source._after_fork()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_reset_locks_after_fork)
