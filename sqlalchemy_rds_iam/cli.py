"""The ``sqlalchemy-rds-iam`` command: tokens, native clients, CA bundle, doctor, emulator.

Every command takes the same URL an engine would (``...?plugin=rds_iam&aws_region=...``),
so what works here works in ``create_engine``. Tokens reach native clients through their
environment (``PGPASSWORD``, ``MYSQL_PWD``), never through argv, where ``ps`` shows them.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .errors import CredentialsError, InsecureConnectionError, RdsIamError

if TYPE_CHECKING:
    from .plugin import IamConnector

__all__ = ["main"]

_URL_HELP = (
    "SQLAlchemy URL without password, e.g. "
    "'postgresql+psycopg2://iamuser@db.cluster-abc.us-east-1.rds.amazonaws.com/app'; the "
    "plugin's query options apply (aws_region, aws_profile, aws_role_arn, iam_host, iam_port, "
    "iam_ca_bundle, iam_tls, iam_token_lifetime, ...); ?plugin=rds_iam may be present or not"
)
_EPILOG = """\
exit status: 0 success; 1 unexpected error; 2 bad options or usage; doctor uses 2-10 to name
the failing step (options 2, region 3, credentials 4, dns 5, tcp 6, tls 7, certificate 8,
token 9, login 10).
AWS credentials come from botocore's default chain (environment, profile via aws_profile=
or AWS_PROFILE, SSO, container or instance role)."""


def _connector(text: str) -> tuple[IamConnector, object]:
    import sqlalchemy as sa

    from .options import parse_options
    from .plugin import IamConnector

    try:
        url = sa.make_url(text).difference_update_query(["plugin", "plugins"])
        dialect = url.get_dialect()()
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise RdsIamError(f"not a usable SQLAlchemy URL: {exc}") from None
    ours = parse_options(url.query)
    from .options import OPTION_NAMES

    driver_url = url.difference_update_query(OPTION_NAMES)
    return IamConnector(driver_url, dialect, ours), driver_url


def _token(args: argparse.Namespace) -> int:
    connector, _ = _connector(args.url)
    print(connector.token())
    return 0


def _redacted(env: dict[str, str], secret_name: str, argv: list[str], url: str) -> str:
    assignments = [f"{k}={shlex.quote(v)}" for k, v in env.items() if k != secret_name]
    token_cmd = f'"$(sqlalchemy-rds-iam token {shlex.quote(url)})"'
    return " ".join([f"{secret_name}={token_cmd}", *assignments, *map(shlex.quote, argv)])


def _run_client(
    args: argparse.Namespace,
    env: dict[str, str],
    secret: str,
    argv: list[str],
    connector: IamConnector,
) -> int:
    if args.print:
        print(_redacted(env, secret, argv, args.url))
        return 0
    binary = shutil.which(argv[0])
    if binary is None:
        raise RdsIamError(
            f"{argv[0]} is not installed (Debian: apt-get install "
            f"{'postgresql-client' if secret == 'PGPASSWORD' else 'mariadb-client'})"  # noqa: S105
        )
    env[secret] = connector.token()
    return subprocess.call([binary, *argv[1:]], env={**os.environ, **env})  # noqa: S603


def _psql(args: argparse.Namespace) -> int:
    connector, url = _connector(args.url)
    query = dict(getattr(url, "query", {}))
    mode = str(query.get("sslmode", connector.tls_mode))
    if mode in {"disable", "allow", "prefer"}:
        raise InsecureConnectionError(f"refusing to send an IAM token with sslmode={mode}")
    env = {
        "PGHOST": str(getattr(url, "host", None) or connector.host),
        "PGPORT": str(getattr(url, "port", None) or connector.port),
        "PGUSER": connector.user,
        "PGSSLMODE": mode,
        "PGSSLROOTCERT": str(query.get("sslrootcert", connector.ca_bundle)),
    }
    database = getattr(url, "database", None)
    if database:
        env["PGDATABASE"] = str(database)
    return _run_client(args, env, "PGPASSWORD", ["psql", *args.client_args], connector)


def _is_mariadb_client(name: str) -> bool:
    """MariaDB's client always allows cleartext auth and warns on Oracle's switch for it."""
    path = shutil.which(name)
    return path is not None and os.path.basename(os.path.realpath(path)).startswith("mariadb")


def _mysql(args: argparse.Namespace) -> int:
    connector, url = _connector(args.url)
    client = "mysql" if shutil.which("mysql") or not shutil.which("mariadb") else "mariadb"
    argv = [
        client,
        f"--host={getattr(url, 'host', None) or connector.host}",
        f"--port={getattr(url, 'port', None) or connector.port}",
        f"--user={connector.user}",
        f"--ssl-ca={connector.ca_bundle}",
    ]
    if not _is_mariadb_client(client):
        argv.append("--enable-cleartext-plugin")  # Oracle's client refuses cleartext without it
    if connector.tls_mode == "verify-full":
        argv.append("--ssl-verify-server-cert")
    database = getattr(url, "database", None)
    argv += [*args.client_args, *([str(database)] if database else [])]
    return _run_client(args, {}, "MYSQL_PWD", argv, connector)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _ca_path(args: argparse.Namespace) -> int:
    from .cabundle import COMBINED, TRUST_STORES, bundle_path

    for name in (*TRUST_STORES, COMBINED):
        print(f"{name:<22} {bundle_path(name)}")
    return 0


def _ca_update(args: argparse.Namespace) -> int:
    from .cabundle import update

    for name, path, count in update(args.base):
        print(f"{name:<22} {count:>3} certificates stored in {path}")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from .doctor import EXIT_CODES, Step, diagnose

    def show(step: Step) -> None:
        if not args.json:
            mark = "ok  " if step.ok else "FAIL"
            print(f"[{mark}] {step.name:<11} {step.detail}")
            if step.fix:
                print("       fix: " + step.fix.replace("\n", "\n       "))

    steps = diagnose(args.url, timeout=args.timeout, on_step=show, whoami=args.whoami)
    failed = next((s for s in steps if not s.ok), None)
    code = EXIT_CODES[failed.name] if failed else 0
    if args.json:
        print(
            json.dumps(
                {
                    "ok": failed is None,
                    "exit_code": code,
                    "failed_step": failed.name if failed else None,
                    "steps": [s.to_dict() for s in steps],
                },
                indent=2,
            )
        )
    return code


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, for ``main`` and for documentation."""
    parser = argparse.ArgumentParser(
        prog="sqlalchemy-rds-iam",
        description="IAM database authentication for SQLAlchemy on Amazon RDS, Aurora, RDS Proxy.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

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
            "token is passed in the environment, never on the command line. Arguments after the "
            "URL go to the client (put them after --).",
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
    ca_commands = ca.add_subparsers(title="commands", metavar="COMMAND")
    path = ca_commands.add_parser(
        "path",
        help="list each trust store and the file it uses",
        description="Print each trust store's name and the file used when iam_ca_bundle is "
        "not given: the one `ca update` stored, else the copy shipped in the package.",
    )
    path.set_defaults(func=_ca_path)
    from .cabundle import CACHE_DIR_ENV

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
        help="a mirror (https:// or file://) holding global-bundle.pem, govcloud-bundle.pem, "
        "china-bundle.pem and amazon-trust-roots.pem, instead of AWS's own URLs",
    )
    update.set_defaults(func=_ca_update)

    doctor = commands.add_parser(
        "doctor",
        help="diagnose a failing IAM login step by step",
        description="Check options, region, credentials, DNS, TCP, TLS and the server "
        "certificate, the token, and the login, stopping at the first failure with what to fix.",
        epilog=_EPILOG,
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

    add_emulator_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    if getattr(args, "client_args", None) and args.client_args[0] == "--":
        args.client_args = args.client_args[1:]
    try:
        code: int = func(args)
    except CredentialsError as exc:
        from .doctor import EXIT_CODES

        print(f"sqlalchemy-rds-iam: error: {exc}", file=sys.stderr)
        return EXIT_CODES["credentials"]
    except RdsIamError as exc:
        print(f"sqlalchemy-rds-iam: error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
