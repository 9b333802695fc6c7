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

No driver is imported here at module level: a row's functions import their driver when
they first run, which is after SQLAlchemy has already imported it for the dialect.
"""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, NoReturn

from .errors import ConfigurationError, InsecureConnectionError, UnsupportedDriverError
from .memo import MemoizedClassify
from .scrub import MASK, is_secret_key
from .tls import ContextCheck, bundle_problem, context_problem, ssl_context

__all__ = [
    "CHECKED", "DRIVERS", "HARMLESS", "LIBPQ_PLAINTEXT_MODES", "OURS", "PLACED", "DriverSpec",
    "Keywords", "Transport", "driver_for", "place",
]

CParams = MutableMapping[str, Any]
Prepare = Callable[[CParams, str, str], None]
Classify = Callable[[Sequence[Any], Mapping[str, Any]], "Transport"]
Scrub = Callable[[Any], None]
Connect = Callable[[Any, Sequence[Any], Mapping[str, Any]], Any]


def _dialect_connect(dialect: Any, cargs: Sequence[Any], cparams: Mapping[str, Any]) -> Any:
    return dialect.connect(*cargs, **cparams)

_TRUE_WORDS = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE_WORDS = frozenset({"", "0", "false", "f", "no", "n", "off"})


class Transport(NamedTuple):
    """What a driver's final arguments mean for where the token can go (a named tuple: a
    frozen dataclass costs every cold start ~0.5 ms to build).

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


# -- one target: host, port and user come from the Target -------------------------------------

_MOVE_FIX = ("put the server you connect to in the URL (user@HOST:PORT/db); to sign for "
             "another name than the one you dial, add iam_host=<name> (and iam_port=)")


def place(cparams: CParams, address: tuple[str, int], user: str) -> None:
    """Make ``host``, ``port`` and ``user`` the target's: set when absent, refused if other.

    What the driver dials is then what the token is signed for (or ``iam_host``'s explicit
    choice) and what the certificate is checked against: ``?host=``/``?port=`` in a URL
    query (which SQLAlchemy's dialects let override the URL's) or ``connect_args`` naming
    another server is refused. Explicit values also keep ``PGHOST``/``PGPORT`` and the like
    out of it.
    """
    host, port = address
    get = cparams.get
    if get("host") is host and get("port") is port and get("user") is user:
        return  # what the last connect set (SQLAlchemy hands every connect the same dict)
    given = cparams.get("host", host)
    if given != host:
        raise InsecureConnectionError(
            f"refusing to connect: host={_v(given)} would make the driver dial another server "
            f"than {host}, which the IAM token is signed for and the TLS check expects; "
            f"{_MOVE_FIX}"
        )
    given_port = cparams.get("port", port)
    if not (given_port == port or (type(given_port) is str and given_port.strip() == str(port))):
        raise InsecureConnectionError(
            f"refusing to connect: port={_v(given_port)} would make the driver dial another "
            f"port than {port}, the one of the URL; {_MOVE_FIX}"
        )
    given_user = cparams.get("user", user)
    if given_user != user:
        raise InsecureConnectionError(
            f"refusing to connect: user={_v(given_user)} is not {user!r}, the user the IAM "
            "token is signed for; put the user in the URL (USER@host/db) only"
        )
    cparams["host"], cparams["port"], cparams["user"] = host, port, user


# -- keyword allow-lists --------------------------------------------------------------------

HARMLESS = "harmless"
"""A keyword that cannot change where or how securely the driver connects (not read)."""
CHECKED = "checked"
"""A TLS or transport keyword the row's ``prepare``/``classify`` reads and checks."""
PLACED = "placed"
"""``host``, ``port``, ``user``: set from the target by :func:`place`."""
OURS = "ours"
"""The keyword the token goes into."""

Check = Callable[[str, Any], None]
"""A value check for one keyword: returns if the value is harmless, raises if not."""


class Keywords(NamedTuple):
    """One driver's keyword allow-list: each key's rule; a key not listed is refused (a named
    tuple, as :class:`Transport`).

    A rule is :data:`HARMLESS`, :data:`CHECKED`, :data:`PLACED`, :data:`OURS`, a value
    check, or a ``(why, fix)`` pair: refused, saying why and what to write instead.
    """

    driver: str
    rules: Mapping[str, Any]

    def check(self, cparams: Mapping[str, Any]) -> None:
        """Raise :class:`InsecureConnectionError` for the first key not allowed as given."""
        for key in cparams:
            rule = self.rules.get(key)
            if rule is None:
                raise InsecureConnectionError(
                    f"refusing to send an IAM token: {key!r} is not a {self.driver} argument "
                    "sqlalchemy-rds-iam knows; it could change where or how securely the "
                    "driver connects, so unknown arguments are refused; remove it (if it is "
                    "harmless, please report it)"
                )
            if type(rule) is tuple:
                if cparams[key] is None:  # what the driver takes for "not given"
                    continue
                why, fix = rule
                secret = is_secret_key(key) or "passwd" in key  # passwd=, oauth_client_secret=
                shown = MASK if secret else _v(cparams[key])
                raise InsecureConnectionError(
                    f"refusing to send an IAM token: {key}={shown} {why}; {fix}")
            if callable(rule):
                rule(key, cparams[key])

    def admitted(self) -> frozenset[str]:
        """The keys this list lets through (with a valid value)."""
        return frozenset(k for k, rule in self.rules.items() if type(rule) is not tuple)


def _one_of(*allowed: object) -> Check:
    """A value check: the value (or its text) is one of ``allowed``."""
    texts = {str(a).lower() for a in allowed}

    def check(key: str, value: Any) -> None:
        if value is None or (isinstance(value, (str, int)) and not isinstance(value, bool)
                              and str(value).strip().lower() in texts):
            return
        _refuse(f"{key}={_v(value)}", f"is not one of {', '.join(map(str, allowed))}",
                "remove it, or use one of those values")

    return check


def _false_only(key: str, value: Any) -> None:
    if value is None or value is False or _as_bool(value) is False:
        return
    _refuse(f"{key}={_v(value)}", "is not supported with IAM authentication",
            f"remove {key}")


def _text_only(key: str, value: Any) -> None:
    if value is None or isinstance(value, str):
        return
    _refuse(f"{key}={_v(value)}", "is not text", f"give {key} as a string")


def _subclass_of(module: str, name: str) -> Check:
    """A value check: a class derived from ``module.name`` (imported when first checked)."""

    def check(key: str, value: Any) -> None:
        import importlib

        base = getattr(importlib.import_module(module), name)
        if value is None or (isinstance(value, type) and issubclass(value, base)):
            return
        _refuse(f"{key}={_v(value)}", f"is not a subclass of {module}.{name}", f"remove {key}")

    return check


def _keywords(driver: str, *tables: Mapping[str, Any]) -> Keywords:
    rules: dict[str, Any] = {}
    for table in tables:
        rules.update(table)
    return Keywords(driver, rules)


#: Where the connection goes and who logs in: from the target (every driver spells them so).
_PLACED = {"host": PLACED, "port": PLACED, "user": PLACED}
_MOVES = ("can carry its own host, port and TLS settings",
          "give them as URL parts and query parameters instead")
_SOCKET = ("is a Unix socket (RDS is only reached over TCP)",
           "connect to the endpoint over TCP (127.0.0.1 with iam_host=localhost for a local "
           "server)")
_SECOND_PASSWORD = ("is a password of its own; the IAM token is the password",
                    "remove it (the plugin sets the password for every connection)")
_OTHER_AUTH = ("is another authentication method than the IAM token", "remove it")
#: SQLAlchemy's async dialects' hook that replaces the driver's connect function.
_ASYNC_CREATOR = {"async_creator_fn": (
    "replaces the driver's connect function, which this check cannot see into",
    "remove it (the plugin makes the connection itself)")}


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


#: pg8000 1.31 ``connect(user, host, database, port, password, source_address, unix_sock,
#: ssl_context, timeout, tcp_keepalive, application_name, replication, startup_params, sock)``.
_PG8000_KEYWORDS = _keywords("pg8000", _PLACED, {
    "password": OURS, "ssl_context": CHECKED, "unix_sock": _SOCKET,
    "sock": ("is a socket opened elsewhere, whose TLS cannot be checked", "remove it"),
    **dict.fromkeys(("database", "source_address", "timeout", "tcp_keepalive",
                     "application_name", "replication", "startup_params"), HARMLESS),
})


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


# -- PyMySQL: ssl_* keywords or an ssl dict -----------------------------------------------

_PYMYSQL_TLS_KEYWORDS = ("ssl_ca", "ssl_cert", "ssl_key", "ssl_verify_cert", "ssl_verify_identity")
_PYMYSQL_REQUIRED = frozenset({"required", "1", "true", "yes"})


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
            _refuse(f"ssl={{...}} together with {', '.join(present)}", "makes PyMySQL drop the "
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
        _refuse(f"ssl_verify_cert={_v(verify)}", "leaves the certificate unverified (PyMySQL "
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
    keywords = [k for k in _PYMYSQL_TLS_KEYWORDS if cparams.get(k)]
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


#: What SQLAlchemy's MySQL dialects put in for every MySQL driver (``create_connect_args``:
#: the ``ssl`` dict from URL ``ssl_*``, ``client_flag`` with FOUND_ROWS, coerced types).
_MYSQL_COMMON = {
    **_PLACED, "password": OURS,
    **dict.fromkeys(("ssl", "read_default_file", "read_default_group"), CHECKED),
    "unix_socket": _SOCKET,
    **dict.fromkeys(("db", "charset", "sql_mode", "conv", "use_unicode", "client_flag",
                     "init_command", "connect_timeout", "autocommit", "local_infile"), HARMLESS),
}
#: Also taken by PyMySQL and its async relatives (not mysqlclient).
_PYMYSQL_FAMILY = dict.fromkeys(("program_name", "server_public_key"), HARMLESS)
_AUTH_PLUGIN_MAP = ("replaces how the password is sent to the server", "remove it")
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


# -- mysql-connector-python: ssl_ca + ssl_verify_* keywords --------------------------------


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
        _refuse(f"ssl_verify_cert={_v(cparams.get('ssl_verify_cert'))}", "leaves the "
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


#: aiomysql 0.3 ``connect(host, user, password, db, port, unix_socket, charset, sql_mode,
#: read_default_file, conv, use_unicode, client_flag, cursorclass, init_command,
#: connect_timeout, read_default_group, autocommit, echo, local_infile, loop, ssl,
#: auth_plugin, program_name, server_public_key)``.
_AIOMYSQL_KEYWORDS = _keywords("aiomysql", _MYSQL_COMMON, _PYMYSQL_FAMILY, {
    "async_creator_fn": CHECKED,
    **dict.fromkeys(("cursorclass", "echo", "loop", "auth_plugin"), HARMLESS),
})


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
        _row("psycopg2", "postgresql", extra="postgresql", keywords=_PSYCOPG2_KEYWORDS,
             prepare=_libpq_prepare_with(_psycopg2_libpq), classify=_libpq_classify),
        _row("psycopg", "postgresql", extra="psycopg", keywords=_PSYCOPG_KEYWORDS,
             prepare=_libpq_prepare_with(_psycopg_libpq), classify=_libpq_classify),
        _row("psycopg_async", "postgresql", driver="psycopg", is_async=True, extra="psycopg",
             keywords=_keywords("psycopg_async", _PSYCOPG_KEYWORDS.rules),
             prepare=_libpq_prepare_with(_psycopg_libpq), classify=_libpq_classify),
        _row("pg8000", "postgresql", extra="pg8000", keywords=_PG8000_KEYWORDS,
             prepare=_pg8000_prepare, classify=_pg8000_classify,
             scrub=_scrub_attrs("password")),
        _row("asyncpg", "postgresql", is_async=True, extra="asyncpg", keywords=_ASYNCPG_KEYWORDS,
             prepare=_asyncpg_prepare, classify=_asyncpg_classify, scrub=_scrub_asyncpg),
        _row("pymysql", "mysql", extra="mysql", keywords=_PYMYSQL_KEYWORDS,
             prepare=_pymysql_prepare, classify=_pymysql_classify,
             scrub=_scrub_attrs("password")),
        # MySQLdb: ``passwd`` overrides ``password`` when both are given, so it is the one to set.
        _row("mysqldb", "mysql", into="passwd", extra="mysqlclient",
             keywords=_MYSQLDB_KEYWORDS,
             prepare=_mysqldb_prepare, classify=_mysqldb_classify),
        _row("mysqlconnector", "mysql", extra="mysql-connector", keywords=_CONNECTOR_KEYWORDS,
             prepare=_connector_prepare, classify=_connector_classify,
             scrub=_scrub_connector, connect=_connector_open,
             fixed={"auth_plugin": "mysql_clear_password"}),
        _row("aiomysql", "mysql", is_async=True, extra="aiomysql", keywords=_AIOMYSQL_KEYWORDS,
             prepare=_aiomysql_prepare, classify=_aiomysql_classify,
             scrub=_scrub_attrs("_password")),
        _row("asyncmy", "mysql", is_async=True, extra="asyncmy", keywords=_ASYNCMY_KEYWORDS,
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
