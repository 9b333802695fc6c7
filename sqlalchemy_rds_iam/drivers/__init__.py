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
first run, which is after SQLAlchemy has already imported it for the dialect. Nor is a
family's module: a row is built on first use, so a ``psycopg2`` app never loads the MySQL
rules (``DRIVERS`` is a lazy mapping; :func:`driver_for` reads only the facts table).
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import UnsupportedDriverError
from ..memo import MemoizedClassify
from ..transport import Classify, Transport
from .rules import (
    CHECKED,
    HARMLESS,
    OURS,
    PLACED,
    Connect,
    Keywords,
    Prepare,
    Scrub,
    _no_scrub,
    place,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = [
    "CHECKED", "DRIVERS", "DRIVER_MODULES", "HARMLESS", "LIBPQ_PLAINTEXT_MODES", "OURS", "PLACED",
    "DriverSpec", "Keywords", "Transport", "connect_aiomysql_requiring_tls", "driver_for",
    "driver_installed", "modules_missing", "place", "url_driver",
]


def _dialect_connect(dialect: Any, cargs: Sequence[Any], cparams: Mapping[str, Any]) -> Any:
    return dialect.connect(*cargs, **cparams)


# -- the row ----------------------------------------------------------------------------------

class DriverSpec:
    """How one DBAPI driver takes the token, TLS settings and the MySQL cleartext switch.

    Immutable. A plain class with ``__slots__``: a frozen dataclass costs every cold start
    about 0.6 ms to build (issue 16). :meth:`replace` gives a copy with some parts changed.
    """

    __slots__ = ("classify", "connect", "default_port", "driver", "extra", "family", "fixed",
                 "is_async", "keywords", "name", "password_key", "prepare", "scrub")

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
    keywords: Keywords
    """Every argument this driver may receive: checked, harmless or refused (first step of
    :attr:`classify`)."""
    scrub: Scrub
    """Overwrites the token on a connected driver connection, where the driver keeps it."""
    connect: Connect
    """Makes the connection from the checked arguments: ``dialect.connect`` but where the
    driver's own way would build a TLS context of its own (mysql-connector)."""
    fixed: Mapping[str, Any]
    """Arguments always set with ``setdefault`` (e.g. a cleartext-auth switch)."""

    def __init__(self, *, name: str, driver: str, family: str, is_async: bool,
                 default_port: int, password_key: str, extra: str, prepare: Prepare,
                 classify: Classify, keywords: Keywords, scrub: Scrub = _no_scrub,
                 connect: Connect = _dialect_connect, fixed: Mapping[str, Any] | None = None,
                 ) -> None:
        values = dict(locals())
        del values["self"]
        values["fixed"] = dict(fixed or {})
        for slot, value in values.items():
            object.__setattr__(self, slot, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"driver rows are immutable: cannot assign {name!r}; use replace()")

    def __repr__(self) -> str:
        return f"<DriverSpec {self.url_prefix}>"

    def replace(self, **changes: Any) -> DriverSpec:
        """A copy with ``changes`` (e.g. a recording ``connect`` in a test)."""
        return DriverSpec(**{**{slot: getattr(self, slot) for slot in self.__slots__},
                             **changes})

    @property
    def url_prefix(self) -> str:
        return f"{self.family}+{self.name}"


def _allowlisted(keywords: Keywords, classify: Classify) -> Classify:
    """``classify`` after the keyword allow-list: an unknown or refused key never gets past."""

    def checked(cargs: Sequence[Any], cparams: Mapping[str, Any]) -> Transport:
        keywords.check(cparams)
        return classify(cargs, cparams)

    checked.__name__ = checked.__qualname__ = getattr(classify, "__name__", "classify")
    return checked


# -- the table ----------------------------------------------------------------------------------

_PORTS = {"postgresql": 5432, "mysql": 3306}

#: Every row's facts, in the table's order: family, ``dialect.driver``, async, the keyword
#: the token goes into (MySQLdb: ``passwd`` overrides ``password`` when both are given),
#: the extra that installs it, and the module of ``drivers`` that holds its parts.
_FACTS: Mapping[str, tuple[str, str, bool, str, str, str]] = {
    "psycopg2": ("postgresql", "psycopg2", False, "password", "postgresql", "postgresql"),
    "psycopg": ("postgresql", "psycopg", False, "password", "psycopg", "postgresql"),
    "psycopg_async": ("postgresql", "psycopg", True, "password", "psycopg", "postgresql"),
    "pg8000": ("postgresql", "pg8000", False, "password", "pg8000", "postgresql"),
    "asyncpg": ("postgresql", "asyncpg", True, "password", "asyncpg", "postgresql"),
    "pymysql": ("mysql", "pymysql", False, "password", "mysql", "mysql"),
    "mysqldb": ("mysql", "mysqldb", False, "passwd", "mysqlclient", "mysql"),
    "mysqlconnector": ("mysql", "mysqlconnector", False, "password", "mysql-connector",
                       "mysqlconnector"),
    "aiomysql": ("mysql", "aiomysql", True, "password", "aiomysql", "aiomysql"),
    "asyncmy": ("mysql", "asyncmy", True, "password", "asyncmy", "mysql"),
}


def _build(name: str) -> DriverSpec:
    family, driver, is_async, password_key, extra, home = _FACTS[name]
    # imported here, not at the top: a cold start loads only its own driver family's rules
    # (by ``__import__``, as an import statement does, so ``-X importtime`` lists it too)
    module = __import__(f"{__name__}.{home}", fromlist=["ROWS"])
    parts: dict[str, Any] = dict(module.ROWS[name])
    keywords: Keywords = parts["keywords"]
    parts["classify"] = MemoizedClassify(_allowlisted(keywords, parts["classify"]))
    return DriverSpec(name=name, driver=driver, family=family, is_async=is_async,
                      default_port=_PORTS[family], password_key=password_key, extra=extra,
                      **parts)


class _Table(Mapping[str, DriverSpec]):
    """The ten rows by URL driver name, each built the first time it is looked up."""

    def __init__(self) -> None:
        self._rows: dict[str, DriverSpec] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> DriverSpec:
        row = self._rows.get(name)
        if row is None:
            if name not in _FACTS:
                raise KeyError(name)
            with self._lock:  # one row object per name, for every engine and thread
                row = self._rows.get(name) or self._rows.setdefault(name, _build(name))
        return row

    def __iter__(self) -> Iterator[str]:
        return iter(_FACTS)

    def __len__(self) -> int:
        return len(_FACTS)


DRIVERS: Mapping[str, DriverSpec] = _Table()

_FAMILIES = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}


def driver_for(dialect_name: str, driver: str, is_async: bool | None = None) -> DriverSpec:
    """The row for ``dialect_name+driver``, or an error naming the supported ones.

    ``is_async`` tells psycopg's sync and async dialects apart (both are ``psycopg``);
    when it is not given, the sync row is returned.
    """
    family = _FAMILIES.get(dialect_name)
    for name, (row_family, row_driver, row_async, *_) in _FACTS.items():
        if (row_driver == driver and row_family == family
                and (is_async is None or row_async == is_async)):
            return DRIVERS[name]
    supported = ", ".join(f"{facts[0]}+{name}" for name, facts in _FACTS.items())
    raise UnsupportedDriverError(
        f"IAM authentication is not supported for {dialect_name}+{driver}; "
        f"supported drivers: {supported}"
    )


def url_driver(url: URL, is_async: bool = False) -> DriverSpec | None:
    """The row of the driver ``url`` names, loading its dialect class (as ``create_engine``
    does next) but not the driver; ``None`` for a dialect this package has no row for.

    Raises SQLAlchemy's ``NoSuchModuleError`` for a name it has no dialect for.
    """
    dialect_cls = url.get_dialect(is_async)
    try:
        return driver_for(dialect_cls.name, dialect_cls.driver, is_async=dialect_cls.is_async)
    except UnsupportedDriverError:
        return None


#: The modules each driver row imports (its DBAPI; greenlet for SQLAlchemy's async engines),
#: all installed by the row's extra. A test checks that every row of ``DRIVERS`` is here.
DRIVER_MODULES: Mapping[str, tuple[str, ...]] = {
    "psycopg2": ("psycopg2",),
    "psycopg": ("psycopg",),
    "psycopg_async": ("psycopg", "greenlet"),
    "pg8000": ("pg8000",),
    "asyncpg": ("asyncpg", "greenlet"),
    "pymysql": ("pymysql",),
    "mysqldb": ("MySQLdb",),
    "mysqlconnector": ("mysql.connector",),
    "aiomysql": ("aiomysql", "pymysql", "greenlet"),
    "asyncmy": ("asyncmy", "greenlet"),
}


def _installed(module: str) -> bool:
    if sys.modules.get(module) is not None:  # imported already: skip the path search
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a missing parent package; a blocked or odd module
        return False


def modules_missing(name: str) -> list[str]:
    """Those of row ``name``'s :data:`DRIVER_MODULES` that cannot be found (none is imported):
    what ``missing`` explains, and the plugin checks before SQLAlchemy imports the driver."""
    return [module for module in DRIVER_MODULES.get(name, ()) if not _installed(module)]


def driver_installed(url: URL, is_async: bool = False) -> bool:
    """Whether ``create_engine(url)`` will find its dialect and every module of its row (the
    plugin's check before SQLAlchemy imports the driver; ``missing`` says what is wrong)."""
    from sqlalchemy.exc import NoSuchModuleError

    try:
        spec = url_driver(url, is_async)
    except NoSuchModuleError:
        return False
    return spec is None or not modules_missing(spec.name)


def __getattr__(name: str) -> Any:
    """Names re-exported from a family module, loaded when first asked for."""
    homes = {"connect_aiomysql_requiring_tls": "aiomysql", "LIBPQ_PLAINTEXT_MODES": "postgresql"}
    if name in homes:
        return getattr(__import__(f"{__name__}.{homes[name]}", fromlist=[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
