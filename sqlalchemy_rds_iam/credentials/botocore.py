"""Where signing credentials come from: botocore's default chain, a profile, a boto3
Session, a role assumed on top of any of those, or the user's own callable.

A :class:`CredentialSource` is anything with ``frozen()``, ``region()`` and ``describe()``
(and, optionally, ``access_key_hint()``, so that rotated credentials sign the next
connection). Refreshing is botocore's: role sessions and callables with an expiry
become ``RefreshableCredentials`` (advisory and mandatory refresh windows, a lock), never
a loop of our own. Every failure to get credentials is a :class:`CredentialsError` that
names the source and the fix. botocore is imported on first use, not at import time, to
keep Lambda cold starts short; with keys in the environment (Lambda's case) it is not
imported at all: see :class:`.environment.EnvironmentSource`.

The sources here are the ones that need botocore (each imports it on first use); the
shared record, protocol and errors are in :mod:`.base`, the factory in the package.
"""

from __future__ import annotations

import datetime
import os
import threading
from collections.abc import Callable
from typing import Any

from ..errors import CredentialsError
from .base import FrozenCredentials, configured_region, credentials_error

__all__ = ["AssumeRoleSource", "BotocoreSource", "CallableSource", "ProviderResult"]


def _frozen(credentials: Any) -> FrozenCredentials:
    """A consistent (frozen) copy of a botocore credential object, with its expiry."""
    snapshot = credentials.get_frozen_credentials()
    expiry_time = getattr(credentials, "_expiry_time", None)
    expiry = expiry_time.timestamp() if expiry_time is not None else None
    return FrozenCredentials(snapshot.access_key, snapshot.secret_key, snapshot.token, expiry)


def _now_utc() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _utc(epoch: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)


def _current_key(credentials: Any) -> str | None:
    # RefreshableCredentials.access_key is a property that may refresh (network I/O); its
    # field is not. Plain Credentials keep the key in an attribute of that name.
    if credentials is None:
        return None
    fields = getattr(credentials, "__dict__", {})
    key: str | None = fields.get("_access_key") or fields.get("access_key")
    return key


class BotocoreSource:
    """Credentials from botocore's provider chain (env, profile, SSO, container, IMDS, ...).

    The resolved botocore credential object is kept and reused: it refreshes temporary
    credentials itself (advisory and mandatory windows). When no profile is in play, the
    chain's first provider (environment variables, which is how Lambda hands out the role's
    credentials) is tried alone first: that needs ``botocore.credentials`` but not
    ``botocore.session``, about 30 ms less on a cold start.
    """

    def __init__(self, profile: str | None = None, session: Any = None) -> None:
        self._profile = profile
        self._session = session  # a boto3.Session or botocore Session, or None
        self._owns_session = session is None
        self._credentials: Any = None
        self._lock = threading.Lock()

    def _botocore_session(self) -> Any:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    import botocore.session

                    self._session = botocore.session.Session(profile=self._profile)
        return self._session

    def _profile_in_play(self) -> bool:
        # botocore skips environment credentials only for an explicitly chosen profile
        # (not for AWS_PROFILE, which loses to AWS_ACCESS_KEY_ID & co. in its chain).
        return bool(self._profile or self._session is not None)

    def _resolve(self) -> Any:
        if self._credentials is None:
            credentials = None
            if not self._profile_in_play():
                from botocore.credentials import EnvProvider

                credentials = EnvProvider().load()
            if credentials is None:
                credentials = self._botocore_session().get_credentials()
            self._credentials = credentials
        return self._credentials

    def botocore_credentials(self) -> Any:
        """The resolved botocore credential object (raises :class:`CredentialsError`)."""
        from ..botocore_logs import scrubbed_logs

        try:
            with scrubbed_logs():  # SSO, container, process providers: their secrets
                credentials = self._resolve()
        except Exception as exc:  # botocore's own errors: profile not found, bad config ...
            raise credentials_error(self.describe(), exc) from exc
        if credentials is None:
            raise CredentialsError(
                f"no AWS credentials found ({self.describe()}): set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, configure a profile (aws_profile=), or run with an "
                "IAM role (Lambda, ECS, EC2)"
            )
        return credentials

    def frozen(self) -> FrozenCredentials:
        from ..botocore_logs import scrubbed_logs

        credentials = self.botocore_credentials()
        try:
            with scrubbed_logs():  # a refresh is a network call botocore logs at DEBUG
                return _frozen(credentials)
        except Exception as exc:  # a refresh that failed (expired SSO, IMDS down, ...)
            raise credentials_error(self.describe(), exc) from exc

    def _profile_region(self) -> object:
        try:
            session = self._botocore_session()
            name = getattr(session, "region_name", None)  # boto3.Session
            if name is None and hasattr(session, "get_config_variable"):
                name = session.get_config_variable("region")
        except Exception as exc:  # ProfileNotFound, a config file that does not parse
            raise credentials_error(self.describe(), exc) from exc
        return name

    def region(self) -> str | None:
        return configured_region(
            profile_region=self._profile_region, profile_chosen=self._profile_in_play()
        )

    def describe(self) -> str:
        if self._profile:
            return f"profile {self._profile!r}"
        if self._session is not None and hasattr(self._session, "profile_name"):
            return f"boto3 session, profile {self._session.profile_name!r}"
        if os.environ.get("AWS_PROFILE"):
            return f"default credential chain, AWS_PROFILE={os.environ['AWS_PROFILE']!r}"
        return "default credential chain"

    def access_key_hint(self) -> str | None:
        return _current_key(self._credentials)

    def forget(self) -> None:
        """Drop the resolved credentials, and a session of our own (it caches them too).

        A session the user passed is theirs: botocore refreshes its credentials by expiry.
        """
        self._credentials = None
        if self._owns_session:
            self._session = None

    def warm(self) -> None:
        """Import botocore and build the session and its credential chain, loading nothing."""
        session = self._botocore_session()
        session = getattr(session, "_session", session)  # boto3.Session -> botocore Session
        if hasattr(session, "get_component"):
            session.get_component("credential_provider")

    def client(self, service: str, region: str | None, credentials: Any) -> Any:
        """A botocore client built from this source's session (for STS: honours
        ``AWS_ENDPOINT_URL_STS`` and the profile's ``endpoint_url``)."""
        session = self._botocore_session()
        session = getattr(session, "_session", session)  # boto3.Session -> botocore Session
        from ..botocore_logs import mention_secrets

        frozen = credentials.get_frozen_credentials()
        mention_secrets(frozen.secret_key, frozen.token)  # the STS request carries the token
        return session.create_client(
            service,
            region_name=region,
            aws_access_key_id=frozen.access_key,
            aws_secret_access_key=frozen.secret_key,
            aws_session_token=frozen.token,
        )


class AssumeRoleSource:
    """Credentials of a role assumed with ``base``'s credentials, via botocore's own
    ``AssumeRoleCredentialFetcher`` inside ``DeferredRefreshableCredentials``: the first
    use calls STS, and botocore refreshes the session before it expires."""

    def __init__(
        self,
        base: BotocoreSource,
        role_arn: str,
        *,
        session_name: str | None = None,
        external_id: str | None = None,
        duration: int | None = None,
        region: str | None = None,
    ) -> None:
        self._base = base
        self.role_arn = role_arn
        self._extra: dict[str, Any] = {"RoleSessionName": session_name or "sqlalchemy-rds-iam"}
        if external_id:
            self._extra["ExternalId"] = external_id
        if duration:
            self._extra["DurationSeconds"] = duration
        self._region = region
        self._credentials: Any = None
        self._lock = threading.Lock()
        self.clock: Callable[[], datetime.datetime] | None = None
        """botocore's refresh clock (an aware ``datetime``); replaceable to simulate time."""

    def _now(self) -> datetime.datetime:
        return self.clock() if self.clock is not None else _now_utc()

    def _resolve(self) -> Any:
        if self._credentials is None:
            with self._lock:
                if self._credentials is None:
                    from botocore.credentials import (
                        AssumeRoleCredentialFetcher,
                        DeferredRefreshableCredentials,
                    )

                    source = self._base.botocore_credentials()
                    region = self._region or self._base.region()

                    def sts_client(service: str, **_: Any) -> Any:
                        # The fetcher passes the source's keys; we take them fresh from the
                        # source object instead, which may have rotated since.
                        return self._base.client(service, region, source)

                    fetcher = AssumeRoleCredentialFetcher(
                        sts_client, source, self.role_arn, extra_args=dict(self._extra)
                    )
                    self._credentials = DeferredRefreshableCredentials(
                        refresh_using=fetcher.fetch_credentials,
                        method="assume-role",
                        time_fetcher=self._now,
                    )
        return self._credentials

    def frozen(self) -> FrozenCredentials:
        from ..botocore_logs import scrubbed_logs

        credentials = self._resolve()
        try:
            with scrubbed_logs():  # botocore logs the STS response (the role's secrets)
                return _frozen(credentials)
        except CredentialsError:
            raise
        except Exception as exc:  # STS AccessDenied, an unreachable endpoint, ...
            raise credentials_error(self.describe(), exc) from exc

    def region(self) -> str | None:
        return self._base.region()

    def describe(self) -> str:
        return f"role {self.role_arn} assumed with the {self._base.describe()}"

    def access_key_hint(self) -> str | None:
        return _current_key(self._credentials)

    def forget(self) -> None:
        """Drop the role's session and the base credentials (STS is asked again)."""
        self._credentials = None
        self._base.forget()

    def warm(self) -> None:
        self._base.warm()


#: What a ``credentials_provider`` returns: (access key, secret, [session token, [expiry]]).
ProviderResult = tuple[Any, ...]


class CallableSource:
    """Credentials from the user's callable.

    Without an expiry, the callable is asked at every signing (a new token: at most every
    10 minutes per engine, or after a refused login). With one (a ``datetime`` or epoch
    seconds), botocore's ``RefreshableCredentials`` asks again as the expiry nears.
    """

    def __init__(self, provider: Callable[[], ProviderResult], region: str | None = None) -> None:
        self._provider = provider
        self._region = region
        self._refreshable: Any = None
        self._last_key: str | None = None
        self._lock = threading.Lock()
        self.clock: Callable[[], datetime.datetime] | None = None
        """botocore's refresh clock (an aware ``datetime``); replaceable to simulate time."""

    def _call(self) -> FrozenCredentials:
        try:
            result = tuple(self._provider())
        except CredentialsError:
            raise
        except Exception as exc:
            raise CredentialsError(
                f"credentials_provider raised {type(exc).__name__}: {exc}"
            ) from exc
        if not 2 <= len(result) <= 4 or not all(isinstance(v, str) and v for v in result[:2]):
            raise CredentialsError(
                "credentials_provider must return (access_key, secret_key) or (access_key, "
                "secret_key, session_token, expiry), with non-empty strings for the keys"
            )
        token = result[2] if len(result) > 2 else None
        expiry = result[3] if len(result) > 3 else None
        if isinstance(expiry, datetime.datetime):
            if expiry.tzinfo is None:
                raise CredentialsError(
                    "credentials_provider returned a naive expiry datetime: give it a timezone"
                )
            expiry = expiry.timestamp()
        elif expiry is not None and not isinstance(expiry, (int, float)):
            raise CredentialsError("credentials_provider's expiry must be a datetime or seconds")
        return FrozenCredentials(result[0], result[1], token or None, expiry)

    def _metadata(self) -> dict[str, Any]:
        """botocore's refresh callback: the provider's next answer, in botocore's shape."""
        fresh = self._call()
        if fresh.expiry is None:
            raise CredentialsError(
                "credentials_provider stopped returning an expiry: return one every time, or never"
            )
        return {
            "access_key": fresh.access_key,
            "secret_key": fresh.secret_key,
            "token": fresh.token,
            "expiry_time": _utc(fresh.expiry).isoformat(),
        }

    def _now(self) -> datetime.datetime:
        return self.clock() if self.clock is not None else _now_utc()

    def frozen(self) -> FrozenCredentials:
        if self._refreshable is not None:
            try:
                snapshot = _frozen(self._refreshable)
            except CredentialsError:
                raise
            except Exception as exc:
                raise credentials_error(self.describe(), exc) from exc
        else:
            snapshot = self._call()
            if snapshot.expiry is not None:
                with self._lock:
                    if self._refreshable is None:
                        from botocore.credentials import RefreshableCredentials

                        self._refreshable = RefreshableCredentials(
                            snapshot.access_key,
                            snapshot.secret_key,
                            snapshot.token,  # type: ignore[arg-type]  # None: no session
                            _utc(snapshot.expiry),
                            refresh_using=self._metadata,
                            method="credentials_provider",
                            time_fetcher=self._now,
                        )
        self._last_key = snapshot.access_key
        return snapshot

    def region(self) -> str | None:
        return self._region or configured_region()

    def describe(self) -> str:
        return "credentials_provider"

    def access_key_hint(self) -> str | None:
        if self._refreshable is not None:
            return _current_key(self._refreshable)
        return self._last_key

    def forget(self) -> None:
        """Drop what the provider returned: the next signing asks it again."""
        self._refreshable = None
        self._last_key = None

