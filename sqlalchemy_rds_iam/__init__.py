"""IAM database authentication for SQLAlchemy on Amazon RDS, Aurora and RDS Proxy.

``create_engine("postgresql+psycopg2://iamuser@host/db?plugin=rds_iam")`` or
``attach(engine)``: every new connection gets a fresh IAM token and verified TLS.
Importing this package does not import botocore; the first connection does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    ConfigurationError,
    CredentialsError,
    InsecureConnectionError,
    RdsIamError,
    TokenError,
    UnsupportedDriverError,
)

if TYPE_CHECKING:
    from .plugin import IamConnector

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "CredentialsError",
    "InsecureConnectionError",
    "RdsIamError",
    "TokenError",
    "UnsupportedDriverError",
    "__version__",
    "attach",
    "connector",
]


def attach(engine: Any, **options: Any) -> IamConnector:
    """Give an existing engine IAM authentication (see :func:`sqlalchemy_rds_iam.plugin.attach`)."""
    from .plugin import attach as _attach

    return _attach(engine, **options)


def connector(engine: Any) -> IamConnector:
    """The IAM listener of an engine: its target, options and token cache."""
    from .plugin import connector as _connector

    return _connector(engine)
