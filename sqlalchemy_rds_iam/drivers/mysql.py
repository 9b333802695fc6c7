"""The MySQL rows' parts: PyMySQL, mysqlclient (MySQLdb) and asyncmy, and the keywords
SQLAlchemy's MySQL dialects give every MySQL driver (mysql-connector: ``mysqlconnector``)."""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from typing import Any

from ..tls import ssl_context
from ..transport import Transport, refuse
from .rules import (
    _ASYNC_CREATOR,
    _AUTH_PLUGIN_MAP,
    _DEFAULT_FIX,
    _MYSQL_COMMON,
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


#: The rows' parts, by URL driver name (``drivers._build`` adds the facts).
ROWS: Mapping[str, Mapping[str, Any]] = {
    "pymysql": {"keywords": _PYMYSQL_KEYWORDS, "prepare": _pymysql_prepare,
                "classify": _pymysql_classify, "scrub": _scrub_attrs("password")},
    "mysqldb": {"keywords": _MYSQLDB_KEYWORDS, "prepare": _mysqldb_prepare,
                "classify": _mysqldb_classify},
    "asyncmy": {"keywords": _ASYNCMY_KEYWORDS, "prepare": _asyncmy_prepare,
                "classify": _asyncmy_classify, "scrub": _scrub_attrs("_password")},
}
