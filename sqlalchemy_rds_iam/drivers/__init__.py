"""Driver facts: how each DBAPI takes the token, TLS and MySQL cleartext auth, in one table.

Each SQLAlchemy dialect forwards URL query parameters differently (``create_connect_args``)
and each driver spells TLS its own way (libpq keywords, an ``SSLContext``, an ``ssl`` dict,
``ssl_ca``...). The plugin only looks rows up here; supporting a driver means adding a row,
not a branch.

A row's ``prepare(cparams, ca_bundle, mode)`` fills TLS defaults (and any switch the driver
needs) without overriding what the user set. Its ``classify(cargs, cparams)`` then reads the
exact arguments the driver will receive and says what they mean, as a :class:`Transport`
(encrypted? which roots verify the chain? hostname checked? TCP?). It is an allow-list:
every TLS- or transport-related argument must hold a value the row understands and knows
to be safe; anything else (``None``, ``0``, ``[]``, an unknown word, a context that verifies
nothing, an option file it cannot read, a Unix socket) raises
:class:`~sqlalchemy_rds_iam.errors.InsecureConnectionError` naming the setting and the fix.

Before any of that, :func:`place` makes the host, port and user the driver will use those
of the :class:`~sqlalchemy_rds_iam.target.Target` (what the token is signed for and the
certificate checked against): set when absent, refused when a URL query or ``connect_args``
names another. And each row carries a keyword allow-list (:class:`Keywords`): every key the
driver receives is known (checked by the row, or harmless) or refused, naming what to write
instead; unknown keys are refused, so a driver's new way to move the connection or log TLS
secrets cannot slip through. The lists are read from each driver's ``connect()`` signature
and SQLAlchemy's ``create_connect_args`` for it (cited at each list).

Both run on the same ``cparams`` dict for every connection, so they are idempotent, and they
never mutate a nested value (an ``ssl`` dict may be the user's ``connect_args`` object):
they assign new ones. ``scrub(connection)`` overwrites the token where a driver keeps it on
its connection object, once the login is done.

This package: the row type and the table here; the rules the rows are written in in
``rules``; MySQL's ssl dicts and option files in ``tlsargs``; one module per driver family
(``postgresql``, ``mysql``, ``aiomysql``); :class:`Transport` in ``sqlalchemy_rds_iam.transport``.
No driver is imported at module level: a row's functions import their driver when they
first run, which is after SQLAlchemy has already imported it for the dialect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import UnsupportedDriverError
from ..memo import MemoizedClassify
from ..transport import Classify, Transport
from . import aiomysql as _aio
from . import mysql as _my
from . import postgresql as _pg
from .aiomysql import connect_aiomysql_requiring_tls
from .postgresql import LIBPQ_PLAINTEXT_MODES
from .rules import (
    CHECKED,
    HARMLESS,
    OURS,
    PLACED,
    Connect,
    Keywords,
    Prepare,
    Scrub,
    _keywords,
    _no_scrub,
    _scrub_attrs,
    place,
)

__all__ = [
    "CHECKED", "DRIVERS", "HARMLESS", "LIBPQ_PLAINTEXT_MODES", "OURS", "PLACED", "DriverSpec",
    "Keywords", "Transport", "connect_aiomysql_requiring_tls", "driver_for", "place",
]


def _dialect_connect(dialect: Any, cargs: Sequence[Any], cparams: Mapping[str, Any]) -> Any:
    return dialect.connect(*cargs, **cparams)


# -- the table ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class DriverSpec:
    """How one DBAPI driver takes the token, TLS settings and the MySQL cleartext switch."""

    name: str
    """The driver as written in a URL (``postgresql+psycopg_async``: ``psycopg_async``)."""
    driver: str
    """``dialect.driver`` as SQLAlchemy names it (``psycopg`` for both psycopg dialects)."""
    family: str
    """``postgresql`` or ``mysql`` (``mariadb`` URLs use the ``mysql`` rows)."""
    is_async: bool
    """Whether the dialect runs on an event loop: signing then goes to a worker thread."""
    default_port: int
    password_key: str
    """The keyword the token goes into."""
    extra: str
    """``pip install sqlalchemy-rds-iam[extra]`` installs the driver."""
    prepare: Prepare
    classify: Classify
    """The final arguments' :class:`Transport`; raises for anything it cannot vouch for.

    Memoized per snapshot of the arguments it reads, for at most ``memo.RECHECK_SECONDS``
    (``memo.MemoizedClassify``): the hot path of every new connection.
    """
    keywords: Keywords = field(default_factory=lambda: Keywords("", {}))
    """Every argument this driver may receive: checked, harmless or refused (first step of
    :attr:`classify`)."""
    scrub: Scrub = _no_scrub
    """Overwrites the token on a connected driver connection, where the driver keeps it."""
    connect: Connect = _dialect_connect
    """Makes the connection from the checked arguments: ``dialect.connect`` but where the
    driver's own way would build a TLS context of its own (mysql-connector)."""
    fixed: Mapping[str, Any] = field(default_factory=dict)
    """Arguments always set with ``setdefault`` (e.g. a cleartext-auth switch)."""

    @property
    def url_prefix(self) -> str:
        return f"{self.family}+{self.name}"


_PORTS = {"postgresql": 5432, "mysql": 3306}


def _allowlisted(keywords: Keywords, classify: Classify) -> Classify:
    """``classify`` after the keyword allow-list: an unknown or refused key never gets past."""

    def checked(cargs: Sequence[Any], cparams: Mapping[str, Any]) -> Transport:
        keywords.check(cparams)
        return classify(cargs, cparams)

    checked.__name__ = checked.__qualname__ = getattr(classify, "__name__", "classify")
    return checked


def _row(
    url_name: str, family: str, *, driver: str | None = None, is_async: bool = False,
    into: str = "password", extra: str, prepare: Prepare, classify: Classify,
    keywords: Keywords, scrub: Scrub = _no_scrub, fixed: Mapping[str, Any] | None = None,
    connect: Connect = _dialect_connect,
) -> DriverSpec:
    return DriverSpec(
        name=url_name, driver=driver or url_name, family=family, is_async=is_async,
        default_port=_PORTS[family], password_key=into, extra=extra,
        prepare=prepare, classify=MemoizedClassify(_allowlisted(keywords, classify)),
        keywords=keywords, scrub=scrub, fixed=dict(fixed or {}), connect=connect,
    )


DRIVERS: Mapping[str, DriverSpec] = {
    spec.name: spec
    for spec in (
        _row("psycopg2", "postgresql", extra="postgresql", keywords=_pg._PSYCOPG2_KEYWORDS,
             prepare=_pg._libpq_prepare_with(_pg._psycopg2_libpq), classify=_pg._libpq_classify),
        _row("psycopg", "postgresql", extra="psycopg", keywords=_pg._PSYCOPG_KEYWORDS,
             prepare=_pg._libpq_prepare_with(_pg._psycopg_libpq), classify=_pg._libpq_classify),
        _row("psycopg_async", "postgresql", driver="psycopg", is_async=True, extra="psycopg",
             keywords=_keywords("psycopg_async", _pg._PSYCOPG_KEYWORDS.rules),
             prepare=_pg._libpq_prepare_with(_pg._psycopg_libpq), classify=_pg._libpq_classify),
        _row("pg8000", "postgresql", extra="pg8000", keywords=_pg._PG8000_KEYWORDS,
             prepare=_pg._pg8000_prepare, classify=_pg._pg8000_classify,
             scrub=_scrub_attrs("password")),
        _row("asyncpg", "postgresql", is_async=True, extra="asyncpg",
             keywords=_pg._ASYNCPG_KEYWORDS, prepare=_pg._asyncpg_prepare,
             classify=_pg._asyncpg_classify, scrub=_pg._scrub_asyncpg),
        _row("pymysql", "mysql", extra="mysql", keywords=_my._PYMYSQL_KEYWORDS,
             prepare=_my._pymysql_prepare, classify=_my._pymysql_classify,
             scrub=_scrub_attrs("password")),
        # MySQLdb: ``passwd`` overrides ``password`` when both are given, so it is the one to set.
        _row("mysqldb", "mysql", into="passwd", extra="mysqlclient",
             keywords=_my._MYSQLDB_KEYWORDS,
             prepare=_my._mysqldb_prepare, classify=_my._mysqldb_classify),
        _row("mysqlconnector", "mysql", extra="mysql-connector", keywords=_my._CONNECTOR_KEYWORDS,
             prepare=_my._connector_prepare, classify=_my._connector_classify,
             scrub=_my._scrub_connector, connect=_my._connector_open,
             fixed={"auth_plugin": "mysql_clear_password"}),
        _row("aiomysql", "mysql", is_async=True, extra="aiomysql", keywords=_aio._AIOMYSQL_KEYWORDS,
             prepare=_aio._aiomysql_prepare, classify=_aio._aiomysql_classify,
             scrub=_scrub_attrs("_password")),
        _row("asyncmy", "mysql", is_async=True, extra="asyncmy", keywords=_my._ASYNCMY_KEYWORDS,
             prepare=_my._asyncmy_prepare, classify=_my._asyncmy_classify,
             scrub=_scrub_attrs("_password")),
    )
}

_FAMILIES = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}


def driver_for(dialect_name: str, driver: str, is_async: bool | None = None) -> DriverSpec:
    """The row for ``dialect_name+driver``, or an error naming the supported ones.

    ``is_async`` tells psycopg's sync and async dialects apart (both are ``psycopg``);
    when it is not given, the sync row is returned.
    """
    family = _FAMILIES.get(dialect_name)
    rows = [
        spec
        for spec in DRIVERS.values()
        if spec.driver == driver and spec.family == family
        and (is_async is None or spec.is_async == is_async)
    ]
    if not rows:
        supported = ", ".join(spec.url_prefix for spec in DRIVERS.values())
        raise UnsupportedDriverError(
            f"IAM authentication is not supported for {dialect_name}+{driver}; "
            f"supported drivers: {supported}"
        )
    return rows[0]
