"""What every credential source shares: the snapshot it hands out, the protocol it
implements, the one region rule, and how a failure to load credentials is reported.

Imported by each source module and by the factory in :mod:`sqlalchemy_rds_iam.credentials`;
it imports none of them, so the package has no import cycle.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ..errors import CredentialsError, RegionError

__all__ = [
    "CredentialSource", "FrozenCredentials", "NotPlain", "configured_region",
    "credentials_error", "region_for",
]


class NotPlain(Exception):
    """An expiry (``refresh.parse_expiry``) that only botocore should interpret.

    Here, not in ``refresh``: the sources catch it on every read, and ``refresh`` loads only
    where there is an expiry to read (Lambda's environment has none).
    """


class FrozenCredentials:
    """One consistent snapshot of credentials; the secret parts never appear in a repr.

    Immutable and compared by value. A plain class with ``__slots__`` rather than a frozen
    dataclass, whose creation would cost every cold start about 0.6 ms (issue 16).
    """

    __slots__ = ("access_key", "expiry", "from_environment", "secret_key", "token")

    access_key: str
    secret_key: str
    token: str | None
    expiry: float | None
    """Epoch seconds after which these credentials stop working; ``None``: long-lived."""
    from_environment: bool
    """Read without botocore (``AWS_*`` variables, the container endpoint): signed without
    botocore too."""

    def __init__(self, access_key: str, secret_key: str, token: str | None,
                 expiry: float | None, from_environment: bool = False) -> None:
        setter = object.__setattr__
        setter(self, "access_key", access_key)
        setter(self, "secret_key", secret_key)
        setter(self, "token", token)
        setter(self, "expiry", expiry)
        setter(self, "from_environment", from_environment)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"credentials are immutable: cannot assign {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"credentials are immutable: cannot delete {name!r}")

    def _value(self) -> tuple[Any, ...]:
        return (self.access_key, self.secret_key, self.token, self.expiry, self.from_environment)

    def __eq__(self, other: object) -> bool:
        if type(other) is not FrozenCredentials:
            return NotImplemented
        return self._value() == other._value()

    def __hash__(self) -> int:
        return hash(self._value())

    def __repr__(self) -> str:
        return (f"FrozenCredentials(access_key={self.access_key!r}, expiry={self.expiry!r}, "
                f"from_environment={self.from_environment!r})")


class CredentialSource(Protocol):
    """Anything that can hand out signing credentials and knows its configured region."""

    def frozen(self) -> FrozenCredentials: ...

    def region(self) -> str | None: ...

    def describe(self) -> str: ...

    # Optional: ``access_key_hint() -> str | None``, the access key the source holds now if
    # known without I/O; a cached token signed with another key is then not reused.


def configured_region(
    environ: Mapping[str, str] | None = None,
    *,
    profile_region: Callable[[], object] | None = None,
    profile_chosen: bool = False,
) -> str | None:
    """The configured region: the one place the "region from the environment" rule is written.

    ``AWS_DEFAULT_REGION`` (botocore's precedence), then ``AWS_REGION`` (what Lambda and most
    SDKs set); empty counts as unset. With ``profile_region`` (a botocore session's
    ``region``, which may read config files), that is asked when the environment names no
    region, or first when a profile or session was chosen explicitly (``profile_chosen``),
    and ``AWS_REGION`` is the last resort.
    """
    environ = os.environ if environ is None else environ
    if profile_region is None or not profile_chosen:
        name = environ.get("AWS_DEFAULT_REGION") or environ.get("AWS_REGION")
        if name or profile_region is None:
            return name or None
    found = profile_region() or environ.get("AWS_REGION")
    return str(found) if found else None


def region_for(host: str, source: CredentialSource) -> str:
    """The region a token for ``host``, whose name says none, is signed in: ``source``'s
    configured one (:func:`configured_region`), else :class:`RegionError` saying how to give one.
    """
    region = source.region()
    if not region:
        raise RegionError(
            f"no AWS region for {host}: it is not an RDS hostname, so give "
            "aws_region= (URL or attach()), or set AWS_REGION / a profile region"
        )
    return region


#: botocore exception class name -> what to fix (the message also names the source).
_FIXES = {
    "ProfileNotFound": "fix aws_profile= / AWS_PROFILE, or add the profile to ~/.aws/config",
    "ConfigParseError": "fix the syntax of the AWS config file (AWS_CONFIG_FILE, ~/.aws/config)",
    "PartialCredentialsError": "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    "NoCredentialsError": "configure credentials (environment, profile, or an IAM role)",
    "ClientError": "check that the source identity may call sts:AssumeRole on the role "
    "(the role's trust policy, aws_external_id) and that the role exists",
    "RefreshWithMFAUnsupportedError": "use a profile whose role needs no MFA prompt",
    "CredentialRetrievalError": "check the credential_process / SSO / container settings",
    "SSOTokenLoadError": "run `aws sso login` for the profile",
    "TokenRetrievalError": "run `aws sso login` for the profile",
}


def credentials_error(source: str, exc: BaseException) -> CredentialsError:
    """The :class:`CredentialsError` for ``exc`` (botocore's or ours, matched by class
    name) raised while loading ``source``: names the source, the error and the fix."""
    fix = _FIXES.get(type(exc).__name__, "check the AWS configuration for this source")
    return CredentialsError(
        f"could not load AWS credentials ({source}): {type(exc).__name__}: {exc}; {fix}"
    )
