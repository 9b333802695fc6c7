"""The allow-list vocabulary every driver row is written in: keyword rules, value checks,
the host/port/user placement and the TLS-argument checks that several drivers share."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any

from ..errors import InsecureConnectionError
from ..tls import ContextCheck, bundle_problem, context_problem
from ..transport import Transport, refuse

CParams = MutableMapping[str, Any]
Prepare = Callable[[CParams, str, str], None]
Scrub = Callable[[Any], None]
Connect = Callable[[Any, Sequence[Any], Mapping[str, Any]], Any]


_TRUE_WORDS = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE_WORDS = frozenset({"", "0", "false", "f", "no", "n", "off"})


def _v(value: object) -> str:
    """A setting's value as users write it: ``disable``, but ``'false'`` vs ``False``."""
    if isinstance(value, str) and value and value.isprintable() and value.strip() == value \
            and _as_bool(value) is None:
        return value
    return repr(value)


_DEFAULT_FIX = "remove it (the default, iam_tls=verify-full, verifies the server)"


# -- one target: host, port and user come from the Target --------------------------------------

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


# -- keyword allow-lists -----------------------------------------------------------------------

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


class Keywords:
    """One driver's keyword allow-list: each key's rule; a key not listed is refused (a plain
    class: a named tuple costs a cold start ~0.2 ms to build).

    A rule is :data:`HARMLESS`, :data:`CHECKED`, :data:`PLACED`, :data:`OURS`, a value
    check, or a ``(why, fix)`` pair: refused, saying why and what to write instead.
    """

    __slots__ = ("driver", "rules")

    def __init__(self, driver: str, rules: Mapping[str, Any]) -> None:
        self.driver = driver
        self.rules = rules

    def __repr__(self) -> str:
        return f"Keywords({self.driver!r}, <{len(self.rules)} rules>)"

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
                from ..scrub import MASK, is_secret_key  # a refusal's message only

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
        refuse(f"{key}={_v(value)}", f"is not one of {', '.join(map(str, allowed))}",
                "remove it, or use one of those values")

    return check


def _false_only(key: str, value: Any) -> None:
    if value is None or value is False or _as_bool(value) is False:
        return
    refuse(f"{key}={_v(value)}", "is not supported with IAM authentication",
            f"remove {key}")


def _text_only(key: str, value: Any) -> None:
    if value is None or isinstance(value, str):
        return
    refuse(f"{key}={_v(value)}", "is not text", f"give {key} as a string")


def _subclass_of(module: str, name: str) -> Check:
    """A value check: a class derived from ``module.name`` (imported when first checked)."""

    def check(key: str, value: Any) -> None:
        import importlib

        base = getattr(importlib.import_module(module), name)
        if value is None or (isinstance(value, type) and issubclass(value, base)):
            return
        refuse(f"{key}={_v(value)}", f"is not a subclass of {module}.{name}", f"remove {key}")

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


# -- MySQL: what SQLAlchemy's MySQL dialects give every MySQL driver ---------------------------

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


# -- value checks shared by the rows -----------------------------------------------------------

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
    refuse(f"{key}={_v(value)}", "is not a boolean (drivers read strings such as 'false' as true)",
            f"pass {key}=True/False in connect_args, or {_DEFAULT_FIX}")


def _absent(cparams: Mapping[str, Any], key: str, why: str, fix: str = _DEFAULT_FIX) -> None:
    if cparams.get(key) is not None:
        refuse(f"{key}={_v(cparams[key])}", why, fix)


def _tcp_host(cparams: Mapping[str, Any], *, socket_names: Sequence[str] = ()) -> None:
    """``host`` names a TCP endpoint: present, text, not a socket path or a socket alias."""
    hosts = cparams.get("host")
    items = hosts if isinstance(hosts, list) else [hosts]
    for host in items:
        if not isinstance(host, str) or not host.strip():
            refuse(f"host={_v(hosts)}", "is not a TCP host name, so the driver would pick a "
                    "Unix socket or an environment default", "give the RDS endpoint as host")
        for part in host.split(","):
            if not part.strip() or part.strip().startswith(("/", "@")) or part in socket_names:
                refuse(f"host={_v(hosts)}", "is a Unix socket (RDS is only reached over TCP)",
                        "connect to the endpoint over TCP (127.0.0.1 with iam_host=localhost "
                        "for a local server)")


def _roots(setting: str, path: object) -> str:
    problem = bundle_problem(path)
    if problem:
        refuse(f"{setting}={_v(path)}", f"cannot verify the server: {problem}",
                "give a readable PEM CA bundle, or omit it to use the RDS bundle")
    return str(path)


def _context(setting: str, value: object) -> ContextCheck:
    if not isinstance(value, ssl.SSLContext):
        refuse(f"{setting}={_v(value)}", "is not an ssl.SSLContext this driver would verify with",
                _DEFAULT_FIX)
    found = context_problem(value)
    if isinstance(found, str):
        refuse(f"{setting}=<SSLContext>", found,
                "use ssl.create_default_context(cafile=<RDS bundle>), or omit it")
    return found


def _from_context(setting: str, value: object) -> Transport:
    check = _context(setting, value)
    return Transport(True, check.roots, check.hostname_checked, True,
                     None if check.hostname_checked else f"{setting} with check_hostname=False")


def _wants_default(value: object) -> bool:
    """Absent, or a plain "yes, TLS" (``True``, ``"true"``): the row fills in its default."""
    return value is None or _as_bool(value) is True


# -- scrubbing the token off a connection ------------------------------------------------------

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


def _no_scrub(connection: Any) -> None:
    """libpq and libmysqlclient keep the password in C memory we cannot reach."""
