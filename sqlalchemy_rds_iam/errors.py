"""The package's exceptions, under one root that is also SQLAlchemy's.

    RdsIamError                       every error this package raises
    ├── ConfigurationError            bad options, raised by create_engine()/attach()
    │   ├── InsecureConnectionError   the token would travel without TLS
    │   ├── RegionError               no region to sign for, or one the hostname contradicts
    │   ├── TrustStoreError           the CA bundle has no root for the endpoint's region
    │   └── UnsupportedDriverError    a driver we have no table row for
    ├── CredentialsError              no AWS credentials, or they could not be loaded/refreshed
    └── TokenError                    signing the token failed

``RdsIamError`` derives from :class:`sqlalchemy.exc.SQLAlchemyError`, so ``except
SQLAlchemyError`` around ``engine.connect()`` also catches a credentials or region problem;
configuration errors are also :class:`sqlalchemy.exc.ArgumentError` (what SQLAlchemy raises
for a bad ``create_engine`` argument) and ``ValueError``. The tree above is checked against
the classes by a test. Messages never contain a token, a secret key or a session token.
"""

from __future__ import annotations

from sqlalchemy.exc import ArgumentError, SQLAlchemyError

__all__ = [
    "ConfigurationError",
    "CredentialsError",
    "InsecureConnectionError",
    "RdsIamError",
    "RegionError",
    "TokenError",
    "TrustStoreError",
    "UnsupportedDriverError",
]


class RdsIamError(SQLAlchemyError):
    """Root of every exception raised by sqlalchemy-rds-iam."""


class ConfigurationError(RdsIamError, ArgumentError, ValueError):
    """An option is missing or invalid; the message says which and how to fix it."""


class InsecureConnectionError(ConfigurationError):
    """The connection settings would send an IAM token without TLS."""


class RegionError(ConfigurationError):
    """No AWS region to sign for, or an ``aws_region`` the hostname contradicts."""


class TrustStoreError(ConfigurationError):
    """The default CA bundle cannot verify this endpoint (no root for its region yet)."""


class UnsupportedDriverError(ConfigurationError):
    """The engine's DBAPI driver is not one this package knows how to configure."""


class CredentialsError(RdsIamError):
    """AWS credentials could not be found or refreshed."""


class TokenError(RdsIamError):
    """An IAM authentication token could not be generated."""
