"""mysql-connector-python's row parts: ``ssl_ca`` + ``ssl_verify_*`` keywords, and a
connection whose pure-Python TLS context is ours (no key log, verified roots)."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Mapping, Sequence
from typing import Any

from ..tls import ssl_context
from ..transport import Transport, refuse
from .rules import (
    _MOVE_FIX,
    _MOVES,
    _OTHER_AUTH,
    _PLACED,
    _SECOND_PASSWORD,
    _SOCKET,
    CHECKED,
    HARMLESS,
    OURS,
    CParams,
    _absent,
    _keywords,
    _one_of,
    _roots,
    _scrub_attrs,
    _strict_bool,
    _tcp_host,
    _v,
)
from .tlsargs import _ssl_disabled, _verify_keywords


def _connector_prepare(cparams: CParams, ca_bundle: str, mode: str) -> None:
    """Keywords only: it rejects ``ssl=`` and unknown arguments, and takes no ``SSLContext``.

    Its pure-Python TLS context would come from ``ssl.create_default_context`` (a key log
    under ``SSLKEYLOGFILE``): :func:`_connector_open` gives it ours instead.
    """
    _verify_keywords(cparams, ca_bundle, mode)


def _connector_open(dialect: Any, cargs: Sequence[Any], cparams: Mapping[str, Any]) -> Any:
    """``mysql.connector.connect`` for the checked arguments, with our TLS context.

    The C extension (``use_pure=False``, when it is installed and loads) does TLS in
    libmysqlclient, which writes no key log: it is used as mysql-connector would. Otherwise
    the pure-Python connection, whose socket takes the cached verifying context that
    :func:`_connector_classify` vouched for. (Pools, failover, DNS SRV and option files,
    which ``connect`` would handle first, are refused by the allow-list.)
    """
    import mysql.connector.pooling

    if not cparams.get("use_pure") and getattr(mysql.connector.pooling, "CMySQLConnection", None):
        return dialect.connect(*cargs, **cparams)
    kwargs = {key: value for key, value in cparams.items() if key != "use_pure"}
    return _connector_connection_class()(*cargs, **kwargs)


@functools.lru_cache(maxsize=1)
def _connector_connection_class() -> type[Any]:
    """``MySQLConnection`` whose TCP socket builds its TLS context with ``tls.ssl_context``."""
    from mysql.connector.connection import MySQLConnection
    from mysql.connector.errors import InterfaceError
    from mysql.connector.network import MySQLTCPSocket

    class KeylogFreeSocket(MySQLTCPSocket):
        def build_ssl_context(self, ssl_ca: str | None = None, ssl_cert: str | None = None,
                              ssl_key: str | None = None, ssl_verify_cert: bool | None = False,
                              ssl_verify_identity: bool | None = False,
                              tls_versions: Any = None,
                              tls_cipher_suites: Any = None) -> ssl.SSLContext:
            if not ssl_verify_cert or tls_versions or tls_cipher_suites:  # refused earlier
                raise InterfaceError("sqlalchemy-rds-iam: unverified TLS options")
            return ssl_context(ssl_ca, "verify-full" if ssl_verify_identity else "verify-ca",
                               certfile=ssl_cert, keyfile=ssl_key)

    class KeylogFreeConnection(MySQLConnection):
        def _get_connection(self) -> Any:
            sock = super()._get_connection()
            if type(sock) is MySQLTCPSocket:
                sock.__class__ = KeylogFreeSocket
            return sock

    return KeylogFreeConnection


def _connector_classify(cargs: Sequence[Any], cparams: Mapping[str, Any]) -> Transport:
    _ssl_disabled(cparams)
    _absent(cparams, "unix_socket", "is a Unix socket (RDS is only reached over TCP)")
    for key in ("option_files", "read_default_file"):
        _absent(cparams, key, "can change TLS after this check",
                "give the settings in the URL or connect_args")
    _tcp_host(cparams)
    if not _strict_bool(cparams, "ssl_verify_cert", False):
        refuse(f"ssl_verify_cert={_v(cparams.get('ssl_verify_cert'))}", "leaves the "
                "certificate unverified (and the connector then falls back to plain text)",
                "remove it")
    identity = _strict_bool(cparams, "ssl_verify_identity", False)
    roots = _roots("ssl_ca", cparams.get("ssl_ca"))
    return Transport(True, roots, identity, True,
                     None if identity else "ssl_verify_identity=False")


#: mysql-connector-python 9.x/26.x ``constants.DEFAULT_CONFIGURATION`` and ``CNX_POOL_ARGS``,
#: plus ``connect()``'s own (failover, option_files, option_groups, dns_srv, use_pure); the
#: SQLAlchemy dialect adds ``buffered`` and ``client_flags``.
_CONNECTOR_KEYWORDS = _keywords("mysqlconnector", _PLACED, {
    "password": OURS, "auth_plugin": _one_of("mysql_clear_password"),
    **dict.fromkeys(("ssl_ca", "ssl_cert", "ssl_key", "ssl_verify_cert", "ssl_verify_identity",
                     "ssl_disabled"), CHECKED),
    **dict.fromkeys((
        "database", "db", "use_unicode", "charset", "collation", "converter_class",
        "converter_str_fallback", "autocommit", "time_zone", "sql_mode", "get_warnings",
        "raise_on_warnings", "connection_timeout", "connect_timeout", "read_timeout",
        "write_timeout", "client_flags", "client_flag", "compress", "buffered", "raw",
        "consume_results", "allow_local_infile", "allow_local_infile_in_path", "init_command",
        "conn_attrs", "force_ipv6", "ssl_cipher", "use_pure",
    ), HARMLESS),
    "unix_socket": _SOCKET,
    "tls_versions": ("is applied by mysql-connector's own TLS context, which the plugin "
                     "replaces by a verifying one (TLS 1.2 or 1.3) that logs no keys",
                     "remove it"),
    "tls_ciphersuites": ("is applied by mysql-connector's own TLS context, which the plugin "
                         "replaces", "remove it"),
    **dict.fromkeys(("option_files", "option_groups", "read_default_file"), (
        "can change TLS after this check", "give the settings in the URL or connect_args")),
    "dsn": _MOVES,
    "failover": ("lists other servers to connect to", _MOVE_FIX),
    "dns_srv": ("looks the servers up in DNS SRV records", _MOVE_FIX),
    **dict.fromkeys(("pool_name", "pool_size", "pool_reset_session"), (
        "makes mysql-connector keep a pool of its own, whose connections keep the first "
        "connection's settings", "remove it (SQLAlchemy pools the connections)")),
    **dict.fromkeys(("passwd", "password1", "password2", "password3"), _SECOND_PASSWORD),
    **dict.fromkeys(("krb_service_principal", "oci_config_file", "oci_config_profile",
                     "webauthn_callback", "fido_callback", "kerberos_auth_mode",
                     "openid_token_file"), _OTHER_AUTH),
})


def _scrub_connector(connection: Any) -> None:
    """mysql-connector keeps the password on the connection and on its auth strategy."""
    _scrub_attrs("_password", "_password1", "_password2", "_password3")(connection)
    strategy = getattr(getattr(connection, "_authenticator", None), "_auth_strategy", None)
    if strategy is not None:
        _scrub_attrs("_password")(strategy)


#: The row's parts (``drivers._build`` adds the facts).
ROWS: Mapping[str, Mapping[str, Any]] = {
    "mysqlconnector": {"keywords": _CONNECTOR_KEYWORDS, "prepare": _connector_prepare,
                       "classify": _connector_classify, "scrub": _scrub_connector,
                       "connect": _connector_open,
                       "fixed": {"auth_plugin": "mysql_clear_password"}},
}
