"""The package's exceptions, under one root.

    RdsIamError                 every error this package raises
    ├── ConfigurationError      bad options: raised by create_engine()/attach(), before any connect
    │   └── InsecureConnectionError   a token would travel over an unencrypted connection
    ├── UnsupportedDriverError  a DBAPI driver this package has no entry for
    ├── CredentialsError        no AWS credentials, or they could not be loaded/refreshed
    └── TokenError              signing the token failed

Messages never contain a token, a secret key or a session token.
"""

from __future__ import annotations


class RdsIamError(Exception):
    """Root of every exception raised by sqlalchemy-rds-iam."""


class ConfigurationError(RdsIamError, ValueError):
    """An option is missing or invalid; the message says which and how to fix it."""


class InsecureConnectionError(ConfigurationError):
    """The connection settings would send an IAM token without TLS."""


class UnsupportedDriverError(ConfigurationError):
    """The engine's DBAPI driver is not one this package knows how to configure."""


class CredentialsError(RdsIamError):
    """AWS credentials could not be found or refreshed."""


class TokenError(RdsIamError):
    """An IAM authentication token could not be generated."""
