"""IAM database authentication for SQLAlchemy on Amazon RDS, Aurora and RDS Proxy.

``create_engine("postgresql+psycopg2://iamuser@host/db?plugin=rds_iam")`` or
``attach(engine)``: every new connection gets a fresh IAM token and verified TLS.
Importing this package does not import botocore; the first connection does.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from .errors import (
    ConfigurationError,
    CredentialsError,
    InsecureConnectionError,
    RdsIamError,
    RegionError,
    TokenError,
    TrustStoreError,
    UnsupportedDriverError,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

    from .options import AttachOptions
    from .plugin import IamConnector

    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:
        from typing_extensions import Unpack

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "CredentialsError",
    "IamConnector",
    "InsecureConnectionError",
    "RdsIamError",
    "RegionError",
    "TokenError",
    "TrustStoreError",
    "UnsupportedDriverError",
    "__version__",
    "after_restore",
    "attach",
    "before_snapshot",
    "connector",
]


def __getattr__(name: str) -> Any:
    """``IamConnector`` on first use: its module imports the SQLAlchemy engine machinery."""
    if name == "IamConnector":
        from .plugin import IamConnector

        return IamConnector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def attach(engine: Engine | AsyncEngine, **options: Unpack[AttachOptions]) -> IamConnector:
    """Give an existing engine IAM authentication (see :func:`sqlalchemy_rds_iam.plugin.attach`)."""
    from .plugin import attach as _attach

    return _attach(engine, **options)


def connector(engine: Engine | AsyncEngine) -> IamConnector:
    """The IAM listener of an engine: its target, options and token cache."""
    from .plugin import connector as _connector

    return _connector(engine)


def before_snapshot() -> None:
    """Before a process snapshot: drop every token and credential, mark pooled connections
    invalid (registered with Lambda SnapStart's runtime hooks when present; see
    :mod:`sqlalchemy_rds_iam.snapshot`)."""
    from .snapshot import before_snapshot as _before

    _serve_attached()
    _before()


def after_restore() -> None:
    """After a snapshot restore: drop every token and credential; every engine's pooled
    connections are replaced at their next checkout (see :mod:`sqlalchemy_rds_iam.snapshot`)."""
    from .snapshot import after_restore as _after

    _serve_attached()
    _after()


def _serve_attached() -> None:
    """Engines made outside a SnapStart init were not put under the hooks (the plugin loads
    ``snapshot`` only where a snapshot may follow): put them there now."""
    plugin = sys.modules.get(f"{__name__}.plugin")
    if plugin is None:  # no plugin loaded: no engine to serve
        return
    from .snapshot import track

    for engine, connector in list(plugin._ATTACHED.items()):
        track(engine, connector)


def _register_plugin() -> None:
    """Name our plugin to an already imported SQLAlchemy: the same class the entry point
    names, minus SQLAlchemy's scan of every installed distribution's entry points at the
    first ``create_engine(...?plugin=rds_iam)`` (about 1 ms per 3 distributions on a cold
    start)."""
    dialects = sys.modules.get("sqlalchemy.dialects")
    if dialects is not None:
        dialects.plugins.register("rds_iam", "sqlalchemy_rds_iam.plugin", "RdsIamPlugin")


_register_plugin()
