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

Both run on the same ``cparams`` dict for every connection, so they are idempotent, and they
never mutate a nested value (an ``ssl`` dict may be the user's ``connect_args`` object):
they assign new ones. ``scrub(connection)`` overwrites the token where a driver keeps it on
its connection object, once the login is done.

No driver is imported here at module level: a row's functions import their driver when
they first run, which is after SQLAlchemy has already imported it for the dialect.
"""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from .errors import ConfigurationError, InsecureConnectionError, UnsupportedDriverError
from .memo import MemoizedClassify
from .tls import ContextCheck, bundle_problem, context_problem, ssl_context

__all__ = ["DRIVERS", "LIBPQ_PLAINTEXT_MODES", "DriverSpec", "Transport", "driver_for"]

CParams = MutableMapping[str, Any]
Prepare = Callable[[CParams, str, str], None]
Classify = Callable[[Sequence[Any], Mapping[str, Any]], "Transport"]
Scrub = Callable[[Any], None]

_TRUE_WORDS = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE_WORDS = frozenset({"", "0", "false", "f", "no", "n", "off"})


@dataclass(frozen=True)
class Transport:
    """What a driver's final arguments mean for where the token can go.

    The token is sent only when ``encrypted`` and ``tcp``, ``roots`` names what verifies
    the chain, and either ``hostname_checked`` or ``chain_only_by`` names the explicit
    setting that chose chain-only verification (``iam_tls=verify-ca`` and its equivalents).
    """

    encrypted: bool
    roots: str | None
    hostname_checked: bool
    tcp: bool
    chain_only_by: str | None = None

    def require_verified(self) -> Transport:
        """``self`` if the token may be sent this way; else raise, saying what is missing."""
        if not self.tcp:
            _refuse("the connection", "does not go over TCP", "connect to the RDS endpoint")
        if not self.encrypted or not self.roots:
            _refuse("the connection", "is not verified TLS", "remove the TLS setting")
        if not self.hostname_checked and not self.chain_only_by:
            _refuse("the connection", "does not check the server's name",
                    "use iam_tls=verify-ca to choose chain-only verification explicitly")
        return self


def _v(value: object) -> str:
    """A setting's value as users write it: ``disable``, but ``'false'`` vs ``False``."""
    if isinstance(value, str) and value and value.isprintable() and value.strip() == value \
            and _as_bool(value) is None:
        return value
    return repr(value)


def _refuse(setting: str, why: str, fix: str) -> NoReturn:
    raise InsecureConnectionError(
        f"refusing to send an IAM token without verified TLS: {setting} {why}; {fix}"
    )


_DEFAULT_FIX = "remove it (the default, iam_tls=verify-full, verifies the server)"


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


def _strict_bool(cparams: Mapping[str, Any], key: str, default: bool) -> bool:
    """A keyword that must be a real ``bool`` (or absent): URL strings are ambiguous here."""
    if key not in cparams:
        return default
    value = cparams[key]
    if isinstance(value, bool):
        return value
    _refuse(f"{key}={_v(value)}", "is not a boolean (drivers read strings such as 'false' as true)",
            f"pass {key}=True/False in connect_args, or {_DEFAULT_FIX}")


def _absent(cparams: Mapping[str, Any], key: str, why: str, fix: str = _DEFAULT_FIX) -> None:
    if cparams.get(key) is not None:
        _refuse(f"{key}={_v(cparams[key])}", why, fix)


def _tcp_host(cparams: Mapping[str, Any], *, socket_names: Sequence[str] = ()) -> None:
    """``host`` names a TCP endpoint: present, text, not a socket path or a socket alias."""
    hosts = cparams.get("host")
    items = hosts if isinstance(hosts, list) else [hosts]
    for host in items:
        if not isinstance(host, str) or not host.strip():
            _refuse(f"host={_v(hosts)}", "is not a TCP host name, so the driver would pick a "
                    "Unix socket or an environment default", "give the RDS endpoint as host")
        for part in host.split(","):
            if not part.strip() or part.strip().startswith(("/", "@")) or part in socket_names:
                _refuse(f"host={_v(hosts)}", "is a Unix socket (RDS is only reached over TCP)",
                        "connect to the endpoint over TCP (127.0.0.1 with iam_host=localhost "
                        "for a local server)")


def _roots(setting: str, path: object) -> str:
    problem = bundle_problem(path)
    if problem:
        _refuse(f"{setting}={_v(path)}", f"cannot verify the server: {problem}",
                "give a readable PEM CA bundle, or omit it to use the RDS bundle")
    return str(path)


def _context(setting: str, value: object) -> ContextCheck:
    if not isinstance(value, ssl.SSLContext):
        _refuse(f"{setting}={_v(value)}", "is not an ssl.SSLContext this driver would verify with",
                _DEFAULT_FIX)
    found = context_problem(value)
    if isinstance(found, str):
        _refuse(f"{setting}=<SSLContext>", found,
                "use ssl.create_default_context(cafile=<RDS bundle>), or omit it")
    return found


def _from_context(setting: str, value: object) -> Transport:
    check = _context(setting, value)
    return Transport(True, check.roots, check.hostname_checked, True,
                     None if check.hostname_checked else f"{setting} with check_hostname=False")


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
        _refuse(f"ssl verify_mode={_v(ssl_dict['verify_mode'])}", "would accept any server "
                "certificate", "remove it (iam_tls=verify-ca skips only the hostname check)")
    check_hostname = _as_bool(ssl_dict.get("check_hostname", mode == "verify-full"))
    if check_hostname is None:
        _refuse(f"ssl check_hostname={_v(ssl_dict['check_hostname'])}", "is not a boolean",
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


def _wants_default(value: object) -> bool:
    """Absent, or a plain "yes, TLS" (``True``, ``"true"``): the row fills in its default."""
    return value is None or _as_bool(value) is True


def _scrub_attrs(*names: str) -> Scrub:
    """Overwrite these attributes (where the driver keeps the password) on a connection."""

    def scrub(connection: Any) -> None:
        for name in names:
            if isinstance(getattr(connection, name, None), (str, bytes)):
                try:
                    setattr(connection, name, b"" if isinstance(
                        getattr(connection, name), bytes) else "")
                except (AttributeError, TypeError):  # a read-only (Cython) attribute
                    pass

    return scrub


def _scrub_connector(connection: Any) -> None:
    """mysql-connector keeps the password on the connection and on its auth strategy."""
    _scrub_attrs("_password", "_password1", "_password2", "_password3")(connection)
    strategy = getattr(getattr(connection, "_authenticator", None), "_auth_strategy", None)
    if strategy is not None:
        _scrub_attrs("_password")(strategy)


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


def _no_scrub(connection: Any) -> None:
    """libpq and libmysqlclient keep the password in C memory we cannot reach."""


# -- option files (MySQL drivers' read_default_file) --------------------------------------------

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
        _refuse(f"read_default_group={_v(group)}", "makes the driver read the default option "
                "files, which this check cannot see", "name the file with read_default_file")
    if _cleartext_option_file.cache_info().currsize and path == _cleartext_option_file():
        return
    import configparser  # MySQL option files only: not on PostgreSQL's cold start

    parser = configparser.ConfigParser(allow_no_value=True, strict=False, interpolation=None)
    try:
        with open(os.path.expanduser(str(path)), encoding="utf-8") as fh:
            text = fh.read()
        if any(line.lstrip().startswith("!include") for line in text.splitlines()):
            _refuse(f"read_default_file={_v(path)}", "includes other option files",
                    "put the settings in one file")
        parser.read_string(text)
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        _refuse(f"read_default_file={_v(path)}", f"cannot be read ({exc})", "fix the path")
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
                _refuse(f"{name}={_v(value)} in [{section}] of {path}",
                        "may change TLS or the transport after this check",
                        "remove it from the option file")


# -- PostgreSQL: libpq keywords (psycopg2, psycopg 3) ------------------------------------

_LIBPQ_MODES = {"verify-full": True, "verify-ca": False}
#: ``sslmode`` words with which libpq may send the password without TLS (the CLI refuses them).
LIBPQ_PLAINTEXT_MODES = frozenset({"disable", "allow", "prefer"})


def _libpq_prepare(cparams: CParams, ca_bundle: str, mode: str) -> None:
    """``sslmode`` + ``sslrootcert`` + ``gssencmode=disable``, always explicit.

    Set so PGSSLMODE or a service file cannot weaken them. ``gssencmode``: libpq uses
    GSSAPI encryption *instead of* TLS whenever a Kerberos ticket allows it, whatever
    ``sslmode`` says; the server would then never be checked against the CA.
    """
    cparams.setdefault("sslmode", mode)
    cparams.setdefault("sslrootcert", ca_bundle)
    cparams.setdefault("gssencmode", "disable")


def _libpq_classify(cargs: Sequence[Any], cparams: Mapping[str, Any]) -> Transport:
    mode = cparams.get("sslmode")
    if mode not in _LIBPQ_MODES:
        why = ("may connect without TLS" if mode in LIBPQ_PLAINTEXT_MODES
               else "does not verify the certificate (libpq checks nothing unless a root "
               "file is found)" if mode == "require" else "is not one libpq verifies with")
        _refuse(f"sslmode={_v(mode)}", why,
                "remove it (the plugin sets verify-full) or write sslmode=verify-ca")
    _absent(cparams, "requiressl", "is obsolete and overrides sslmode in old libpq")
    gss = cparams.get("gssencmode")
    if gss != "disable":
        _refuse(f"gssencmode={_v(gss)}", "lets GSSAPI encryption replace TLS, so the server "
                "is not checked against the CA", "remove it (the plugin sets disable)")
    negotiation = cparams.get("sslnegotiation", "postgres")
    if negotiation not in ("postgres", "direct"):
        _refuse(f"sslnegotiation={_v(negotiation)}", "is not a known value",
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


# -- pg8000: ssl_context ------------------------------------------------------------------


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


# -- asyncpg: ssl= (an SSLContext, a bool or an sslmode word) ------------------------------


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
        _refuse(f"ssl={_v(value)}", "does not verify the certificate in asyncpg (require: TLS "
                "without a check; disable/allow/prefer: maybe no TLS at all)",
                "remove it, or write ssl=verify-full / verify-ca")
    return _from_context("ssl", value)


# -- PyMySQL: ssl_* keywords or an ssl dict -----------------------------------------------

_PYMYSQL_KEYWORDS = ("ssl_ca", "ssl_cert", "ssl_key", "ssl_verify_cert", "ssl_verify_identity")
_PYMYSQL_REQUIRED = frozenset({"required", "1", "true", "yes"})


def _pymysql_prepare(cparams: CParams, ca_bundle: str, mode: str) -> None:
    """``ssl_ca`` + ``ssl_verify_*`` keywords, or the ``ssl`` dict built from URL ``ssl_*``.

    PyMySQL ignores an ``ssl`` dict as soon as any ``ssl_ca``/``ssl_verify_*`` keyword is
    given, so defaults go into whichever form the user already uses (both at once is
    refused by the check).
    """
    value = cparams.get("ssl")
    if isinstance(value, Mapping):
        merged = _ssl_dict_with_ca(value, ca_bundle)
        merged.setdefault("check_hostname", mode == "verify-full")
        merged.setdefault("verify_mode", True)
        cparams["ssl"] = merged
    elif isinstance(value, ssl.SSLContext):  # the user's context: theirs to configure
        return
    elif _wants_default(value):
        cparams.pop("ssl", None)
        _verify_keywords(cparams, ca_bundle, mode)


def _verify_keywords(cparams: CParams, ca_bundle: str, mode: str) -> None:
    """``ssl_ca`` + ``ssl_verify_cert`` + ``ssl_verify_identity``: PyMySQL's and the connector's."""
    cparams.setdefault("ssl_ca", ca_bundle)
    cparams.setdefault("ssl_verify_cert", True)
    cparams.setdefault("ssl_verify_identity", mode == "verify-full")


def _ssl_disabled(cparams: Mapping[str, Any]) -> None:
    value = cparams.get("ssl_disabled")
    if value is not None and value is not False:
        _refuse(f"ssl_disabled={_v(value)}", "turns TLS off (any non-empty string, even "
                "'false', counts as true)", "remove it")


def _ssl_dict_roots(ssl_dict: Mapping[str, Any], known: set[str], no_ca: str) -> str:
    """The roots a MySQL driver's ``ssl={...}`` dict names (``ca``, else a ``capath``
    directory); refuses keys outside ``known`` (allow-list) and a dict that names none."""
    unknown = sorted(set(ssl_dict) - known)
    if unknown:
        _refuse(f"ssl option(s) {unknown}", "are not understood", "remove them")
    if ssl_dict.get("ca") is not None:
        return _roots("ssl ca", ssl_dict["ca"])
    capath = ssl_dict.get("capath")
    if isinstance(capath, str) and os.path.isdir(capath):
        return capath
    _refuse("the ssl options", no_ca, "add ssl_ca=<bundle>, or omit them")


def _verify_dict(ssl_dict: Mapping[str, Any]) -> Transport:
    """PyMySQL's ``_create_ssl_ctx`` on a dict, read the same way, allow-list only."""
    roots = _ssl_dict_roots(ssl_dict, {"ca", "capath", "cert", "key", "password", "cipher",
                                       "check_hostname", "verify_mode"},
                            "name no CA, so PyMySQL would not verify the server")
    verify = ssl_dict.get("verify_mode")
    if not (verify is None or verify is True
            or (isinstance(verify, str) and verify.lower() in _PYMYSQL_REQUIRED)):
        _refuse(f"ssl verify_mode={_v(verify)}", "does not require a verified certificate",
                "remove it (iam_tls=verify-ca skips only the hostname check)")
    hostname = ssl_dict.get("check_hostname", True)
    if not isinstance(hostname, bool):
        _refuse(f"ssl check_hostname={_v(hostname)}", "is not a boolean", "give true or false")
    chosen = ssl_dict.get("check_hostname") is False  # said explicitly, not a default
    return Transport(True, roots, hostname, True,
                     "check_hostname=False" if chosen and not hostname else None)


def _pymysql_effective_ssl(cparams: Mapping[str, Any]) -> object:
    """The ``ssl`` PyMySQL will use, following its own precedence (keywords over the dict)."""
    keywords = [k for k in _PYMYSQL_KEYWORDS if cparams.get(k)]
    if not keywords:
        return cparams.get("ssl")
    if cparams.get("ssl") is not None:
        _refuse(f"ssl={{...}} together with {', '.join(keywords)}", "makes PyMySQL drop the "
                "ssl options (URL ssl_* go into ssl={...}) and build its own, unverified",
                "give every TLS setting the same way: all in the URL or all in connect_args")
    # None (a setdefault that kept the user's None) would be PyMySQL's "no name check".
    identity = _strict_bool(cparams, "ssl_verify_identity", False)
    verify = cparams.get("ssl_verify_cert")
    if verify is not True:
        # Even where ssl_verify_identity=True would override it (PyMySQL 1.2), a "no" here
        # is refused: PyMySQL 1.1 reads the same arguments differently.
        _refuse(f"ssl_verify_cert={_v(verify)}", "leaves the certificate unverified (PyMySQL "
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
    _refuse(f"ssl={_v(effective)}", "is not TLS options PyMySQL would verify with (it would "
            "fall back to its unverified 'preferred' mode)", _DEFAULT_FIX)


# -- mysqlclient (MySQLdb): ssl dict + ssl_mode, libmysqlclient or MariaDB Connector/C -----

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
        _refuse(f"ssl_mode={_v(mode)}", "does not verify the server (DISABLED/PREFERRED may "
                "connect in plain text; with REQUIRED, libmariadb skips the checks and even "
                "falls back to plain text)",
                "remove it (the plugin sets VERIFY_IDENTITY) or write VERIFY_CA")
    _absent(cparams, "unix_socket", "is a Unix socket (RDS is only reached over TCP)")
    _absent(cparams, "named_pipe", "is not TCP")
    _tcp_host(cparams, socket_names=("localhost",))
    _option_file(cparams, _MYSQL_CLIENT_GROUPS)
    value = cparams.get("ssl")
    if not isinstance(value, Mapping):
        _refuse(f"ssl={_v(value)}", "is not mysqlclient TLS options", _DEFAULT_FIX)
    roots = _ssl_dict_roots(value, {"ca", "capath", "cert", "key", "cipher", "check_hostname"},
                            "name no CA")
    checked = mode == "VERIFY_IDENTITY"
    return Transport(True, roots, checked, True, None if checked else "ssl_mode=VERIFY_CA")


# -- mysql-connector-python: ssl_ca + ssl_verify_* keywords --------------------------------


def _connector_prepare(cparams: CParams, ca_bundle: str, mode: str) -> None:
    """Keywords only: it rejects ``ssl=`` and unknown arguments, and takes no ``SSLContext``."""
    _verify_keywords(cparams, ca_bundle, mode)


def _connector_classify(cargs: Sequence[Any], cparams: Mapping[str, Any]) -> Transport:
    _ssl_disabled(cparams)
    _absent(cparams, "unix_socket", "is a Unix socket (RDS is only reached over TCP)")
    for key in ("option_files", "read_default_file"):
        _absent(cparams, key, "can change TLS after this check",
                "give the settings in the URL or connect_args")
    _tcp_host(cparams)
    if not _strict_bool(cparams, "ssl_verify_cert", False):
        _refuse(f"ssl_verify_cert={_v(cparams.get('ssl_verify_cert'))}", "leaves the "
                "certificate unverified (and the connector then falls back to plain text)",
                "remove it")
    identity = _strict_bool(cparams, "ssl_verify_identity", False)
    roots = _roots("ssl_ca", cparams.get("ssl_ca"))
    return Transport(True, roots, identity, True,
                     None if identity else "ssl_verify_identity=False")


# -- aiomysql: ssl=SSLContext, plus a connection class that refuses plain text ------------


def _aiomysql_prepare(cparams: CParams, ca_bundle: str, mode: str) -> None:
    """aiomysql takes only an ``SSLContext``, and skips TLS silently if the server lacks it.

    So the context is always ours (or the user's), and SQLAlchemy's ``async_creator_fn``
    hook connects through :func:`connect_aiomysql_requiring_tls`.
    """
    value = cparams.get("ssl")
    if isinstance(value, Mapping):
        cparams["ssl"] = _context_from_ssl_dict(value, ca_bundle, mode)
    elif _wants_default(value):
        cparams["ssl"] = ssl_context(ca_bundle, mode)
    cparams.setdefault("async_creator_fn", connect_aiomysql_requiring_tls)


def _aiomysql_classify(cargs: Sequence[Any], cparams: Mapping[str, Any]) -> Transport:
    if cparams.get("async_creator_fn") is not connect_aiomysql_requiring_tls:
        _refuse("async_creator_fn", "replaces the connect function that refuses a server "
                "without TLS (aiomysql itself would silently continue in plain text)",
                "remove it")
    _absent(cparams, "unix_socket", "is a Unix socket (RDS is only reached over TCP)")
    _tcp_host(cparams)
    _option_file(cparams, ["client"] if cparams.get("read_default_group") is None else [])
    return _from_context("ssl", cparams.get("ssl"))


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
            try:
                await super()._request_authentication()
            except BaseException:
                # A refused login (or TLS handshake) after the upgrade: aiomysql closes the
                # TLS transport without waiting, so a loop that ends now (asyncio.run right
                # after the error) leaves the socket open until gc finds the cycle.
                await _closed_fully(self._writer)
                raise

        async def ensure_closed(self) -> None:
            # aiomysql's own returns before the TLS shutdown has closed the socket.
            writer = self._writer
            await super().ensure_closed()
            await _closed_fully(writer)

        def escape(self, obj: Any) -> Any:
            # aiomysql 0.3.2 escapes bytes with PyMySQL's escape_bytes_prefixed, which PyMySQL
            # 1.2.1+ replaced by a string (every bytes parameter then fails); PyMySQL 1.1 is no
            # way out, it sends the token to a server that drops TLS. So: PyMySQL 1.2's own
            # rendering, a hex literal (nothing in it to escape).
            if isinstance(obj, (bytes, bytearray)):
                return f"_binary X'{bytes(obj).hex()}'"
            return super().escape(obj)

    return TlsOnlyConnection


async def _closed_fully(writer: Any) -> None:
    """Close an asyncio ``StreamWriter`` and wait (briefly) until its socket is closed.

    Closing a TLS transport only starts the TLS shutdown; the socket closes once the peer
    answers. Not waiting leaks the socket (a ResourceWarning) when the loop ends first.
    """
    if writer is None:
        return
    import asyncio

    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), _CLOSE_WAIT_SECONDS)
    except Exception:  # the connection is going away either way: make sure it is gone
        writer.transport.abort()


_CLOSE_WAIT_SECONDS = 2.0


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
    elif _wants_default(value):
        cparams["ssl"] = ssl_context(ca_bundle, mode)


def _asyncmy_classify(cargs: Sequence[Any], cparams: Mapping[str, Any]) -> Transport:
    _absent(cparams, "unix_socket", "is a Unix socket (RDS is only reached over TCP)")
    _absent(cparams, "sock", "is a socket opened elsewhere, whose TLS cannot be checked")
    _tcp_host(cparams)
    _option_file(cparams, ["client"] if cparams.get("read_default_group") is None else [])
    return _from_context("ssl", cparams.get("ssl"))


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
    classify: Classify
    """The final arguments' :class:`Transport`; raises for anything it cannot vouch for.

    Memoized per snapshot of the arguments it reads, for at most ``memo.RECHECK_SECONDS``
    (``memo.MemoizedClassify``): the hot path of every new connection.
    """
    scrub: Scrub = _no_scrub
    """Overwrites the token on a connected driver connection, where the driver keeps it."""
    fixed: Mapping[str, Any] = field(default_factory=dict)
    """Arguments always set with ``setdefault`` (e.g. a cleartext-auth switch)."""

    @property
    def url_prefix(self) -> str:
        return f"{self.family}+{self.name}"


_PORTS = {"postgresql": 5432, "mysql": 3306}


def _row(
    url_name: str, family: str, *, driver: str | None = None, is_async: bool = False,
    into: str = "password", extra: str, prepare: Prepare, classify: Classify,
    scrub: Scrub = _no_scrub, fixed: Mapping[str, Any] | None = None,
) -> DriverSpec:
    return DriverSpec(
        name=url_name, driver=driver or url_name, family=family, is_async=is_async,
        default_port=_PORTS[family], password_key=into, extra=extra,
        prepare=prepare, classify=MemoizedClassify(classify), scrub=scrub,
        fixed=dict(fixed or {}),
    )


DRIVERS: Mapping[str, DriverSpec] = {
    spec.name: spec
    for spec in (
        _row("psycopg2", "postgresql", extra="postgresql",
             prepare=_libpq_prepare, classify=_libpq_classify),
        _row("psycopg", "postgresql", extra="psycopg",
             prepare=_libpq_prepare, classify=_libpq_classify),
        _row("psycopg_async", "postgresql", driver="psycopg", is_async=True, extra="psycopg",
             prepare=_libpq_prepare, classify=_libpq_classify),
        _row("pg8000", "postgresql", extra="pg8000",
             prepare=_pg8000_prepare, classify=_pg8000_classify,
             scrub=_scrub_attrs("password")),
        _row("asyncpg", "postgresql", is_async=True, extra="asyncpg",
             prepare=_asyncpg_prepare, classify=_asyncpg_classify, scrub=_scrub_asyncpg),
        _row("pymysql", "mysql", extra="mysql",
             prepare=_pymysql_prepare, classify=_pymysql_classify,
             scrub=_scrub_attrs("password")),
        # MySQLdb: ``passwd`` overrides ``password`` when both are given, so it is the one to set.
        _row("mysqldb", "mysql", into="passwd", extra="mysqlclient",
             prepare=_mysqldb_prepare, classify=_mysqldb_classify),
        _row("mysqlconnector", "mysql", extra="mysql-connector",
             prepare=_connector_prepare, classify=_connector_classify,
             scrub=_scrub_connector,
             fixed={"auth_plugin": "mysql_clear_password"}),
        _row("aiomysql", "mysql", is_async=True, extra="aiomysql",
             prepare=_aiomysql_prepare, classify=_aiomysql_classify,
             scrub=_scrub_attrs("_password")),
        _row("asyncmy", "mysql", is_async=True, extra="asyncmy",
             prepare=_asyncmy_prepare, classify=_asyncmy_classify,
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
