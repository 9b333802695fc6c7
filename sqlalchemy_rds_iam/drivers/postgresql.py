"""The PostgreSQL rows' parts: libpq keywords (psycopg2, psycopg 3), pg8000's
``ssl_context`` and asyncpg's ``ssl=``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import InsecureConnectionError
from ..tls import ssl_context
from ..transport import Transport, refuse
from .rules import (
    _ASYNC_CREATOR,
    _MOVES,
    _OTHER_AUTH,
    _PLACED,
    _SECOND_PASSWORD,
    _SOCKET,
    CHECKED,
    HARMLESS,
    OURS,
    Check,
    CParams,
    Prepare,
    _absent,
    _from_context,
    _keywords,
    _one_of,
    _roots,
    _scrub_attrs,
    _subclass_of,
    _tcp_host,
    _text_only,
    _v,
    _wants_default,
)

# -- PostgreSQL: libpq keywords (psycopg2, psycopg 3) ------------------------------------------

_LIBPQ_MODES = {"verify-full": True, "verify-ca": False}
#: ``sslmode`` words with which libpq may send the password without TLS (the CLI refuses them).
LIBPQ_PLAINTEXT_MODES = frozenset({"disable", "allow", "prefer"})


def _libpq_prepare_with(libpq_version: Callable[[], int]) -> Prepare:
    """The libpq rows' ``prepare``, for a driver whose libpq reports this version."""

    def prepare(cparams: CParams, ca_bundle: str, mode: str) -> None:
        """``sslmode`` + ``sslrootcert`` + ``gssencmode=disable``, always explicit.

        Set so PGSSLMODE or a service file (``PGSERVICE``) cannot weaken them: libpq takes
        a service file's value only for a keyword not given. ``gssencmode``: libpq uses
        GSSAPI encryption *instead of* TLS whenever a Kerberos ticket allows it, whatever
        ``sslmode`` says. ``hostaddr=''``: else ``PGHOSTADDR`` (or a service file) makes
        libpq dial that address, not the host. ``sslkeylogfile=''`` (libpq 18+): else a
        service file can make libpq write the TLS secrets to a file.
        """
        cparams.setdefault("sslmode", mode)
        cparams.setdefault("sslrootcert", ca_bundle)
        cparams.setdefault("gssencmode", "disable")
        cparams.setdefault("hostaddr", "")
        if "sslkeylogfile" not in cparams and libpq_version() >= 180000:
            cparams["sslkeylogfile"] = ""

    return prepare


@functools.lru_cache(maxsize=1)
def _psycopg2_libpq() -> int:
    """psycopg2's libpq version; 0 without psycopg2 (the CLI checks URLs without drivers)."""
    try:
        import psycopg2.extensions
    except ImportError:
        return 0
    return int(psycopg2.extensions.libpq_version())


@functools.lru_cache(maxsize=1)
def _psycopg_libpq() -> int:
    """psycopg's libpq version; 0 without psycopg."""
    try:
        import psycopg
    except ImportError:
        return 0
    return int(psycopg.pq.version())


def _empty_only(why: str, fix: str) -> Check:
    """A value check: only ``''`` (the "not given" the plugin sets), else refused."""

    def check(key: str, value: Any) -> None:
        if value is None or value == "":
            return
        raise InsecureConnectionError(
            f"refusing to send an IAM token: {key}={_v(value)} {why}; {fix}")

    return check


def _libpq_classify(cargs: Sequence[Any], cparams: Mapping[str, Any]) -> Transport:
    mode = cparams.get("sslmode")
    if mode not in _LIBPQ_MODES:
        why = ("may connect without TLS" if mode in LIBPQ_PLAINTEXT_MODES
               else "does not verify the certificate (libpq checks nothing unless a root "
               "file is found)" if mode == "require" else "is not one libpq verifies with")
        refuse(f"sslmode={_v(mode)}", why,
                "remove it (the plugin sets verify-full) or write sslmode=verify-ca")
    _absent(cparams, "requiressl", "is obsolete and overrides sslmode in old libpq")
    gss = cparams.get("gssencmode")
    if gss != "disable":
        refuse(f"gssencmode={_v(gss)}", "lets GSSAPI encryption replace TLS, so the server "
                "is not checked against the CA", "remove it (the plugin sets disable)")
    negotiation = cparams.get("sslnegotiation", "postgres")
    if negotiation not in ("postgres", "direct"):
        refuse(f"sslnegotiation={_v(negotiation)}", "is not a known value",
                "use postgres or direct")
    root = cparams.get("sslrootcert")
    if root == "system" and mode == "verify-full":  # libpq 16+: the OS store, verify-full only
        roots = "system"
    else:
        roots = _roots("sslrootcert", root)
    if cparams.get("hostaddr") is None or "host" in cparams:
        _tcp_host(cparams)
    checked = _LIBPQ_MODES[mode]
    return Transport(True, roots, checked, True, None if checked else "sslmode=verify-ca")


#: libpq's connection keywords (libpq 17/18 "Parameter Key Words"), as psycopg2 and psycopg
#: pass them on; plus each driver's own ``connect()`` arguments (psycopg2 2.9
#: ``connect(dsn, connection_factory, cursor_factory, **kwargs)``; psycopg 3.3
#: ``Connection.connect(conninfo, *, autocommit, prepare_threshold, context, row_factory,
#: cursor_factory, **kwargs)``) and what SQLAlchemy adds (``context``, ``client_encoding``).
_LIBPQ_KEYWORDS = {
    **_PLACED, "password": OURS,
    **dict.fromkeys(("sslmode", "sslrootcert", "gssencmode", "sslnegotiation"), CHECKED),
    **dict.fromkeys((
        "dbname", "connect_timeout", "client_encoding", "application_name",
        "fallback_application_name", "keepalives", "keepalives_idle", "keepalives_interval",
        "keepalives_count", "tcp_user_timeout", "target_session_attrs", "load_balance_hosts",
        "replication", "sslcert", "sslkey", "sslpassword", "sslcertmode", "sslcrl", "sslcrldir",
        "krbsrvname", "gsslib", "require_auth", "channel_binding", "min_protocol_version",
        "max_protocol_version",
    ), HARMLESS),
    "options": _text_only,  # server settings (-c name=value), sent after TLS
    "ssl_min_protocol_version": _one_of("TLSv1.2", "TLSv1.3"),
    "ssl_max_protocol_version": _one_of("TLSv1.2", "TLSv1.3"),
    "sslcompression": _one_of(0),
    "gssdelegation": _one_of(0),
    "requiressl": ("is obsolete and overrides sslmode in old libpq",
                   "remove it (the plugin sets sslmode=verify-full)"),
    "hostaddr": _empty_only(
        "makes libpq dial this address instead of the host the IAM token is signed for",
        "put the address in the URL as the host (user@ADDRESS:PORT/db) and add "
        "iam_host=<the name the token and certificate are for>"),
    "service": ("makes libpq read host, port and TLS settings from a service file this check "
                "cannot see", "give the settings in the URL or connect_args"),
    "servicefile": ("names a service file this check cannot see",
                    "give the settings in the URL or connect_args"),
    "passfile": _SECOND_PASSWORD,
    "sslkeylogfile": _empty_only("writes the TLS session secrets to a file, from which anyone "
                                 "who can read it decrypts the token off a capture",
                                 "remove it"),
    "sslsni": ("changes the TLS handshake (RDS Proxy routes by the SNI name)", "remove it"),
    "requirepeer": ("applies to Unix sockets only, which IAM logins never use", "remove it"),
    "dsn": _MOVES, "conninfo": _MOVES,
    **dict.fromkeys(("oauth_issuer", "oauth_client_id", "oauth_client_secret", "oauth_scope",
                     "scram_client_key", "scram_server_key"), _OTHER_AUTH),
    **_ASYNC_CREATOR,
}
_PSYCOPG2_KEYWORDS = _keywords("psycopg2", _LIBPQ_KEYWORDS, {
    "connection_factory": _subclass_of("psycopg2.extensions", "connection"),
    "cursor_factory": HARMLESS, "async": HARMLESS, "async_": HARMLESS,
})
_PSYCOPG_KEYWORDS = _keywords("psycopg", _LIBPQ_KEYWORDS, dict.fromkeys(
    ("autocommit", "prepare_threshold", "context", "row_factory", "cursor_factory"), HARMLESS))


# -- pg8000: ssl_context -----------------------------------------------------------------------

def _pg8000_prepare(cparams: CParams, ca_bundle: str, mode: str) -> None:
    """pg8000's default (``None``) tries TLS unverified and falls back to plain text.

    A true value (``True`` or the URL's ``"true"``, which pg8000 cannot use) means "use
    TLS": it gets the verified context too.
    """
    if _wants_default(cparams.get("ssl_context")):
        cparams["ssl_context"] = ssl_context(ca_bundle, mode)


def _pg8000_classify(cargs: Sequence[Any], cparams: Mapping[str, Any]) -> Transport:
    _absent(cparams, "unix_sock", "is a Unix socket (RDS is only reached over TCP)")
    _absent(cparams, "sock", "is a socket opened elsewhere, whose TLS cannot be checked")
    _tcp_host(cparams)
    return _from_context("ssl_context", cparams.get("ssl_context"))


#: pg8000 1.31 ``connect(user, host, database, port, password, source_address, unix_sock,
#: ssl_context, timeout, tcp_keepalive, application_name, replication, startup_params, sock)``.
_PG8000_KEYWORDS = _keywords("pg8000", _PLACED, {
    "password": OURS, "ssl_context": CHECKED, "unix_sock": _SOCKET,
    "sock": ("is a socket opened elsewhere, whose TLS cannot be checked", "remove it"),
    **dict.fromkeys(("database", "source_address", "timeout", "tcp_keepalive",
                     "application_name", "replication", "startup_params"), HARMLESS),
})


# -- asyncpg: ssl= (an SSLContext, a bool or an sslmode word) ----------------------------------

def _asyncpg_prepare(cparams: CParams, ca_bundle: str, mode: str) -> None:
    """An ``SSLContext`` makes asyncpg's TLS mandatory; ``None`` means ``prefer``.

    ``ssl=verify-full``/``verify-ca`` would make asyncpg look for ``~/.postgresql/root.crt``;
    they get the context for that mode with our CA instead. ``True`` gets the verified one.
    Every other word (``require``: TLS with no certificate check) is left for the check.
    """
    value = cparams.get("ssl")
    if _wants_default(value):
        cparams["ssl"] = ssl_context(ca_bundle, mode)
    elif value in ("verify-full", "verify-ca"):  # asyncpg's own spelling, exactly
        cparams["ssl"] = ssl_context(ca_bundle, value)


def _asyncpg_classify(cargs: Sequence[Any], cparams: Mapping[str, Any]) -> Transport:
    _absent(cparams, "sslmode", "is not an asyncpg argument (it takes ssl=)",
            "use ssl=verify-full / verify-ca, or omit it")
    _absent(cparams, "dsn", "can carry its own host and TLS settings",
            "give them as URL parts and query parameters instead")
    _tcp_host(cparams)
    value = cparams.get("ssl")
    if isinstance(value, str):
        refuse(f"ssl={_v(value)}", "does not verify the certificate in asyncpg (require: TLS "
                "without a check; disable/allow/prefer: maybe no TLS at all)",
                "remove it, or write ssl=verify-full / verify-ca")
    return _from_context("ssl", value)


#: asyncpg 0.32 ``connect(dsn, *, host, port, user, password, passfile, service, servicefile,
#: database, loop, timeout, statement_cache_size, max_cached_statement_lifetime,
#: max_cacheable_statement_size, command_timeout, ssl, direct_tls, connection_class,
#: record_class, server_settings, target_session_attrs, krbsrvname, gsslib)``, plus
#: SQLAlchemy's ``prepared_statement_cache_size`` and ``prepared_statement_name_func``.
_ASYNCPG_KEYWORDS = _keywords("asyncpg", _PLACED, {
    "password": OURS, "ssl": CHECKED,
    "direct_tls": HARMLESS,  # TLS from the first byte, with the same (checked) context
    "sslmode": ("is not an asyncpg argument (it takes ssl=)",
                "use ssl=verify-full / verify-ca, or omit it"),
    "dsn": _MOVES, "passfile": _SECOND_PASSWORD,
    "service": _LIBPQ_KEYWORDS["service"], "servicefile": _LIBPQ_KEYWORDS["servicefile"],
    "connection_class": _subclass_of("asyncpg.connection", "Connection"),
    **dict.fromkeys((
        "database", "loop", "timeout", "statement_cache_size", "max_cached_statement_lifetime",
        "max_cacheable_statement_size", "command_timeout", "record_class", "server_settings",
        "target_session_attrs", "krbsrvname", "gsslib", "prepared_statement_cache_size",
        "prepared_statement_name_func",
    ), HARMLESS),
    **_ASYNC_CREATOR,
})


def _scrub_asyncpg(connection: Any) -> None:
    """asyncpg keeps the password in its parameters tuple and on its protocol object.

    After the login neither is read again: a cancel request opens its own socket with the
    backend's key, not the password.
    """
    params = getattr(connection, "_params", None)
    if params is not None and getattr(params, "password", None) is not None:
        connection._params = params._replace(password=None)
    protocol: Any = getattr(connection, "_protocol", None)
    if isinstance(getattr(protocol, "password", None), str):
        try:
            protocol.password = None
        except AttributeError:  # a future read-only (Cython) attribute
            pass


#: The rows' parts, by URL driver name (``drivers._build`` adds the facts).
ROWS: Mapping[str, Mapping[str, Any]] = {
    "psycopg2": {"keywords": _PSYCOPG2_KEYWORDS, "classify": _libpq_classify,
                 "prepare": _libpq_prepare_with(_psycopg2_libpq)},
    "psycopg": {"keywords": _PSYCOPG_KEYWORDS, "classify": _libpq_classify,
                "prepare": _libpq_prepare_with(_psycopg_libpq)},
    "psycopg_async": {"keywords": _keywords("psycopg_async", _PSYCOPG_KEYWORDS.rules),
                      "classify": _libpq_classify,
                      "prepare": _libpq_prepare_with(_psycopg_libpq)},
    "pg8000": {"keywords": _PG8000_KEYWORDS, "prepare": _pg8000_prepare,
               "classify": _pg8000_classify, "scrub": _scrub_attrs("password")},
    "asyncpg": {"keywords": _ASYNCPG_KEYWORDS, "prepare": _asyncpg_prepare,
                "classify": _asyncpg_classify, "scrub": _scrub_asyncpg},
}
