"""Credentials from ``AWS_*`` environment variables, read the way botocore reads them, without it.

The environment is the first link of botocore's default chain and how Lambda hands a
function its role's credentials. Importing botocore to read four variables costs 50-70 ms
of a cold start, so :class:`EnvironmentSource` reads them itself, with ``EnvProvider``'s
semantics (``tests/unit/test_sigv4.py`` holds it to botocore), and marks them
``from_environment`` so that :mod:`.sigv4` signs them. The container credentials endpoint
(SnapStart, ECS, EKS Pod Identity), when botocore's chain would reach it, it hands to
:class:`~.container.ContainerSource`, botocore-free too; anything else to
:class:`~.botocore.BotocoreSource`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .base import FrozenCredentials, NotPlain, configured_region, credentials_error

if TYPE_CHECKING:
    from .botocore import BotocoreSource
    from .container import ContainerSource

__all__ = ["EnvironmentSource"]

#: botocore's ``EnvProvider`` variables. Of the two token variables the first non-empty wins.
_ACCESS_KEY, _SECRET_KEY = "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"
_TOKENS = ("AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN")
_EXPIRY = "AWS_CREDENTIAL_EXPIRATION"
#: Either one makes botocore's chain consider the container endpoint (``container.py``).
_CONTAINER_VARIABLES = frozenset({"AWS_CONTAINER_CREDENTIALS_FULL_URI",
                                  "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"})


class PartialCredentialsError(Exception):
    """botocore's error of that name (same message): an environment variable is missing."""

    def __init__(self, variable: str) -> None:
        super().__init__(f"Partial credentials found in env, missing: {variable}")


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
    expiry = None
    if expiry_text:  # botocore's refresh rules load only where there is an expiry to read
        from .refresh import parse_expiry

        expiry = parse_expiry(expiry_text)
    return FrozenCredentials(access_key, secret_key, token, expiry, from_environment=True)


class EnvironmentSource:
    """botocore's default chain when no profile or session is chosen, botocore-free on Lambda.

    The chain's first link is the environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
    ``AWS_SECURITY_TOKEN`` or ``AWS_SESSION_TOKEN``, ``AWS_CREDENTIAL_EXPIRATION``): that is how
    Lambda, ECS task overrides and CI pass credentials. Those are read here with botocore's
    ``EnvProvider`` semantics (empty counts as unset; a missing secret is an error; with an
    expiry, re-read in its refresh windows) and signed with the standard-library presigner,
    so botocore, 50-70 ms of a cold start, is never imported. With no access key but a
    container credentials endpoint that botocore's chain would reach (SnapStart, ECS, EKS
    Pod Identity), :class:`~.container.ContainerSource` asks it, botocore-free as well.
    Anything else (no such variables, a profile or config file in play, an expiry in a form
    other than ISO 8601) is botocore's: :class:`BotocoreSource`.
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
        self._container: ContainerSource | None = None

    def _container_source(self) -> ContainerSource | None:
        """The container endpoint's source when botocore's chain would end up there."""
        if not _CONTAINER_VARIABLES & self._environ.keys():  # Lambda on demand: not imported
            return None
        from .container import ContainerSource, chain_reaches_container

        if not chain_reaches_container(self._environ):
            return None
        if self._container is None:
            self._container = ContainerSource(self._environ, clock=self._clock)
        return self._container

    def _fallback(self) -> BotocoreSource:
        if self._botocore is None:
            from .botocore import BotocoreSource  # only when the environment has none

            self._botocore = BotocoreSource()
        return self._botocore

    def frozen(self) -> FrozenCredentials:
        # No lock: reading the environment is quick and has no I/O, so two threads that
        # race here both get consistent values (and nothing can be held across a fork).
        if self._botocore is None:
            try:
                current = self._load()
            except NotPlain:
                current = None
            except (PartialCredentialsError, RuntimeError) as exc:  # as botocore reports them
                raise credentials_error(self.describe(), exc) from exc
            if current is not None:
                self._current = current
                return current
            container = self._container_source()
            if container is not None:
                try:
                    return container.frozen()
                except NotPlain:  # an expiry only botocore should read: botocore asks
                    self._container = None
        return self._fallback().frozen()

    def _load(self) -> FrozenCredentials | None:
        current = self._current
        if current is None:
            current = _read_environment(self._environ, require_expiry=False)
        if current is None or current.expiry is None:
            return current  # botocore's plain Credentials: read once, never refreshed
        from .refresh import ADVISORY_REFRESH, MANDATORY_REFRESH, STILL_EXPIRED

        remaining = current.expiry - self._clock()
        if remaining >= ADVISORY_REFRESH:
            return current
        try:
            refreshed = _read_environment(self._environ, require_expiry=True)
        except PartialCredentialsError:
            if remaining < MANDATORY_REFRESH:
                raise
            return current
        assert refreshed is not None and refreshed.expiry is not None
        if refreshed.expiry - self._clock() < 0:
            raise RuntimeError(STILL_EXPIRED)
        return refreshed

    def region(self) -> str | None:
        name = configured_region()
        if name or (self._botocore is None and self._container_source() is not None):
            return name  # no config file in play: botocore would find none either
        return self._fallback().region()

    def describe(self) -> str:
        if self._botocore is None and self._current is None:
            container = self._container_source()
            if container is not None:
                return f"default credential chain, {container.describe()}"
        from .botocore import BotocoreSource

        return BotocoreSource().describe()  # no botocore import: names AWS_PROFILE if set

    def access_key_hint(self) -> str | None:
        if self._botocore is not None:
            return self._botocore.access_key_hint()
        if self._current is not None:
            return self._current.access_key
        return self._container.access_key_hint() if self._container is not None else None

    def forget(self) -> None:
        """Drop every credential read or fetched, and which source supplies them: after a
        snapshot restore the environment may hand out credentials another way."""
        self._current = None
        self._botocore, self._container = None, None

    def warm(self) -> None:
        """Do the one-time work of the path the next connect will take (SnapStart init):
        nothing for keys in the environment, imports for the container endpoint, botocore's
        session and credential chain otherwise. Loads no credentials."""
        try:
            if _read_environment(self._environ, require_expiry=False) is not None:
                return
        except (PartialCredentialsError, NotPlain):
            return  # the connect reports it
        container = self._container_source()
        if container is not None:
            container.warm()
        else:
            self._fallback().warm()
