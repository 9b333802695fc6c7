"""Where signing credentials come from: botocore's default chain, a profile, or a boto3 Session.

A :class:`CredentialSource` is the seam for what comes next (role assumption, rotation,
a user callable): anything with ``frozen()``, ``region()`` and ``describe()`` can sign.
botocore is imported on first use, not at import time, to keep Lambda cold starts short.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .errors import CredentialsError

if TYPE_CHECKING:
    from .options import Options

__all__ = ["BotocoreSource", "CredentialSource", "FrozenCredentials", "source_for"]


@dataclass(frozen=True)
class FrozenCredentials:
    """One consistent snapshot of credentials; the secret parts never appear in a repr."""

    access_key: str
    secret_key: str = field(repr=False)
    token: str | None = field(repr=False)
    expiry: float | None
    """Epoch seconds after which these credentials stop working; ``None``: long-lived."""


class CredentialSource(Protocol):
    """Anything that can hand out signing credentials and knows its configured region."""

    def frozen(self) -> FrozenCredentials: ...

    def region(self) -> str | None: ...

    def describe(self) -> str: ...


class BotocoreSource:
    """Credentials from botocore's provider chain (env, profile, SSO, container, IMDS, ...).

    The botocore session is built once, on first use, and reused: its credential object
    refreshes temporary credentials itself (advisory and mandatory windows).
    """

    def __init__(self, profile: str | None = None, session: Any = None) -> None:
        self._profile = profile
        self._session = session  # a boto3.Session or botocore Session, or None
        self._lock = threading.Lock()

    def _botocore_session(self) -> Any:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    import botocore.session

                    self._session = botocore.session.Session(profile=self._profile)
        return self._session

    def frozen(self) -> FrozenCredentials:
        session = self._botocore_session()
        try:
            credentials = session.get_credentials()
            if credentials is None:
                raise CredentialsError(
                    f"no AWS credentials found ({self.describe()}): set AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY, configure a profile (aws_profile=), or run with an "
                    "IAM role (Lambda, ECS, EC2)"
                )
            snapshot = credentials.get_frozen_credentials()
        except CredentialsError:
            raise
        except Exception as exc:  # botocore's own errors: profile not found, refresh failed ...
            raise CredentialsError(
                f"could not load AWS credentials ({self.describe()}): {type(exc).__name__}: {exc}"
            ) from exc
        expiry_time = getattr(credentials, "_expiry_time", None)
        expiry = expiry_time.timestamp() if expiry_time is not None else None
        return FrozenCredentials(snapshot.access_key, snapshot.secret_key, snapshot.token, expiry)

    def region(self) -> str | None:
        session = self._botocore_session()
        name = getattr(session, "region_name", None)  # boto3.Session
        if name is None and hasattr(session, "get_config_variable"):
            name = session.get_config_variable("region")
        # botocore reads AWS_DEFAULT_REGION; AWS_REGION is what Lambda and most SDKs set.
        name = name or os.environ.get("AWS_REGION")
        return str(name) if name else None

    def describe(self) -> str:
        if self._profile:
            return f"profile {self._profile!r}"
        if self._session is not None and hasattr(self._session, "profile_name"):
            return f"boto3 session, profile {self._session.profile_name!r}"
        return "default credential chain"


def source_for(options: Options) -> CredentialSource:
    """The credential source an engine's options ask for."""
    return BotocoreSource(profile=options.aws_profile, session=options.boto3_session)
