"""Driver facts: how each DBAPI takes the token, TLS and MySQL cleartext auth, in one table.

Each SQLAlchemy dialect forwards URL query parameters differently (``create_connect_args``)
and each driver spells TLS its own way (libpq keywords, an ``SSLContext``, an ``ssl`` dict,
``ssl_ca``...). The plugin only looks rows up here; supporting a driver means adding a row,
not a branch.

A row's ``prepare(cparams, ca_bundle, mode)`` fills TLS defaults (and any switch the driver
needs) without overriding what the user set; ``insecure(cparams)`` then says why the final
arguments could send the token unencrypted, or returns ``None``. Both run on the same
``cparams`` dict for every connection, so they are idempotent, and they never mutate a
nested value (an ``ssl`` dict may be the user's ``connect_args`` object): they assign new ones.

URL query values arrive as strings, so ``ssl_disabled=false`` is the non-empty string
``"false"``: PyMySQL and mysql-connector treat it as *true*. Rather than guess, such
spellings are refused with a message that says so.

No driver is imported here at module level: a row's functions import their driver when
they first run, which is after SQLAlchemy has already imported it for the dialect.
"""

from __future__ import annotations

import functools
import os
import ssl
import tempfile
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigurationError, UnsupportedDriverError
from .tls import ssl_context

__all__ = ["DRIVERS", "DriverSpec", "driver_for"]

CParams = MutableMapping[str, Any]
Prepare = Callable[[CParams, str, str], None]
Check = Callable[[Mapping[str, Any]], "str | None"]

_TRUE_WORDS = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE_WORDS = frozenset({"", "0", "false", "f", "no", "n", "off"})


def _as_bool(value: object) -> bool | None:
    """A boolean or a URL's spelling of one, as a bool; ``None`` for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    return None


def _context_from_ssl_dict(
    ssl_dict: Mapping[str, Any], ca_bundle: str, mode: str
) -> ssl.SSLContext:
    """The cached context equivalent to a PyMySQL-style ``ssl={...}`` dict.

    SQLAlchemy's MySQL dialects collect URL ``ssl_ca=``/``ssl_check_hostname=``... into
    such a dict; aiomysql cannot use it at all, asyncmy would rebuild a context per connect.
    """
    known = {"ca", "capath", "cert", "key", "cipher", "check_hostname", "verify_mode"}
    unknown = sorted(set(ssl_dict) - known)
    if unknown:
        raise ConfigurationError(
            f"ssl option(s) {', '.join(unknown)} are not supported here; "
            "pass an ssl.SSLContext as connect_args={'ssl': context} instead"
        )
    if _as_bool(ssl_dict.get("verify_mode", True)) is False:
        raise ConfigurationError(
            "ssl verify_mode=false would accept any server certificate for an IAM token; "
            "remove it (iam_tls=verify-ca skips only the hostname check)"
        )
    check_hostname = _as_bool(ssl_dict.get("check_hostname", mode == "verify-full"))
    has_roots = bool(ssl_dict.get("ca") or ssl_dict.get("capath"))
    try:
        return ssl_context(
            ssl_dict.get("ca") if has_roots else ca_bundle,
            "verify-ca" if check_hostname is False else "verify-full",
            capath=ssl_dict.get("capath"),
            certfile=ssl_dict.get("cert"),
            keyfile=ssl_dict.get("key"),
            ciphers=ssl_dict.get("cipher"),
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"cannot build a TLS context from the ssl options {sorted(ssl_dict)}: {exc}"
        ) from exc


def _ssl_dict_with_ca(ssl_dict: Mapping[str, Any], ca_bundle: str) -> dict[str, Any]:
    """A new dict with our CA added unless the user named their own roots."""
    merged = dict(ssl_dict)
    if not (merged.get("ca") or merged.get("capath")):
        merged["ca"] = ca_bundle
    return merged


def _false_ssl(cparams: Mapping[str, Any], key: str = "ssl") -> str | None:
    """``ssl=False`` (or ``"false"``, ``"0"``...) is an explicit request for plain text."""
    if key in cparams and cparams[key] is not None and _as_bool(cparams[key]) is False:
        return f"{key}={cparams[key]!r} turns TLS off"
    return None


# -- PostgreSQL: libpq keywords (psycopg2, psycopg 3) ------------------------------------

_LIBPQ_INSECURE = frozenset({"disable", "allow", "prefer"})


def _libpq_prepare(cparams: CParams, ca_bundle: str, mode: str) -> None:
    """``sslmode`` + ``sslrootcert``; always set so PGSSLMODE or a service file cannot weaken it."""
    cparams.setdefault("sslmode", mode)
    cparams.setdefault("sslrootcert", ca_bundle)


def _libpq_insecure(cparams: Mapping[str, Any]) -> str | None:
    mode = str(cparams.get("sslmode", "")).strip().lower()
    if mode in _LIBPQ_INSECURE or not mode:
        return f"sslmode={mode or '(none)'} may connect without TLS"
    return None


# -- pg8000: ssl_context ------------------------------------------------------------------


def _pg8000_prepare(cparams: CParams, ca_bundle: str, mode: str) -> None:
    """pg8000's default (``None``) tries TLS unverified and falls back to plain text.

    A true value (``True`` or the URL's ``"true"``, which pg8000 cannot use) means "use
    TLS": it gets the verified context too.
    """
    value = cparams.get("ssl_context")
    if value is None or _as_bool(value) is True:
        cparams["ssl_context"] = ssl_context(ca_bundle, mode)


def _pg8000_insecure(cparams: Mapping[str, Any]) -> str | None:
    if cparams.get("ssl_context") is None:
        return "pg8000 without ssl_context falls back to plain text"
    return _false_ssl(cparams, "ssl_context")


# -- asyncpg: ssl= (an SSLContext, a bool or an sslmode word) ------------------------------


def _asyncpg_prepare(cparams: CParams, ca_bundle: str, mode: str) -> None:
    """An ``SSLContext`` makes asyncpg's TLS mandatory; ``None`` means ``prefer``.

    ``ssl=verify-full``/``verify-ca`` would make asyncpg look for ``~/.postgresql/root.crt``;
    they get the context for that mode with our CA instead. ``True`` gets the verified one.
    """
    value = cparams.get("ssl")
    if value is None or _as_bool(value) is True:
        cparams["ssl"] = ssl_context(ca_bundle, mode)
    elif isinstance(value, str) and value.strip().lower() in ("verify-full", "verify-ca"):
        cparams["ssl"] = ssl_context(ca_bundle, value.strip().lower())


def _asyncpg_insecure(cparams: Mapping[str, Any]) -> str | None:
    for key in ("ssl", "sslmode"):  # asyncpg has no sslmode= keyword, but libpq users write it
        value = cparams.get(key)
        if isinstance(value, str) and value.strip().lower() in _LIBPQ_INSECURE:
            return f"{key}={value} may connect without TLS"
    if cparams.get("ssl") is None:
        return "asyncpg without ssl= falls back to plain text"
    return _false_ssl(cparams)


# -- PyMySQL: ssl_* keywords or an ssl dict -----------------------------------------------


def _pymysql_prepare(cparams: CParams, ca_bundle: str, mode: str) -> None:
    """``ssl_ca`` + ``ssl_verify_*`` keywords, or the ``ssl`` dict built from URL ``ssl_*``.

    PyMySQL ignores an ``ssl`` dict as soon as any ``ssl_ca``/``ssl_verify_*`` keyword is
    given, so defaults go into whichever form the user already uses.
    """
    value = cparams.get("ssl")
    if isinstance(value, Mapping):
        merged = _ssl_dict_with_ca(value, ca_bundle)
        merged.setdefault("check_hostname", mode == "verify-full")
        merged.setdefault("verify_mode", True)
        cparams["ssl"] = merged
    elif isinstance(value, ssl.SSLContext):  # the user's context: theirs to configure
        return
    elif value is None or _as_bool(value) is True:
        cparams.pop("ssl", None)
        _verify_keywords(cparams, ca_bundle, mode)


def _verify_keywords(cparams: CParams, ca_bundle: str, mode: str) -> None:
    """``ssl_ca`` + ``ssl_verify_cert`` + ``ssl_verify_identity``: PyMySQL's and the connector's."""
    cparams.setdefault("ssl_ca", ca_bundle)
    cparams.setdefault("ssl_verify_cert", True)
    cparams.setdefault("ssl_verify_identity", mode == "verify-full")


def _ssl_disabled(cparams: Mapping[str, Any], driver: str) -> str | None:
    if cparams.get("ssl_disabled"):
        return (
            f"ssl_disabled={cparams['ssl_disabled']!r} turns TLS off ({driver} treats any "
            "non-empty string, even 'false', as true)"
        )
    return None


def _pymysql_insecure(cparams: Mapping[str, Any]) -> str | None:
    return _ssl_disabled(cparams, "PyMySQL") or _false_ssl(cparams)


# -- mysqlclient (MySQLdb): ssl dict + ssl_mode, libmysqlclient or MariaDB Connector/C -----

_MYSQL_SSL_MODES = {"verify-full": "VERIFY_IDENTITY", "verify-ca": "VERIFY_CA"}


def _oracle_client(client_info: str) -> bool:
    """Whether ``MySQLdb`` is built on Oracle's libmysqlclient (5.x, 8.x, 9.x).

    MariaDB Connector/C reports 3.x (10.x+ when bundled with the server) and offers
    ``mysql_clear_password`` whenever the server asks; libmysqlclient refuses it unless
    the client enables it.
    """
    head = client_info.split(".", 1)[0]
    return head.isdigit() and 5 <= int(head) < 10


@functools.lru_cache(maxsize=1)
def _cleartext_option_file() -> str:
    """An option file that enables ``mysql_clear_password`` for the connections that name it.

    Per connection (``read_default_file=``) rather than ``LIBMYSQL_ENABLE_CLEARTEXT_PLUGIN``,
    which is process-wide and only read when the library initialises.
    """
    fd, path = tempfile.mkstemp(prefix="sqlalchemy-rds-iam-", suffix=".cnf")
    with os.fdopen(fd, "w") as fh:
        fh.write("[client]\nenable-cleartext-plugin\n")
    return path


def _mysqldb_needs_cleartext_switch() -> bool:
    import MySQLdb._mysql

    return _oracle_client(str(MySQLdb._mysql.get_client_info()))


def _mysqldb_prepare(cparams: CParams, ca_bundle: str, mode: str) -> None:
    """``ssl={"ca": ...}`` plus ``ssl_mode``: without it, libmariadb falls back to plain text."""
    value = cparams.get("ssl")
    if isinstance(value, Mapping):
        cparams["ssl"] = _ssl_dict_with_ca(value, ca_bundle)
    elif value is None or _as_bool(value) is True:
        cparams["ssl"] = {"ca": ca_bundle}
    cparams.setdefault("ssl_mode", _MYSQL_SSL_MODES[mode])
    if "read_default_file" not in cparams and _mysqldb_needs_cleartext_switch():
        cparams["read_default_file"] = _cleartext_option_file()


def _mysqldb_insecure(cparams: Mapping[str, Any]) -> str | None:
    mode = str(cparams.get("ssl_mode", "")).strip().upper()
    if mode in ("", "DISABLED", "PREFERRED"):
        return f"ssl_mode={mode or '(none)'} may connect without TLS"
    return _false_ssl(cparams)


# -- mysql-connector-python: ssl_ca + ssl_verify_* keywords --------------------------------


def _connector_prepare(cparams: CParams, ca_bundle: str, mode: str) -> None:
    """Keywords only: it rejects ``ssl=`` and unknown arguments, and takes no ``SSLContext``."""
    _verify_keywords(cparams, ca_bundle, mode)


def _connector_insecure(cparams: Mapping[str, Any]) -> str | None:
    disabled = _ssl_disabled(cparams, "mysql-connector")
    if disabled:
        return disabled
    verify = cparams.get("ssl_verify_cert")
    if not verify or _as_bool(verify) is False:
        # Unverified, the connector silently continues in plain text if the server offers no TLS.
        return f"ssl_verify_cert={verify!r} lets the connection fall back to plain text"
    return None


# -- aiomysql: ssl=SSLContext, plus a connection class that refuses plain text ------------


def _aiomysql_prepare(cparams: CParams, ca_bundle: str, mode: str) -> None:
    """aiomysql takes only an ``SSLContext``, and skips TLS silently if the server lacks it.

    So the context is always ours (or the user's), and SQLAlchemy's ``async_creator_fn``
    hook connects through :func:`connect_aiomysql_requiring_tls`.
    """
    value = cparams.get("ssl")
    if isinstance(value, Mapping):
        cparams["ssl"] = _context_from_ssl_dict(value, ca_bundle, mode)
    elif value is None or _as_bool(value) is True:
        cparams["ssl"] = ssl_context(ca_bundle, mode)
    cparams.setdefault("async_creator_fn", connect_aiomysql_requiring_tls)


def _aiomysql_insecure(cparams: Mapping[str, Any]) -> str | None:
    if cparams.get("async_creator_fn") is not connect_aiomysql_requiring_tls:
        return (
            "async_creator_fn replaces the connect function that refuses a server without "
            "TLS (aiomysql itself would silently continue in plain text)"
        )
    if not isinstance(cparams.get("ssl"), ssl.SSLContext):
        return f"ssl={cparams.get('ssl')!r} is not an ssl.SSLContext, so aiomysql would not use TLS"
    return None


@functools.lru_cache(maxsize=1)
def _aiomysql_connection_class() -> type[Any]:
    """``aiomysql.Connection`` that raises before authenticating unless the socket is TLS."""
    import aiomysql
    from pymysql.constants import CLIENT, CR

    class TlsOnlyConnection(aiomysql.Connection):  # type: ignore[misc]
        async def _request_authentication(self) -> None:
            offered = bool(self.server_capabilities & CLIENT.SSL)
            if not (isinstance(self._ssl_context, ssl.SSLContext) and offered):
                raise aiomysql.OperationalError(
                    CR.CR_SSL_CONNECTION_ERROR,
                    "the server does not offer TLS; refusing to send the IAM token in plain text",
                )
            await super()._request_authentication()

        def escape(self, obj: Any) -> Any:
            # aiomysql 0.3.2 escapes bytes with PyMySQL's escape_bytes_prefixed, which PyMySQL
            # 1.2.1+ replaced by a string (every bytes parameter then fails); PyMySQL 1.1 is no
            # way out, it sends the token to a server that drops TLS. So: PyMySQL 1.2's own
            # rendering, a hex literal (nothing in it to escape).
            if isinstance(obj, (bytes, bytearray)):
                return f"_binary X'{bytes(obj).hex()}'"
            return super().escape(obj)

    return TlsOnlyConnection


async def connect_aiomysql_requiring_tls(**kwargs: Any) -> Any:
    """``aiomysql.connect`` with :func:`_aiomysql_connection_class`: TLS or no login at all."""
    connection = _aiomysql_connection_class()(**kwargs)
    await connection._connect()
    return connection


# -- asyncmy: ssl=SSLContext (or dict); TLS is mandatory once ssl is set --------------------


def _asyncmy_prepare(cparams: CParams, ca_bundle: str, mode: str) -> None:
    """A cached context: asyncmy would build one from a dict on every connect, on the loop."""
    value = cparams.get("ssl")
    if isinstance(value, Mapping):
        cparams["ssl"] = _context_from_ssl_dict(value, ca_bundle, mode)
    elif value is None or _as_bool(value) is True:
        cparams["ssl"] = ssl_context(ca_bundle, mode)


def _asyncmy_insecure(cparams: Mapping[str, Any]) -> str | None:
    if not cparams.get("ssl"):
        return "asyncmy without ssl= does not use TLS"
    return _false_ssl(cparams)


# -- the table ------------------------------------------------------------------------------


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
    insecure: Check
    fixed: Mapping[str, Any] = field(default_factory=dict)
    """Arguments always set with ``setdefault`` (e.g. a cleartext-auth switch)."""

    @property
    def url_prefix(self) -> str:
        return f"{self.family}+{self.name}"


_PORTS = {"postgresql": 5432, "mysql": 3306}


def _row(
    url_name: str, family: str, *, driver: str | None = None, is_async: bool = False,
    into: str = "password", extra: str, prepare: Prepare, insecure: Check,
    fixed: Mapping[str, Any] | None = None,
) -> DriverSpec:
    return DriverSpec(
        name=url_name, driver=driver or url_name, family=family, is_async=is_async,
        default_port=_PORTS[family], password_key=into, extra=extra,
        prepare=prepare, insecure=insecure, fixed=dict(fixed or {}),
    )


DRIVERS: Mapping[str, DriverSpec] = {
    spec.name: spec
    for spec in (
        _row("psycopg2", "postgresql", extra="postgresql",
             prepare=_libpq_prepare, insecure=_libpq_insecure),
        _row("psycopg", "postgresql", extra="psycopg",
             prepare=_libpq_prepare, insecure=_libpq_insecure),
        _row("psycopg_async", "postgresql", driver="psycopg", is_async=True, extra="psycopg",
             prepare=_libpq_prepare, insecure=_libpq_insecure),
        _row("pg8000", "postgresql", extra="pg8000",
             prepare=_pg8000_prepare, insecure=_pg8000_insecure),
        _row("asyncpg", "postgresql", is_async=True, extra="asyncpg",
             prepare=_asyncpg_prepare, insecure=_asyncpg_insecure),
        _row("pymysql", "mysql", extra="mysql",
             prepare=_pymysql_prepare, insecure=_pymysql_insecure),
        # MySQLdb: ``passwd`` overrides ``password`` when both are given, so it is the one to set.
        _row("mysqldb", "mysql", into="passwd", extra="mysqlclient",
             prepare=_mysqldb_prepare, insecure=_mysqldb_insecure),
        _row("mysqlconnector", "mysql", extra="mysql-connector",
             prepare=_connector_prepare, insecure=_connector_insecure,
             fixed={"auth_plugin": "mysql_clear_password"}),
        _row("aiomysql", "mysql", is_async=True, extra="aiomysql",
             prepare=_aiomysql_prepare, insecure=_aiomysql_insecure),
        _row("asyncmy", "mysql", is_async=True, extra="asyncmy",
             prepare=_asyncmy_prepare, insecure=_asyncmy_insecure),
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
