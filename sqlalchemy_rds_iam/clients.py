"""What the native clients (``psql``, ``mysql``/``mariadb``) are started with.

The CLI hands them the engine's :class:`~.target.Target` and nothing the environment or a
configuration file could change: ``psql`` gets one explicit conninfo (``--dbname=...``, which
libpq applies after ``-h``/``-p``/``-U``) and an environment without the ``PG*`` variables and
service files that could move the connection or weaken TLS; ``mysql`` reads no option file
(``--no-defaults``) and gets host, port, protocol and TLS on its command line. Client
arguments that would connect elsewhere are refused. The token is never in argv: psql
finds it in a private libpq password file for exactly the target's host, port and user
(:func:`password_file`), so neither ``\\connect`` to another server nor a ``\\!`` shell
command gets it; mysql in its environment (``MYSQL_PWD``: readable by the same user only).
The ``--print`` line, for a shell, sets ``PGPASSWORD`` / ``MYSQL_PWD``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from .errors import ConfigurationError

__all__ = [
    "ClientCommand", "child_environment", "mysql_command", "password_file", "psql_command",
]


@dataclass(frozen=True)
class ClientCommand:
    """A client's argv, the variables it must not inherit, and the one that carries the token."""

    argv: list[str]
    secret: str
    """``PGPASSWORD`` or ``MYSQL_PWD``: set to the token in the child's environment only."""
    removed: tuple[str, ...]
    """Exact variable names the child does not inherit."""
    removed_prefixes: tuple[str, ...] = field(default=())
    """Families of variables the child does not inherit (``PGHOST*``, ``PGSSL*``)."""
    passfile_login: tuple[str, str, str] | None = None
    """psql's (host, port, user): started by the CLI, it finds the token in a password file
    for that login only (:func:`password_file`, ``PGPASSFILE``), not in :attr:`secret`."""

    def drops(self, name: str) -> bool:
        return name in self.removed or name == self.secret or name.startswith(
            self.removed_prefixes)


def child_environment(environ: Mapping[str, str], command: ClientCommand,
                      token: str | None) -> dict[str, str]:
    """``environ`` without what could move or weaken the connection, plus the token (in
    :attr:`~ClientCommand.secret`; ``None``: nowhere, psql's is in its password file)."""
    env = {k: v for k, v in environ.items() if not command.drops(k)}
    if token is not None:
        env[command.secret] = token
    return env


def _pgpass_field(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


@contextmanager
def password_file(host: str, port: str, user: str, token: str) -> Iterator[str]:
    """The path of a libpq password file offering ``token`` to ``host:port`` as ``user`` only
    (any database), removed when the block ends.

    libpq reads ``PGPASSWORD`` for every connection a process makes; psql's ``\\connect``
    to another server (its TLS as that command line says) and the programs its ``\\!`` runs
    would get the token from there. A file entry matches this login only, and the path is
    all the environment holds. Mode 0600 in a fresh 0700 directory (``tempfile.mkdtemp``).
    """
    directory = tempfile.mkdtemp(prefix="sqlalchemy-rds-iam-")
    path = os.path.join(directory, "pgpass")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(":".join(_pgpass_field(v) for v in (host, port, "*", user, token)) + "\n")
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def shell_line(command: ClientCommand, url: str) -> str:
    """The command as a shell line, with ``$(sqlalchemy-rds-iam token URL)`` for the token."""
    unset = [f"-u {name}" for name in command.removed if name != command.secret]
    # prefix families: the names known today (the child drops any other of the family too)
    unset += [f"-u {name}" for name in _KNOWN_FAMILY_NAMES if name.startswith(
        command.removed_prefixes)]
    token_cmd = f'"$(sqlalchemy-rds-iam token {shlex.quote(url)})"'
    return " ".join(["env", *unset, f"{command.secret}={token_cmd}",
                     *map(shlex.quote, command.argv)])


def _refuse_argument(argument: str, client: str, fix: str) -> ConfigurationError:
    return ConfigurationError(
        f"refusing the {client} argument {argument!r}: the client must connect to the URL's "
        f"host, port and user, which the token is signed for; {fix}"
    )


# -- psql -----------------------------------------------------------------------------------

#: libpq variables that could move the connection or weaken TLS (or read a password file),
#: and ``PGPASSWORD``, which libpq would offer to any server (the token is in our passfile).
_PSQL_DROPPED = (
    "PGPASSWORD", "PGSERVICE", "PGSERVICEFILE", "PGREQUIRESSL", "PGGSSENCMODE", "PGPASSFILE",
    "PGPORT", "PGUSER", "PGDATABASE", "PGKRBSRVNAME", "PGGSSLIB", "PGGSSDELEGATION",
    "PGTARGETSESSIONATTRS", "PGLOADBALANCEHOSTS", "SSLKEYLOGFILE",
    "POSIXLY_CORRECT",  # keeps psql's option parsing the one read below
)
_PSQL_DROPPED_PREFIXES = ("PGHOST", "PGSSL")
_KNOWN_FAMILY_NAMES = (
    "PGHOST", "PGHOSTADDR", "PGSSLMODE", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY", "PGSSLCRL",
    "PGSSLCRLDIR", "PGSSLSNI", "PGSSLCOMPRESSION", "PGSSLCERTMODE", "PGSSLNEGOTIATION",
    "PGSSLMINPROTOCOLVERSION", "PGSSLMAXPROTOCOLVERSION",
)

#: psql's short options that take a value (``startup.c``).
_PSQL_SHORT_WITH_VALUE = frozenset("cdfFhLopPRTUv")
#: psql's long options: name -> takes a value.
_PSQL_LONG = {
    "echo-all": False, "no-align": False, "command": True, "dbname": True,
    "echo-queries": False, "echo-errors": False, "echo-hidden": False, "file": True,
    "field-separator": True, "field-separator-zero": False, "host": True, "html": False,
    "list": False, "log-file": True, "no-readline": False, "single-transaction": False,
    "output": True, "port": True, "pset": True, "quiet": False, "record-separator": True,
    "record-separator-zero": False, "single-step": False, "single-line": False,
    "tuples-only": False, "table-attr": True, "username": True, "set": True, "variable": True,
    "version": False, "no-password": False, "password": False, "expanded": False,
    "no-psqlrc": False, "help": False, "csv": False,
}
_PSQL_MOVING = {"h": "host", "p": "port", "U": "username", "d": "dbname"}


def _check_psql_arguments(arguments: Sequence[str]) -> None:
    """Refuse ``-h``/``-p``/``-U``/``-d`` in any spelling getopt accepts (clusters,
    attached values, unambiguous prefixes of long names); values of other options skipped."""
    fix = "put them in the URL instead"
    items = iter(arguments)
    for argument in items:
        if argument == "--":
            return  # the rest is positional: at most a user name, which the conninfo overrides
        if argument.startswith("--"):
            name, has_value, _ = argument[2:].partition("=")
            candidates = [n for n in _PSQL_LONG if n == name] or [
                n for n in _PSQL_LONG if n.startswith(name)]
            if any(n in _PSQL_MOVING.values() for n in candidates):
                raise _refuse_argument(argument, "psql", fix)
            if len(candidates) == 1 and _PSQL_LONG[candidates[0]] and not has_value:
                next(items, None)
        elif argument.startswith("-") and len(argument) > 1:
            for index, char in enumerate(argument[1:], start=1):
                if char in _PSQL_MOVING:
                    raise _refuse_argument(argument, "psql", fix)
                if char in _PSQL_SHORT_WITH_VALUE:
                    if index == len(argument) - 1:
                        next(items, None)
                    break


def conninfo(parameters: Mapping[str, str]) -> str:
    """A libpq conninfo string; a value with a space, a quote or a backslash (or none) is
    quoted, so no value can add a keyword."""
    def quote(value: str) -> str:
        if value and not any(c.isspace() or c in "'\\" for c in value):
            return value
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    return " ".join(f"{key}={quote(value)}" for key, value in parameters.items())


def psql_command(parameters: Mapping[str, str], arguments: Sequence[str]) -> ClientCommand:
    """``psql --dbname=<conninfo> ARGS``: ``parameters`` are the checked libpq keywords
    (host, port, user, dbname, sslmode, sslrootcert, gssencmode)."""
    _check_psql_arguments(arguments)
    login = (parameters["host"], parameters.get("port", "5432"), parameters.get("user", ""))
    return ClientCommand(
        ["psql", f"--dbname={conninfo(parameters)}", *arguments],
        "PGPASSWORD", _PSQL_DROPPED, _PSQL_DROPPED_PREFIXES, passfile_login=login,
    )


# -- mysql / mariadb ----------------------------------------------------------------------

_MYSQL_DROPPED = (
    "MYSQL_HOST", "MYSQL_TCP_PORT", "MYSQL_UNIX_PORT", "MYSQL_TEST_LOGIN_FILE",
    "LIBMYSQL_PLUGINS", "LIBMYSQL_PLUGIN_DIR", "MARIADB_PLUGIN_DIR", "SSLKEYLOGFILE",
)
#: Long options (or their families) that move the connection, change TLS or read option files.
_MYSQL_MOVING = (
    "host", "port", "user", "socket", "protocol", "pipe", "shared-memory-base-name",
    "bind-address", "defaults-file", "defaults-extra-file", "defaults-group-suffix",
    "login-path", "plugin-dir", "default-auth", "ssl", "tls", "get-server-public-key",
    "server-public-key-path", "dns-srv-name",
)
_MYSQL_PREFIXES = ("loose-", "skip-", "disable-", "enable-", "maximum-")
_MYSQL_SHORT_MOVING = frozenset("hPuSW")
_MYSQL_SHORT_WITH_VALUE = frozenset("eDhPuSp#")


def _mysql_long_moves(name: str) -> bool:
    name = name.lower().replace("_", "-")
    for prefix in _MYSQL_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    if not name:
        return False
    # exact names, families (ssl-*, tls-*) and unambiguous prefixes the client expands
    return any(moving == name or name.startswith(moving + "-") or moving.startswith(name)
               for moving in _MYSQL_MOVING)


def _check_mysql_arguments(arguments: Sequence[str], client: str) -> None:
    fix = "put host, port and user in the URL, and TLS in iam_tls/iam_ca_bundle"
    for argument in arguments:  # values are not skipped: a false refusal beats a leak
        if argument.startswith("--"):
            if _mysql_long_moves(argument[2:].partition("=")[0]):
                raise _refuse_argument(argument, client, fix)
        elif argument.startswith("-") and len(argument) > 1:
            for char in argument[1:]:
                if char in _MYSQL_SHORT_MOVING:
                    raise _refuse_argument(argument, client, fix)
                if char in _MYSQL_SHORT_WITH_VALUE:
                    break


def mysql_command(
    client: str, *, mariadb: bool, host: str, port: int, user: str, ca_bundle: str,
    tls_mode: str, database: str | None, arguments: Sequence[str],
) -> ClientCommand:
    """``mysql --no-defaults`` with host, port, TCP and TLS explicit, then ``arguments``."""
    _check_mysql_arguments(arguments, client)
    argv = [client, "--no-defaults", f"--host={host}", f"--port={port}", "--protocol=TCP",
            f"--user={user}", f"--ssl-ca={ca_bundle}"]
    if mariadb:
        argv.append("--ssl")
    else:
        # Oracle's client: an explicit mode (no option file can lower it) and cleartext auth
        argv += [f"--ssl-mode={'VERIFY_IDENTITY' if tls_mode == 'verify-full' else 'VERIFY_CA'}",
                 "--enable-cleartext-plugin"]
    if mariadb and tls_mode == "verify-full":
        argv.append("--ssl-verify-server-cert")  # Oracle's 8.0 client knows only --ssl-mode
    argv += [*arguments, *([database] if database else [])]
    return ClientCommand(argv, "MYSQL_PWD", _MYSQL_DROPPED)


def environ() -> dict[str, str]:
    """This process's environment (a seam for tests)."""
    return dict(os.environ)
