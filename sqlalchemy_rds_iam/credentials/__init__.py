"""Where signing credentials come from, and the one factory that picks the source.

:func:`source_for` alone knows the order (botocore's ``create_credential_resolver`` in
miniature): the user's ``credentials_provider`` first, then, with no profile, session or
role chosen, the default chain read from the environment (:mod:`.environment`, botocore-free
on Lambda, handing over to :mod:`.container` or botocore), else botocore's chain for the
profile or session (:mod:`.botocore`), with a role assumed on top when asked. The shared
record, protocol, region rule and errors are in :mod:`.base`; :mod:`.refresh` holds
botocore's refresh windows for the botocore-free sources. Nothing here imports botocore:
each source does on first use, and only when it needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import CredentialSource, FrozenCredentials, configured_region, credentials_error
from .environment import EnvironmentSource

if TYPE_CHECKING:
    from ..options import Options
    from .botocore import AssumeRoleSource, BotocoreSource, CallableSource, ProviderResult

__all__ = [
    "AssumeRoleSource",
    "BotocoreSource",
    "CallableSource",
    "CredentialSource",
    "EnvironmentSource",
    "FrozenCredentials",
    "ProviderResult",
    "configured_region",
    "credentials_error",
    "source_for",
]


def source_for(options: Options, region: str | None = None) -> CredentialSource:
    """The credential source an engine's options ask for (``region``: the endpoint's, for
    STS and for a callable provider)."""
    if (options.credentials_provider is None and not options.aws_profile
            and options.boto3_session is None and not options.aws_role_arn):
        return EnvironmentSource()  # botocore's chain, its first link without botocore
    from .botocore import AssumeRoleSource, BotocoreSource, CallableSource

    if options.credentials_provider is not None:
        return CallableSource(options.credentials_provider, region)
    base = BotocoreSource(profile=options.aws_profile, session=options.boto3_session)
    if options.aws_role_arn:
        return AssumeRoleSource(
            base,
            options.aws_role_arn,
            session_name=options.aws_role_session_name,
            external_id=options.aws_external_id,
            duration=options.aws_role_duration,
            region=region,
        )
    return base


def __getattr__(name: str) -> Any:
    """The botocore-backed sources, loaded when first named: a cold start with credentials
    in the environment (Lambda) never imports :mod:`.botocore`."""
    if name in ("AssumeRoleSource", "BotocoreSource", "CallableSource", "ProviderResult"):
        from . import botocore

        return getattr(botocore, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
