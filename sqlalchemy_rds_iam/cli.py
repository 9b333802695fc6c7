"""The ``sqlalchemy-rds-iam`` command: tokens, native clients, CA bundle, doctor, emulator.

Every command takes the same URL an engine would (``...?plugin=rds_iam&aws_region=...``),
so what works here works in ``create_engine``. Tokens reach native clients through a
private password file for the target's login only (psql) or the environment (``MYSQL_PWD``),
never through argv, where ``ps`` shows them; what else the clients get is ``clients.py``'s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn, cast

from .doctor import ERROR_EXIT_CODES, EXIT_CODES, UNEXPECTED_EXIT_CODE
from .errors import ConfigurationError, RdsIamError
from .pipes import survives_closed_stdout

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from .clients import ClientCommand
    from .plugin import IamConnector

__all__ = ["ERROR_EXIT_CODES", "build_parser", "main"]

_URL_HELP = (
    "SQLAlchemy URL without password, e.g. "
    "'postgresql+psycopg2://iamuser@db.cluster-abc.us-east-1.rds.amazonaws.com/app'; the "
    "plugin's query options apply (aws_region, aws_profile, aws_role_arn, iam_host, iam_port, "
    "iam_ca_bundle, iam_tls, iam_token_lifetime, ...); ?plugin=rds_iam may be present or not"
)

# ERROR_EXIT_CODES: exit code per error class, most specific first; declared once, by
# doctor's step table (a failing step and the same error elsewhere exit alike).
#: A command line that does not parse is bad options: the options step's code (argparse's 2).
USAGE_EXIT_CODE = EXIT_CODES["options"]
#: The codes no step owns, and what they mean: for ``--help`` and the docs' exit-code table.
OTHER_EXIT_CODES = (
    (0, "success"),
    (UNEXPECTED_EXIT_CODE, "a failure the message explains (a download, a client that cannot "
                           "start) or an unexpected error"),
)


def exit_code_for(exc: RdsIamError) -> int:
    """The exit status for an error of this package."""
    return next(code for cls, code in ERROR_EXIT_CODES if isinstance(exc, cls))


def _epilog() -> str:
    import textwrap

    from .doctor import error_codes_text, exit_codes_text

    others = "; ".join(f"{code} {meaning}" for code, meaning in OTHER_EXIT_CODES)
    paragraphs = (
        f"exit status: {others}; {error_codes_text()}. doctor exits with the failing step's "
        f"code: {exit_codes_text()}.",
        "AWS credentials come from botocore's default chain (environment, profile via "
        "aws_profile= or AWS_PROFILE, SSO, container or instance role).",
    )
    return "\n".join(textwrap.fill(p, 88) for p in paragraphs)


#: The driver whose dialect stands for each family in the CLI: its ``create_connect_args``
#: imports nothing, so the URL's own Python driver never needs to be installed.
_REFERENCE_DIALECT = {"postgresql": "postgresql+psycopg2", "mysql": "mysql+mysqlconnector"}


def _connector(text: str, family: str | None = None) -> tuple[IamConnector, URL]:
    """The token signer for a URL, and the URL without our options, importing no driver.

    The CLI signs tokens and starts native clients: the URL's Python driver plays no part, so
    the options are checked as ``create_engine`` checks them, against the family's reference
    dialect. ``family`` refuses a URL of the other database family.
    """
    import sqlalchemy as sa

    from .drivers import driver_for
    from .options import parse_options
    from .plugin import IamConnector
    from .target import plain_url, without_options

    try:
        url = plain_url(text)
        dialect_cls = url.get_dialect()
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ValueError) as exc:
        raise ConfigurationError(f"not a usable SQLAlchemy URL: {exc}") from None
    spec = driver_for(dialect_cls.name, dialect_cls.driver, is_async=dialect_cls.is_async)
    if family is not None and spec.family != family:
        command = "psql" if spec.family == "postgresql" else "mysql"
        raise ConfigurationError(
            f"{url.drivername}:// is a {spec.family} URL: use `sqlalchemy-rds-iam {command}`"
        )
    options = parse_options(url.query)
    reference = sa.engine.URL.create(_REFERENCE_DIALECT[spec.family]).get_dialect()()
    bare = url.set(drivername=_REFERENCE_DIALECT[spec.family], query={})
    return IamConnector(bare, reference, options), without_options(url)


def _token(args: argparse.Namespace) -> int:
    connector, _ = _connector(args.url)
    print(connector.token())
    return 0


def _run_client(args: argparse.Namespace, command: ClientCommand, connector: IamConnector) -> int:
    from .clients import child_environment, environ, password_file, shell_line

    if args.print:
        print(shell_line(command, args.url))
        return 0
    binary = shutil.which(command.argv[0])
    if binary is None:
        package = "postgresql-client" if command.secret == "PGPASSWORD" else "mariadb-client"  # noqa: S105
        raise RdsIamError(f"{command.argv[0]} is not installed (Debian: apt-get install {package})")
    token = connector.token()
    if command.passfile_login is None:
        env = child_environment(environ(), command, token)
        return subprocess.call([binary, *command.argv[1:]], env=env)  # noqa: S603
    with password_file(*command.passfile_login, token) as path:  # psql: for this login only
        env = {**child_environment(environ(), command, None), "PGPASSFILE": path}
        return subprocess.call([binary, *command.argv[1:]], env=env)  # noqa: S603


def _psql(args: argparse.Namespace) -> int:
    from .clients import psql_command

    connector, url = _connector(args.url, family="postgresql")
    target = connector.target
    host, port = target.address
    parameters: dict[str, object] = {"host": host, "port": port, "user": target.user}
    if url.database:
        parameters["dbname"] = url.database
    # The URL's TLS words, if any, then the plugin's defaults: checked as create_engine does.
    parameters.update({k: url.query[k] for k in ("sslmode", "sslrootcert") if k in url.query})
    target.check(parameters)  # raises InsecureConnectionError for sslmode=require ...
    keys = ("host", "port", "user", "dbname", "sslmode", "sslrootcert", "gssencmode")
    command = psql_command({k: str(parameters[k]) for k in keys if k in parameters},
                           args.client_args)
    return _run_client(args, command, connector)


def _is_mariadb_client(name: str) -> bool:
    """MariaDB's client always allows cleartext auth and warns on Oracle's switch for it."""
    path = shutil.which(name)
    return path is not None and os.path.basename(os.path.realpath(path)).startswith("mariadb")


def _mysql(args: argparse.Namespace) -> int:
    from .clients import mysql_command

    connector, url = _connector(args.url, family="mysql")
    target = connector.target
    client = "mysql" if shutil.which("mysql") or not shutil.which("mariadb") else "mariadb"
    host, port = target.address
    command = mysql_command(
        client, mariadb=_is_mariadb_client(client), host=host, port=port, user=target.user,
        ca_bundle=target.ca_bundle, tls_mode=target.tls_mode, database=url.database,
        arguments=args.client_args,
    )
    return _run_client(args, command, connector)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return USAGE_EXIT_CODE


def _ca_path(args: argparse.Namespace) -> int:
    from .cabundle import COMBINED, TRUST_STORES, bundle_path

    for name in (*TRUST_STORES, COMBINED):
        print(f"{name:<22} {bundle_path(name)}")
    return 0


def _ca_update(args: argparse.Namespace) -> int:
    from .cabundle import update

    try:
        stored = update(args.base)
    except ValueError as exc:  # urllib's word for a malformed URL
        raise ConfigurationError(f"not a usable URL {args.base!r}: {exc}") from None
    for name, path, count in stored:
        print(f"{name:<22} {count:>3} certificates stored in {path}")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from .doctor import Step, diagnose, exit_code_of

    def show(step: Step) -> None:
        if not args.json:
            mark = "ok  " if step.ok else ("FAIL" if step.fatal else "warn")
            print(f"[{mark}] {step.name:<11} {step.detail}")
            if step.fix:
                print("       fix: " + step.fix.replace("\n", "\n       "))

    steps = diagnose(args.url, timeout=args.timeout, on_step=show, whoami=args.whoami)
    failed = next((s for s in steps if not s.ok and s.fatal), None)
    code = exit_code_of(steps)
    if args.json:
        _print_json(
            {
                "ok": code == 0,
                "exit_code": code,
                "failed_step": failed.name if failed else None,
                "steps": [s.to_dict() for s in steps],
            }
        )
    return code


def _print_json(document: dict[str, object]) -> None:
    print(json.dumps(document, indent=2))


class _UsageError(Exception):
    """argparse's complaint, raised instead of exiting so that ``--json`` can answer in JSON."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: error: {message}")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, for ``main`` and for documentation."""
    parser = _Parser(
        prog="sqlalchemy-rds-iam",
        description="IAM database authentication for SQLAlchemy on Amazon RDS, Aurora, RDS Proxy.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(
        title="commands", metavar="COMMAND", parser_class=_Parser
    )

    token = commands.add_parser(
        "token",
        help="print an IAM token for URL",
        description="Print an IAM authentication token for the URL's "
        "user, host and port (like `aws rds generate-db-auth-token`).",
    )
    token.add_argument("url", metavar="URL", help=_URL_HELP)
    token.set_defaults(func=_token)

    for name, func, client in (("psql", _psql, "psql"), ("mysql", _mysql, "mysql/mariadb")):
        sub = commands.add_parser(
            name,
            help=f"start {client} logged in with a token",
            description=f"Start {client} with a fresh token and the plugin's TLS settings. The "
            "token is passed in the environment, never on the command line; variables and "
            "option files that could send it elsewhere are ignored. Arguments after the URL go "
            "to the client (put them after --); host, port, user and TLS options are refused.",
        )
        sub.add_argument("url", metavar="URL", help=_URL_HELP)
        sub.add_argument(
            "--print",
            action="store_true",
            help="print the command (with a $(sqlalchemy-rds-iam token ...) "
            "substitution in place of the token) instead of running it",
        )
        sub.add_argument(
            "client_args", nargs=argparse.REMAINDER, metavar="ARGS", help=f"arguments for {client}"
        )
        sub.set_defaults(func=func)

    ca = commands.add_parser(
        "ca",
        help="the trust stores: where they are, refresh them",
        description="The CA bundles the plugin verifies servers with, one per kind of "
        "endpoint (RDS per partition, Amazon roots for RDS Proxy and DSQL).",
    )
    ca.set_defaults(func=lambda args: _help(ca))
    ca_commands = ca.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    path = ca_commands.add_parser(
        "path",
        help="list each trust store and the file it uses",
        description="Print each trust store's name and the file used when iam_ca_bundle is "
        "not given: the one `ca update` stored, else the copy shipped in the package.",
    )
    path.set_defaults(func=_ca_path)
    from .cabundle import CACHE_DIR_ENV, TRUST_STORES

    *files, last = (store.filename for store in TRUST_STORES.values())
    update = ca_commands.add_parser(
        "update",
        help="download AWS's current bundles",
        description="Download every trust store (the RDS bundles of the commercial, GovCloud "
        "and China partitions, the Amazon Trust Services roots), check that each parses, and "
        f"store them in the user cache directory (${CACHE_DIR_ENV}, else $XDG_CACHE_HOME or "
        "~/.cache, /sqlalchemy-rds-iam/), where the plugin finds them.",
    )
    update.add_argument(
        "--from",
        dest="base",
        metavar="URL",
        help=f"a mirror (https:// or file://) holding {', '.join(files)} and {last}, instead "
        "of AWS's own URLs",
    )
    update.set_defaults(func=_ca_update)

    doctor = commands.add_parser(
        "doctor",
        help="diagnose a failing IAM login step by step",
        description="Check options (as create_engine does), region, credentials, DNS, TCP, TLS "
        "and the server certificate, the token, and the login, stopping at the first failure "
        "with what to fix (a failed --whoami is reported and the steps go on).",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    doctor.add_argument("url", metavar="URL", help=_URL_HELP)
    doctor.add_argument("--json", action="store_true", help="print the steps as JSON")
    doctor.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for the network (default 5)"
    )
    doctor.add_argument(
        "--whoami",
        action="store_true",
        help="also ask AWS STS whose credentials these are (GetCallerIdentity; needs network "
        "access to STS, or AWS_ENDPOINT_URL_STS)",
    )
    doctor.set_defaults(func=_doctor)

    from .testing.cli import add_emulator_parser

    # _Parser is an ArgumentParser; the emulator's module just does not know it
    add_emulator_parser(cast("argparse._SubParsersAction[argparse.ArgumentParser]", commands))
    return parser


def _split_client_args(args: argparse.Namespace) -> None:
    """Ours before the first ``--`` (``--print``, in any position), the client's after it."""
    arguments: list[str] = args.client_args
    cut = arguments.index("--") if "--" in arguments else len(arguments)
    before, after = arguments[:cut], arguments[cut + 1:]
    if "--print" in before:
        args.print = True
        before = [a for a in before if a != "--print"]
    args.client_args = before + after


@survives_closed_stdout
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status. Expected failures print one line.

    A reader that stops early (``| head``) ends it with exit status 141 and no traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    wants_json = "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        if wants_json:
            _print_json({"ok": False, "exit_code": USAGE_EXIT_CODE, "error": str(exc)})
        else:
            parser.print_usage(sys.stderr)
            print(exc, file=sys.stderr)
        return USAGE_EXIT_CODE
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return USAGE_EXIT_CODE
    if getattr(args, "client_args", None) is not None:
        _split_client_args(args)
    try:
        code: int = func(args)
    except RdsIamError as exc:
        code = exit_code_for(exc)
        message = " ".join(str(exc).split())  # one line, whatever botocore's text held
        if getattr(args, "json", False):
            _print_json({"ok": False, "exit_code": code, "error": message})
        else:
            print(f"sqlalchemy-rds-iam: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
