"""MySQL drivers' TLS settings given as an ``ssl`` dict or an option file: read the way the
drivers read them, turned into a cached ``SSLContext`` or refused."""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigurationError
from ..tls import ssl_context
from ..transport import Transport, refuse
from .rules import CParams, _as_bool, _roots, _v

# -- ssl dicts ---------------------------------------------------------------------------------

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
    if _as_bool(ssl_dict.get("verify_mode", True)) is not True:
        refuse(f"ssl verify_mode={_v(ssl_dict['verify_mode'])}", "would accept any server "
                "certificate", "remove it (iam_tls=verify-ca skips only the hostname check)")
    check_hostname = _as_bool(ssl_dict.get("check_hostname", mode == "verify-full"))
    if check_hostname is None:
        refuse(f"ssl check_hostname={_v(ssl_dict['check_hostname'])}", "is not a boolean",
                "give true or false")
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


_PYMYSQL_REQUIRED = frozenset({"required", "1", "true", "yes"})


def _ssl_dict_roots(ssl_dict: Mapping[str, Any], known: set[str], no_ca: str) -> str:
    """The roots a MySQL driver's ``ssl={...}`` dict names (``ca``, else a ``capath``
    directory); refuses keys outside ``known`` (allow-list) and a dict that names none."""
    unknown = sorted(set(ssl_dict) - known)
    if unknown:
        refuse(f"ssl option(s) {unknown}", "are not understood", "remove them")
    if ssl_dict.get("ca") is not None:
        return _roots("ssl ca", ssl_dict["ca"])
    capath = ssl_dict.get("capath")
    if isinstance(capath, str) and os.path.isdir(capath):
        return capath
    refuse("the ssl options", no_ca, "add ssl_ca=<bundle>, or omit them")


def _verify_dict(ssl_dict: Mapping[str, Any]) -> Transport:
    """PyMySQL's ``_create_ssl_ctx`` on a dict, read the same way, allow-list only."""
    roots = _ssl_dict_roots(ssl_dict, {"ca", "capath", "cert", "key", "password", "cipher",
                                       "check_hostname", "verify_mode"},
                            "name no CA, so PyMySQL would not verify the server")
    verify = ssl_dict.get("verify_mode")
    if not (verify is None or verify is True
            or (isinstance(verify, str) and verify.lower() in _PYMYSQL_REQUIRED)):
        refuse(f"ssl verify_mode={_v(verify)}", "does not require a verified certificate",
                "remove it (iam_tls=verify-ca skips only the hostname check)")
    hostname = ssl_dict.get("check_hostname", True)
    if not isinstance(hostname, bool):
        refuse(f"ssl check_hostname={_v(hostname)}", "is not a boolean", "give true or false")
    chosen = ssl_dict.get("check_hostname") is False  # said explicitly, not a default
    return Transport(True, roots, hostname, True,
                     "check_hostname=False" if chosen and not hostname else None)


# -- keywords: PyMySQL's and mysql-connector's ssl_* -------------------------------------------

def _verify_keywords(cparams: CParams, ca_bundle: str, mode: str) -> None:
    """``ssl_ca`` + ``ssl_verify_cert`` + ``ssl_verify_identity``: PyMySQL's and the connector's."""
    cparams.setdefault("ssl_ca", ca_bundle)
    cparams.setdefault("ssl_verify_cert", True)
    cparams.setdefault("ssl_verify_identity", mode == "verify-full")


def _ssl_disabled(cparams: Mapping[str, Any]) -> None:
    value = cparams.get("ssl_disabled")
    if value is not None and value is not False:
        refuse(f"ssl_disabled={_v(value)}", "turns TLS off (any non-empty string, even "
                "'false', counts as true)", "remove it")


# -- option files (MySQL drivers' read_default_file) -------------------------------------------

#: Option-file keys that cannot weaken TLS or move the connection off TCP.
_SAFE_OPTION_KEYS = frozenset({
    "enable-cleartext-plugin", "default-character-set", "user", "database", "port",
    "connect-timeout", "init-command", "local-infile", "max-allowed-packet", "compress",
    "ssl-cipher", "tls-version", "ssl-crl", "ssl-crlpath", "ssl-cert", "ssl-key",
    "ssl-password", "bind-address", "program-name", "plugin-dir", "default-auth",
    "host", "password",  # an explicit host= / the token always wins over the file's
})


def _option_file(cparams: Mapping[str, Any], groups: Sequence[str]) -> None:
    """Refuse an option file (``read_default_file``) that could weaken what we checked.

    libmysqlclient, MariaDB Connector/C, PyMySQL and asyncmy apply its ``[client]`` values
    at connect time, after our arguments: ``ssl-verify-server-cert=0`` or ``socket=`` there
    would undo them. Only keys known to be harmless pass; ``ssl-ca`` must be a valid bundle.
    """
    path = cparams.get("read_default_file")
    group = cparams.get("read_default_group")
    if path is None and group is None:
        return
    if path is None:
        refuse(f"read_default_group={_v(group)}", "makes the driver read the default option "
                "files, which this check cannot see", "name the file with read_default_file")
    if _cleartext_option_file.cache_info().currsize and path == _cleartext_option_file():
        return
    import configparser  # MySQL option files only: not on PostgreSQL's cold start

    parser = configparser.ConfigParser(allow_no_value=True, strict=False, interpolation=None)
    try:
        with open(os.path.expanduser(str(path)), encoding="utf-8") as fh:
            text = fh.read()
        if any(line.lstrip().startswith("!include") for line in text.splitlines()):
            refuse(f"read_default_file={_v(path)}", "includes other option files",
                    "put the settings in one file")
        parser.read_string(text)
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        refuse(f"read_default_file={_v(path)}", f"cannot be read ({exc})", "fix the path")
    names = [*groups, *([group] if isinstance(group, str) else [])]
    for section in names:
        if not parser.has_section(section):
            continue
        for key, value in parser.items(section):
            name = key.strip().lower().replace("_", "-")
            if name == "ssl-ca":
                _roots(f"{section}.ssl-ca in {path}", (value or "").strip())
            elif name == "ssl-verify-server-cert" and _as_bool(value or "1") is True:
                continue
            elif name not in _SAFE_OPTION_KEYS:
                refuse(f"{name}={_v(value)} in [{section}] of {path}",
                        "may change TLS or the transport after this check",
                        "remove it from the option file")


@functools.lru_cache(maxsize=1)
def _cleartext_option_file() -> str:
    """An option file that enables ``mysql_clear_password`` for the connections that name it.

    Per connection (``read_default_file=``) rather than ``LIBMYSQL_ENABLE_CLEARTEXT_PLUGIN``,
    which is process-wide and only read when the library initialises.
    """
    import tempfile

    fd, path = tempfile.mkstemp(prefix="sqlalchemy-rds-iam-", suffix=".cnf")
    with os.fdopen(fd, "w") as fh:
        fh.write("[client]\nenable-cleartext-plugin\n")
    return path
