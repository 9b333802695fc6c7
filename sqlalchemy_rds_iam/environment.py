"""Credentials from ``AWS_*`` environment variables, read the way botocore reads them, without it.

The environment is the first link of botocore's default chain and how Lambda hands a
function its role's credentials. Importing botocore to read four variables costs 50-70 ms
of a cold start, so :class:`EnvironmentSource` reads them itself, with ``EnvProvider``'s
semantics (``tests/unit/test_sigv4.py`` holds it to botocore), and marks them
``from_environment`` so that :mod:`.sigv4` signs them. Anything else, it hands to
:class:`~.credentials.BotocoreSource`.
"""

from __future__ import annotations

import datetime
import functools
import os
import re
import time
from collections.abc import Callable, Mapping

from .credentials import BotocoreSource, FrozenCredentials, _credentials_error

__all__ = ["EnvironmentSource"]

#: botocore's ``EnvProvider`` variables. Of the two token variables the first non-empty wins.
_ACCESS_KEY, _SECRET_KEY = "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"
_TOKENS = ("AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN")
_EXPIRY = "AWS_CREDENTIAL_EXPIRATION"
#: botocore's ``RefreshableCredentials`` windows: within the advisory one it re-reads the
#: environment and keeps the old values if that fails; within the mandatory one it must.
_ADVISORY_REFRESH, _MANDATORY_REFRESH = 15 * 60, 10 * 60
#: The ISO 8601 form STS, the CLI (``export-credentials``) and containers write. Anything
#: else dateutil might read differently, so botocore reads it (see ``EnvironmentSource``).
_ISO_EXPIRY = r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(Z|[+-]\d\d:\d\d)"


@functools.cache
def _iso_expiry() -> re.Pattern[str]:
    """Compiled on first use: Lambda's environment has no expiry to parse."""
    return re.compile(_ISO_EXPIRY, re.ASCII)


class _NotPlain(Exception):
    """The environment holds something only botocore should interpret."""


class PartialCredentialsError(Exception):
    """botocore's error of that name (same message): an environment variable is missing."""

    def __init__(self, variable: str) -> None:
        super().__init__(f"Partial credentials found in env, missing: {variable}")


def _parse_expiry(text: str) -> float:
    match = _iso_expiry().fullmatch(text)
    if match is None:
        raise _NotPlain
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
        raise _NotPlain from exc
    return moment.timestamp()


def _read_environment(environ: Mapping[str, str], require_expiry: bool) -> FrozenCredentials | None:
    """botocore's ``EnvProvider``: ``None`` without an access key, else the credentials."""
    access_key = environ.get(_ACCESS_KEY, "")
    if not access_key:
        if require_expiry:
            raise PartialCredentialsError(_ACCESS_KEY)
        return None
    secret_key = environ.get(_SECRET_KEY, "")
    if not secret_key:
        raise PartialCredentialsError(_SECRET_KEY)
    token = next((value for name in _TOKENS if (value := environ.get(name, ""))), None)
    expiry_text = environ.get(_EXPIRY, "")
    if require_expiry and not expiry_text:
        raise PartialCredentialsError(_EXPIRY)
    expiry = _parse_expiry(expiry_text) if expiry_text else None
    return FrozenCredentials(access_key, secret_key, token, expiry, from_environment=True)


class EnvironmentSource:
    """botocore's default chain when no profile or session is chosen, botocore-free on Lambda.

    The chain's first link is the environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
    ``AWS_SECURITY_TOKEN`` or ``AWS_SESSION_TOKEN``, ``AWS_CREDENTIAL_EXPIRATION``): that is how
    Lambda, ECS task overrides and CI pass credentials. Those are read here with botocore's
    ``EnvProvider`` semantics (empty counts as unset; a missing secret is an error; with an
    expiry, re-read in its refresh windows) and signed with the standard-library presigner,
    so botocore, 50-70 ms of a cold start, is never imported. With no access key, or an
    expiry in a form other than ISO 8601, the rest is botocore's: :class:`BotocoreSource`.
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._environ = os.environ if environ is None else environ
        self._clock = clock
        self._current: FrozenCredentials | None = None
        self._botocore: BotocoreSource | None = None

    def _fallback(self) -> BotocoreSource:
        if self._botocore is None:
            self._botocore = BotocoreSource()
        return self._botocore

    def frozen(self) -> FrozenCredentials:
        # No lock: reading the environment is quick and has no I/O, so two threads that
        # race here both get consistent values (and nothing can be held across a fork).
        if self._botocore is None:
            try:
                current = self._load()
            except _NotPlain:
                current = None
            except (PartialCredentialsError, RuntimeError) as exc:  # as botocore reports them
                raise _credentials_error(self.describe(), exc) from exc
            if current is not None:
                self._current = current
                return current
        return self._fallback().frozen()

    def _load(self) -> FrozenCredentials | None:
        current = self._current
        if current is None:
            current = _read_environment(self._environ, require_expiry=False)
        if current is None or current.expiry is None:
            return current  # botocore's plain Credentials: read once, never refreshed
        remaining = current.expiry - self._clock()
        if remaining >= _ADVISORY_REFRESH:
            return current
        try:
            refreshed = _read_environment(self._environ, require_expiry=True)
        except PartialCredentialsError:
            if remaining < _MANDATORY_REFRESH:
                raise
            return current
        assert refreshed is not None and refreshed.expiry is not None
        if refreshed.expiry - self._clock() < 0:
            raise RuntimeError(
                "Credentials were refreshed, but the refreshed credentials are still expired."
            )
        return refreshed

    def region(self) -> str | None:
        name = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
        return name or self._fallback().region()

    def describe(self) -> str:
        return BotocoreSource().describe()  # no botocore import: names AWS_PROFILE if set

    def access_key_hint(self) -> str | None:
        if self._botocore is not None:
            return self._botocore.access_key_hint()
        return self._current.access_key if self._current is not None else None
