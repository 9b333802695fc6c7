"""The MySQL rows' parts: PyMySQL, mysqlclient (MySQLdb), mysql-connector-python and asyncmy,
and the keywords SQLAlchemy's MySQL dialects give every MySQL driver."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Mapping, Sequence
from typing import Any

from ..tls import ssl_context
from ..transport import Transport, refuse
from .rules import (
    _ASYNC_CREATOR,
    _AUTH_PLUGIN_MAP,
    _DEFAULT_FIX,
    _MOVE_FIX,
    _MOVES,
    _MYSQL_COMMON,
    _OTHER_AUTH,
    _PLACED,
    _PYMYSQL_FAMILY,
    _SECOND_PASSWORD,
    _SOCKET,
    CHECKED,
    HARMLESS,
    OURS,
    CParams,
    _absent,
    _false_only,
    _from_context,
    _keywords,
    _one_of,
    _roots,
    _scrub_attrs,
    _strict_bool,
    _tcp_host,
    _v,
    _wants_default,
)
from .tlsargs import (
    _cleartext_option_file,
    _context_from_ssl_dict,
    _option_file,
    _ssl_dict_roots,
    _ssl_dict_with_ca,
    _ssl_disabled,
    _verify_dict,
    _verify_keywords,
)

# -- PyMySQL: ssl_* keywords or an ssl dict ----------------------------------------------------

_PYMYSQL_TLS_KEYWORDS = ("ssl_ca", "ssl_cert", "ssl_key", "ssl_verify_cert", "ssl_verify_identity")


def _pymysql_prepare(cparams: CParams, ca_bundle: str, mode: str) -> None:
    """An ``SSLContext`` of ours, whatever form the user's TLS settings take.

    PyMySQL would build its own from ``ssl_ca``/``ssl_verify_*`` keywords or an ``ssl``
    dict with ``ssl.create_default_context``, which logs every TLS secret to the file named
    by ``SSLKEYLOGFILE``. So the keywords (which PyMySQL prefers over a dict: both at once
    are refused) or the dict become the equivalent cached context here; a dict with a key
    ``password`` (an encrypted client key) stays PyMySQL's.
    """
    value = cparams.get("ssl")
    present = [key for key in _PYMYSQL_TLS_KEYWORDS if key in cparams]
    if present:
        if value is not None:
            refuse(f"ssl={{...}} together with {', '.join(present)}", "makes PyMySQL drop the "
                    "ssl options (URL ssl_* go into ssl={...}) and build its own, unverified",
                    "give every TLS setting the same way: all in the URL or all in connect_args")
        cparams["ssl"] = _context_from_ssl_dict(_pymysql_keywords_as_dict(cparams, mode),
                                                ca_bundle, mode)
        for key in present:
            del cparams[key]
    elif isinstance(value, Mapping):
        merged = _ssl_dict_with_ca(value, ca_bundle)
        merged.setdefault("check_hostname", mode == "verify-full")
        merged.setdefault("verify_mode", True)
        cparams["ssl"] = merged if "password" in merged else _context_from_ssl_dict(
            _verify_dict_as_context_options(merged), ca_bundle, mode)
    elif isinstance(value, ssl.SSLContext):  # the user's context (or ours): checked as it is
        return
    elif _wants_default(value):
        cparams["ssl"] = ssl_context(ca_bundle, mode)


def _pymysql_keywords_as_dict(cparams: Mapping[str, Any], mode: str) -> dict[str, Any]:
    """PyMySQL's ``ssl_*`` keywords as the ``ssl`` dict it would build; refuses a "no"."""
    verify = cparams.get("ssl_verify_cert", True)
    if verify is not True:
        # Even where ssl_verify_identity=True would override it (PyMySQL 1.2), a "no" here
        # is refused: PyMySQL 1.1 reads the same arguments differently.
        refuse(f"ssl_verify_cert={_v(verify)}", "leaves the certificate unverified (PyMySQL "
                "reads the string 'false' as a mode it does not know)",
                "remove it, or pass ssl_verify_cert=True in connect_args")
    # None (a value PyMySQL reads as "no name check") is refused: a real bool or nothing.
    identity = _strict_bool(cparams, "ssl_verify_identity", mode == "verify-full")
    built: dict[str, Any] = {"check_hostname": identity, "verify_mode": True}
    if cparams.get("ssl_ca") is not None:
        built["ca"] = _roots("ssl_ca", cparams.get("ssl_ca"))
    for key in ("cert", "key"):
        if cparams.get(f"ssl_{key}") is not None:
            built[key] = cparams[f"ssl_{key}"]
    return built


def _verify_dict_as_context_options(ssl_dict: Mapping[str, Any]) -> dict[str, Any]:
    """A PyMySQL ``ssl`` dict checked the way PyMySQL reads it, for ``_context_from_ssl_dict``."""
    transport = _verify_dict(ssl_dict)  # refuses what PyMySQL would not verify
    options = {k: v for k, v in ssl_dict.items() if k not in ("verify_mode", "check_hostname")}
    options["check_hostname"] = transport.hostname_checked
    return options


def _pymysql_effective_ssl(cparams: Mapping[str, Any]) -> object:
    """The ``ssl`` PyMySQL will use, following its own precedence (keywords over the dict)."""
    keywords = [k for k in _PYMYSQL_TLS_KEYWORDS if cparams.get(k)]
    if not keywords:
        return cparams.get("ssl")
    if cparams.get("ssl") is not None:
        refuse(f"ssl={{...}} together with {', '.join(keywords)}", "makes PyMySQL drop the "
                "ssl options (URL ssl_* go into ssl={...}) and build its own, unverified",
                "give every TLS setting the same way: all in the URL or all in connect_args")
    # None (a setdefault that kept the user's None) would be PyMySQL's "no name check".
    identity = _strict_bool(cparams, "ssl_verify_identity", False)
    verify = cparams.get("ssl_verify_cert")
    if verify is not True:
        # Even where ssl_verify_identity=True would override it (PyMySQL 1.2), a "no" here
        # is refused: PyMySQL 1.1 reads the same arguments differently.
        refuse(f"ssl_verify_cert={_v(verify)}", "leaves the certificate unverified (PyMySQL "
                "reads the string 'false' as a mode it does not know)",
                "remove it, or pass ssl_verify_cert=True in connect_args")
    built: dict[str, Any] = {"ca": cparams.get("ssl_ca"), "check_hostname": identity,
                             "verify_mode": True}
    for key in ("cert", "key"):
        if cparams.get(f"ssl_{key}") is not None:
            built[key] = cparams[f"ssl_{key}"]
    return built


def _pymysql_classify(cargs: Sequence[Any], cparams: Mapping[str, Any]) -> Transport:
    _ssl_disabled(cparams)
    _absent(cparams, "unix_socket", "is a Unix socket (RDS is only reached over TCP)")
    _tcp_host(cparams)
    _option_file(cparams, ["client"] if cparams.get("read_default_group") is None else [])
    effective = _pymysql_effective_ssl(cparams)
    if isinstance(effective, ssl.SSLContext):
        return _from_context("ssl", effective)
    if isinstance(effective, Mapping) and effective:
        return _verify_dict(effective)
    refuse(f"ssl={_v(effective)}", "is not TLS options PyMySQL would verify with (it would "
            "fall back to its unverified 'preferred' mode)", _DEFAULT_FIX)


#: PyMySQL 1.2 ``Connection(*, user, password, host, database, unix_socket, port, charset,
#: collation, sql_mode, read_default_file, conv, use_unicode, client_flag, cursorclass,
#: init_command, connect_timeout, read_default_group, autocommit, local_infile,
#: max_allowed_packet, defer_connect, auth_plugin_map, read_timeout, write_timeout,
#: bind_address, binary_prefix, program_name, server_public_key, ssl, ssl_ca, ssl_cert,
#: ssl_disabled, ssl_key, ssl_key_password, ssl_verify_cert, ssl_verify_identity, compress,
#: named_pipe, passwd, db)``.
_PYMYSQL_KEYWORDS = _keywords("pymysql", _MYSQL_COMMON, _PYMYSQL_FAMILY, {
    **dict.fromkeys(("ssl_ca", "ssl_cert", "ssl_key", "ssl_verify_cert", "ssl_verify_identity",
                     "ssl_disabled"), CHECKED),
    **dict.fromkeys(("database", "collation", "cursorclass", "max_allowed_packet", "read_timeout",
                     "write_timeout", "bind_address", "binary_prefix", "ssl_key_password",
                     "compress"), HARMLESS),
    "defer_connect": _false_only, "named_pipe": _SOCKET, "passwd": _SECOND_PASSWORD,
    "auth_plugin_map": _AUTH_PLUGIN_MAP,
})


# -- mysqlclient (MySQLdb): ssl dict + ssl_mode, libmysqlclient or MariaDB Connector/C ---------

_MYSQL_SSL_MODES = {"verify-full": "VERIFY_IDENTITY", "verify-ca": "VERIFY_CA"}
#: Groups MariaDB Connector/C and libmysqlclient read from an option file.
_MYSQL_CLIENT_GROUPS = ("client", "client-server", "client-mariadb", "mariadb-client")


def _oracle_client(client_info: str) -> bool:
    """Whether ``MySQLdb`` is built on Oracle's libmysqlclient (5.x, 8.x, 9.x).

    MariaDB Connector/C reports 3.x (10.x+ when bundled with the server) and offers
    ``mysql_clear_password`` whenever the server asks; libmysqlclient refuses it unless
    the client enables it.
    """
    head = client_info.split(".", 1)[0]
    return head.isdigit() and 5 <= int(head) < 10


def _mysqldb_needs_cleartext_switch() -> bool:
    import MySQLdb._mysql

    return _oracle_client(str(MySQLdb._mysql.get_client_info()))


def _mysqldb_prepare(cparams: CParams, ca_bundle: str, mode: str) -> None:
    """``ssl={"ca": ...}`` plus ``ssl_mode``: without it, libmariadb falls back to plain text."""
    value = cparams.get("ssl")
    if isinstance(value, Mapping):
        cparams["ssl"] = _ssl_dict_with_ca(value, ca_bundle)
    elif _wants_default(value):
        cparams["ssl"] = {"ca": ca_bundle}
    cparams.setdefault("ssl_mode", _MYSQL_SSL_MODES[mode])
    if "read_default_file" not in cparams and _mysqldb_needs_cleartext_switch():
        cparams["read_default_file"] = _cleartext_option_file()


def _mysqldb_classify(cargs: Sequence[Any], cparams: Mapping[str, Any]) -> Transport:
    mode = cparams.get("ssl_mode")
    if mode not in ("VERIFY_IDENTITY", "VERIFY_CA"):
        refuse(f"ssl_mode={_v(mode)}", "does not verify the server (DISABLED/PREFERRED may "
                "connect in plain text; with REQUIRED, libmariadb skips the checks and even "
                "falls back to plain text)",
                "remove it (the plugin sets VERIFY_IDENTITY) or write VERIFY_CA")
    _absent(cparams, "unix_socket", "is a Unix socket (RDS is only reached over TCP)")
    _absent(cparams, "named_pipe", "is not TCP")
    _tcp_host(cparams, socket_names=("localhost",))
    _option_file(cparams, _MYSQL_CLIENT_GROUPS)
    value = cparams.get("ssl")
    if not isinstance(value, Mapping):
        refuse(f"ssl={_v(value)}", "is not mysqlclient TLS options", _DEFAULT_FIX)
    roots = _ssl_dict_roots(value, {"ca", "capath", "cert", "key", "cipher", "check_hostname"},
                            "name no CA")
    checked = mode == "VERIFY_IDENTITY"
    return Transport(True, roots, checked, True, None if checked else "ssl_mode=VERIFY_CA")


#: mysqlclient 2.2 ``Connection(**kwargs)``: the C ``connect`` keywords (host, user, password,
#: database, port, unix_socket, conv, connect_timeout, compress, named_pipe, init_command,
#: read_default_file, read_default_group, client_flag, ssl, ssl_mode, local_infile,
#: read_timeout, write_timeout, charset, auth_plugin, server_public_key_path,
#: local_infile_dir) and the Python ones (db, passwd, cursorclass, collation, use_unicode,
#: sql_mode, binary_prefix, executemany_fallback, multi_statements, autocommit).
_MYSQLDB_KEYWORDS = _keywords("mysqldb", _MYSQL_COMMON, {
    "passwd": OURS, "password": _SECOND_PASSWORD, "ssl_mode": CHECKED, "named_pipe": _SOCKET,
    **dict.fromkeys(("database", "compress", "read_timeout", "write_timeout", "auth_plugin",
                     "server_public_key_path", "local_infile_dir", "cursorclass", "collation",
                     "binary_prefix", "executemany_fallback", "multi_statements"), HARMLESS),
})


# -- mysql-connector-python: ssl_ca + ssl_verify_* keywords ------------------------------------

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


# -- asyncmy: ssl=SSLContext (or dict); TLS is mandatory once ssl is set -----------------------

def _asyncmy_prepare(cparams: CParams, ca_bundle: str, mode: str) -> None:
    """A cached context: asyncmy would build one from a dict on every connect, on the loop."""
    value = cparams.get("ssl")
    if isinstance(value, Mapping):
        cparams["ssl"] = _context_from_ssl_dict(value, ca_bundle, mode)
    elif _wants_default(value):
        cparams["ssl"] = ssl_context(ca_bundle, mode)


def _asyncmy_classify(cargs: Sequence[Any], cparams: Mapping[str, Any]) -> Transport:
    _absent(cparams, "unix_socket", "is a Unix socket (RDS is only reached over TCP)")
    _absent(cparams, "sock", "is a socket opened elsewhere, whose TLS cannot be checked")
    _tcp_host(cparams)
    _option_file(cparams, ["client"] if cparams.get("read_default_group") is None else [])
    return _from_context("ssl", cparams.get("ssl"))


#: asyncmy 0.2 ``connect(user, password, password_creator, host, database, unix_socket, sock,
#: port, charset, sql_mode, read_default_file, conv, use_unicode, client_flag, cursor_cls,
#: init_command, connect_timeout, read_default_group, autocommit, local_infile,
#: max_allowed_packet, auth_plugin_map, read_timeout, binary_prefix, program_name, echo,
#: query_callback, server_public_key, ssl, stmt_cache_size, db)``.
_ASYNCMY_KEYWORDS = _keywords("asyncmy", _MYSQL_COMMON, _PYMYSQL_FAMILY, {
    "sock": ("is a socket opened elsewhere, whose TLS cannot be checked", "remove it"),
    "password_creator": ("computes a password in place of the IAM token", "remove it"),
    "auth_plugin_map": _AUTH_PLUGIN_MAP,
    **dict.fromkeys(("database", "cursor_cls", "max_allowed_packet", "read_timeout",
                     "binary_prefix", "echo", "query_callback", "stmt_cache_size"), HARMLESS),
    **_ASYNC_CREATOR,
})
