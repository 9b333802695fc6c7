"""Driver facts: how each DBAPI spells the password and TLS, in one table.

Each SQLAlchemy dialect forwards URL query parameters differently (``create_connect_args``)
and each driver spells TLS its own way. The plugin only looks rows up here; supporting a
driver means adding a row, not a branch.

A row's ``apply_tls`` fills TLS defaults into ``cparams`` without overriding what the user
set; ``insecure`` says why the final arguments would send the token unencrypted, or
returns ``None``. Both are called on the same ``cparams`` dict for every connection, so
they must be idempotent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from .errors import UnsupportedDriverError

__all__ = ["DRIVERS", "DriverSpec", "driver_for"]

CParams = MutableMapping[str, Any]

_LIBPQ_INSECURE = {"disable", "allow", "prefer"}


def _libpq_tls(cparams: CParams, ca_bundle: str, mode: str) -> None:
    """libpq keywords (psycopg2, psycopg 3): sslmode + sslrootcert."""
    cparams.setdefault("sslmode", mode)
    cparams.setdefault("sslrootcert", ca_bundle)


def _libpq_insecure(cparams: Mapping[str, Any]) -> str | None:
    mode = str(cparams.get("sslmode", "")).lower()
    if mode in _LIBPQ_INSECURE:
        return f"sslmode={mode} may connect without TLS"
    return None


def _pymysql_tls(cparams: CParams, ca_bundle: str, mode: str) -> None:
    """PyMySQL: ``ssl_*`` keywords, or the ``ssl`` dict SQLAlchemy builds from URL ``ssl_*``.

    PyMySQL ignores an ``ssl`` dict as soon as any ``ssl_ca``/``ssl_verify_*`` keyword is
    given, so defaults go into whichever form the user already uses.
    """
    ssl = cparams.get("ssl")
    if isinstance(ssl, Mapping):
        merged = dict(ssl)  # never mutate the user's connect_args dict
        merged.setdefault("ca", ca_bundle)
        merged.setdefault("check_hostname", mode == "verify-full")
        merged.setdefault("verify_mode", True)
        cparams["ssl"] = merged
    elif ssl:  # an SSLContext of the user's: theirs to configure
        return
    else:
        cparams.pop("ssl", None)
        cparams.setdefault("ssl_ca", ca_bundle)
        cparams.setdefault("ssl_verify_cert", True)
        cparams.setdefault("ssl_verify_identity", mode == "verify-full")


def _pymysql_insecure(cparams: Mapping[str, Any]) -> str | None:
    if cparams.get("ssl_disabled"):
        return "ssl_disabled is set"
    return None


@dataclass(frozen=True)
class DriverSpec:
    """How one DBAPI driver takes the token and TLS settings."""

    driver: str
    """``dialect.driver`` as SQLAlchemy names it."""
    family: str
    """``postgresql`` or ``mysql``."""
    default_port: int
    password_key: str
    apply_tls: Callable[[CParams, str, str], None]
    insecure: Callable[[Mapping[str, Any]], str | None]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    """Arguments always set (e.g. a cleartext-auth switch), with ``setdefault``."""
    is_async: bool = False


DRIVERS: Mapping[str, DriverSpec] = {
    spec.driver: spec
    for spec in (
        DriverSpec("psycopg2", "postgresql", 5432, "password", _libpq_tls, _libpq_insecure),
        DriverSpec("pymysql", "mysql", 3306, "password", _pymysql_tls, _pymysql_insecure),
    )
}

_FAMILIES = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}


def driver_for(dialect_name: str, driver: str) -> DriverSpec:
    """The row for ``dialect_name+driver``, or an error naming the supported ones."""
    spec = DRIVERS.get(driver)
    if spec is None or _FAMILIES.get(dialect_name) != spec.family:
        supported = ", ".join(
            f"{s.family}+{s.driver}" + (" (async)" if s.is_async else "") for s in DRIVERS.values()
        )
        raise UnsupportedDriverError(
            f"IAM authentication is not supported for {dialect_name}+{driver}; "
            f"supported drivers: {supported}"
        )
    return spec
