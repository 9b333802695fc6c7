"""The keywords ``attach()`` takes, typed so that a type checker catches a misspelling.

A module of its own: building a ``TypedDict`` costs ~0.2 ms, and only type checkers, the
documentation and ``options``' consistency tests read it, never a connect. The names are
:data:`sqlalchemy_rds_iam.options.OPTIONS`' (a unit test checks both agree).
"""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = ["AttachOptions"]


class AttachOptions(TypedDict, total=False):
    """The keywords ``attach()`` takes, typed so that a type checker catches a misspelling."""

    aws_region: str
    aws_profile: str
    iam_host: str
    iam_port: int | str
    iam_ca_bundle: str
    iam_tls: str
    iam_token_lifetime: int | str
    iam_connect_retries: int | str
    iam_retry_budget: float | str
    aws_role_arn: str
    aws_role_session_name: str
    aws_external_id: str
    aws_role_duration: int | str
    boto3_session: Any
    credentials_provider: Any
