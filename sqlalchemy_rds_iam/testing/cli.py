"""``sqlalchemy-rds-iam emulator start|stop|status|env|retire``: the emulator from the command line.

The top-level CLI calls :func:`add_emulator_parser`; each subcommand's ``func`` takes the
parsed arguments and returns the exit status.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from sqlalchemy_rds_iam.testing.emulator import (
    DEFAULT_STATE_DIR,
    STATE_DIR_ENV,
    Emulator,
    default_state_dir,
)
from sqlalchemy_rds_iam.testing.errors import EmulatorError
from sqlalchemy_rds_iam.testing.info import EmulatorInfo, Identity
from sqlalchemy_rds_iam.testing.servers import SERVER_NAMES

__all__ = ["add_emulator_parser"]

_DESCRIPTION = """\
A local stand-in for Amazon RDS IAM authentication: private PostgreSQL, MariaDB and PgBouncer
servers (TLS from a throwaway CA) that accept only valid IAM tokens, checked by a verifier that
recomputes the SigV4 signature against throwaway AWS identities (and your own, --identity).
Needs the [testing] extra (pip install 'sqlalchemy-rds-iam[testing]'), root (it writes
/etc/pam.d) and the Debian packages of the servers it runs (postgresql, mariadb-server,
pgbouncer), plus gcc and libpam0g-dev to build its PAM module. The machine's own database
services are never touched. Try it: start, then eval "$(sqlalchemy-rds-iam emulator env)"."""

_STATE_HELP = f"state directory of the emulator (default: ${STATE_DIR_ENV} or {DEFAULT_STATE_DIR})"


def add_emulator_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``emulator`` and its ``start``, ``stop``, ``status``, ``env``, ``retire``."""
    parser = subparsers.add_parser(
        "emulator",
        help="run a local RDS IAM emulator (PostgreSQL, MariaDB, PgBouncer) for tests",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=lambda args: _usage(parser))
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    start = commands.add_parser(
        "start",
        help="start the emulator, or report the running one",
        description="Start the emulator's servers, or, if they are already running, report "
        "them (idempotent). A stale emulator left by a crashed run is cleaned up and "
        "started afresh. Prints the servers, CA bundle, region and identities to sign with.",
    )
    start.add_argument(
        "--json",
        action="store_true",
        help="print everything a client needs as JSON: per server host, port, database, "
        "users, CA path; the region; each identity's access key id, secret access key and "
        "session token (all throwaway)",
    )
    start.add_argument("--state-dir", metavar="DIR", help=_STATE_HELP)
    start.add_argument(
        "--servers",
        metavar="LIST",
        type=_server_list,
        help="comma-separated servers to run among postgresql, mysql, pgbouncer (default: "
        "every one installed; a note names each one skipped)",
    )
    start.add_argument(
        "--without-pgbouncer",
        action="store_true",
        help="leave out PgBouncer (same as --servers postgresql,mysql)",
    )
    start.add_argument(
        "--identity",
        metavar="NAME=ACCESS_KEY_ID:SECRET[:SESSION_TOKEN]",
        action="append",
        type=_identity,
        default=[],
        help="an identity the verifier accepts, besides the throwaway ones (repeatable); "
        "added to a running emulator too",
    )
    start.add_argument(
        "--iam-rate-limit",
        metavar="N",
        type=int,
        help="throttle IAM logins as RDS does: refuse tokens not seen before beyond N per "
        "second per server (a reused token is never throttled); 0 turns it off",
    )
    start.set_defaults(func=_start)

    stop = commands.add_parser(
        "stop",
        help="stop the emulator and remove its files",
        description="Stop the emulator's servers, remove its /etc/pam.d files (restoring any "
        "file they replaced) and delete its state directory. Exits 0 also when nothing ran.",
    )
    stop.add_argument("--state-dir", metavar="DIR", help=_STATE_HELP)
    stop.set_defaults(func=_stop)

    status = commands.add_parser(
        "status",
        help="say whether the emulator runs (exit 0) or not (exit 1)",
        description="Report whether the emulator runs. Exit status 0 when it does, 1 when it "
        "does not (or only partly: `start` will then restart it).",
    )
    status.add_argument(
        "--json",
        action="store_true",
        help='print the same JSON as `start --json`, or {"running": false, ...} when not running',
    )
    status.add_argument("--state-dir", metavar="DIR", help=_STATE_HELP)
    status.set_defaults(func=_status)

    env = commands.add_parser(
        "env",
        help="print export lines for eval: AWS identity, region, trust stores, URLs",
        description="Print shell lines to eval (eval \"$(sqlalchemy-rds-iam emulator env)\"): "
        "the throwaway AWS identity and region, SQLALCHEMY_RDS_IAM_TEST_TRUST_STORES (the "
        "trust-store override that makes the default trust stores verify the emulator), and "
        "one URL per server with ?plugin=rds_iam alone: RDS_IAM_POSTGRESQL_URL, "
        "RDS_IAM_MYSQL_URL, RDS_IAM_PROXY_URL (PgBouncer, the RDS Proxy stand-in). Needs a "
        "running emulator.",
    )
    env.add_argument("--state-dir", metavar="DIR", help=_STATE_HELP)
    env.add_argument(
        "--as",
        dest="identity_name",
        metavar="NAME",
        default="primary",
        help="the identity to sign as (default: primary; see `emulator status`)",
    )
    env.set_defaults(func=_env)

    retire = commands.add_parser(
        "retire",
        help="remove an identity from the running emulator (simulates rotation)",
        description="Remove identities from the running emulator: tokens they sign are "
        "refused from the next login on, without a restart. Add identities with "
        "`start --identity`, which also applies to a running emulator.",
    )
    retire.add_argument("names", metavar="NAME", nargs="+", help="identity to remove")
    retire.add_argument("--state-dir", metavar="DIR", help=_STATE_HELP)
    retire.set_defaults(func=_retire)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _server_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SERVER_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"choose among {', '.join(SERVER_NAMES)} (got {text!r})"
        )
    return names


def _identity(text: str) -> Identity:
    try:
        return Identity.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _emulator(args: argparse.Namespace) -> Emulator:
    return Emulator(
        args.state_dir or default_state_dir(),
        pgbouncer=not getattr(args, "without_pgbouncer", False),
        servers=getattr(args, "servers", None),
        identities=getattr(args, "identity", ()),
        rate_limit=getattr(args, "iam_rate_limit", None),
    )


def _print_summary(info: EmulatorInfo, out: TextIO) -> None:
    out.write(f"state dir: {info.state_dir}\nregion:    {info.region}\nCA bundle: {info.ca_path}\n")
    for server in info.servers.values():
        out.write(
            f"{server.name:<11} {server.endpoint:<16} database={server.database} "
            f"users={','.join(server.users)}\n    {server.url()}\n"
        )
        if server.password_user:
            out.write(f"    password user {server.password_user} (password: run with --json)\n")
    if info.topology:
        out.write("AWS-style endpoints (/etc/hosts -> 127.0.0.1; CA per trust store below):\n")
    for ep in info.topology.values():
        out.write(f"    {ep.key:<20} {ep.endpoint}  ({ep.store})\n")
    for store, pem in info.trust_stores.items():
        out.write(f"    stand-in {store:<15} {pem}\n")
    if info.rate_limit:
        out.write(f"IAM rate limit: {info.rate_limit} new tokens per second per server\n")
    for ident in info.identities.values():
        kind = "temporary" if ident.session_token else "long-term"
        out.write(
            f"identity {ident.name:<11} {ident.access_key_id} ({kind}; may connect as "
            f"{','.join(ident.allowed_users)})\n"
        )
    out.write("secrets: run with --json\n")


def _fail(exc: EmulatorError) -> int:
    print(f"sqlalchemy-rds-iam emulator: error: {exc}", file=sys.stderr)
    return 1


def _start(args: argparse.Namespace) -> int:
    try:
        emulator = _emulator(args)
        info, started = emulator.ensure_started()
    except EmulatorError as exc:
        return _fail(exc)
    for name, why in info.skipped.items():
        print(f"note: without {name}: {why}", file=sys.stderr)
    if emulator.link is not None:
        print(
            f"note: {emulator.link} links to {emulator.state_dir}: the servers' accounts "
            "cannot enter a directory above it",
            file=sys.stderr,
        )
    if args.json:
        print(info.to_json())
    else:
        print("started" if started else "already running")
        _print_summary(info, sys.stdout)
    return 0


def _stop(args: argparse.Namespace) -> int:
    try:
        stopped = _emulator(args).stop()
    except EmulatorError as exc:
        return _fail(exc)
    print("stopped" if stopped else "not running")
    return 0


def _status(args: argparse.Namespace) -> int:
    emulator = _emulator(args)
    try:
        info = emulator.status()
    except EmulatorError as exc:
        return _fail(exc)
    if args.json:
        if info is None:
            print(json.dumps({"running": False, "state_dir": str(emulator.state_dir)}))
        else:
            print(info.to_json())
    elif info is None:
        print(f"not running (state dir {emulator.state_dir})")
    else:
        print("running")
        _print_summary(info, sys.stdout)
    return 0 if info is not None else 1


def _env(args: argparse.Namespace) -> int:
    import shlex

    from sqlalchemy_rds_iam.testing.envcmd import env_lines

    emulator = _emulator(args)
    try:
        info = emulator.status()
    except EmulatorError as exc:
        return _fail(exc)
    if info is None:
        return _fail(
            EmulatorError(
                f"no emulator runs in {emulator.state_dir}; start it: "
                "sqlalchemy-rds-iam emulator start"
                + (f" --state-dir {shlex.quote(args.state_dir)}" if args.state_dir else "")
            )
        )
    if args.identity_name not in info.identities:
        return _fail(
            EmulatorError(
                f"no identity {args.identity_name!r}; the emulator has "
                + ", ".join(info.identities)
            )
        )
    print("\n".join(env_lines(info, args.identity_name)))
    return 0


def _retire(args: argparse.Namespace) -> int:
    emulator = _emulator(args)
    try:
        for name in args.names:
            emulator.retire_identity(name)
    except EmulatorError as exc:
        return _fail(exc)
    print("retired " + ", ".join(args.names))
    return 0
