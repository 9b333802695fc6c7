"""Run Lambda functions the way Lambda runs them, against the local RDS IAM emulator.

    python -m sqlalchemy_rds_iam.testing.lambda_local --dir examples/lambda --demo
    python -m sqlalchemy_rds_iam.testing.lambda_local --handler app.lambda_handler --server mysql

Each function runs in its own fresh Python process (:mod:`.lambda_container`, its
"execution environment") with only the environment Lambda would give it: the role's
temporary credentials in ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` /
``AWS_SESSION_TOKEN``, ``AWS_REGION``, ``AWS_LAMBDA_FUNCTION_NAME`` ..., plus the variables
AWS's guide functions read: ``DBEndPoint``, ``DatabaseName``, ``DBUserName`` (and, for local
runs, ``DBPort`` and ``DBCaBundle``). The container imports the handler module from
``--dir`` (``LAMBDA_TASK_ROOT``) once (init), invokes it many times (warm) and simulates a
freeze of ``--freeze`` seconds halfway (default 16 minutes, longer than a token lives).

This runner starts (or reuses) the emulator, runs the containers, and reports
authentication failures (must be 0), the tokens signed, and the logins the emulator's
verifier accepted. ``--demo`` runs AWS's two guide functions (``postgresql_function.py``
and ``mysql_function.py``, in ``examples/lambda`` of the repository and of the sdist) and
prints what they return; it exits non-zero on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy_rds_iam.testing import EmulatorInfo

#: The simulated execution environment, run as a script of its own.
CONTAINER = Path(__file__).resolve().with_name("lambda_container.py")
#: A freeze longer than a token's 15-minute lifetime.
DEFAULT_FREEZE = 16 * 60.0
#: Which emulator identity signs: a temporary one (with a session token), like a role's.
IDENTITY = "temporary"
#: Which of the emulator's IAM users the functions log in as: not the first, which other
#: tests use for deliberately rejected logins, so that the verifier's log is ours to count.
USER_INDEX = 1


@dataclass(frozen=True)
class Function:
    """One example function and the emulated endpoint it talks to."""

    module: str
    server: str
    label: str
    sql: str
    environment: dict[str, str] = field(default_factory=dict)
    handler: str = "lambda_handler"


FUNCTIONS = {
    "postgresql": Function(
        "postgresql_function", "postgresql", "PostgreSQL", "SELECT current_database()"
    ),
    "mysql": Function("mysql_function", "mysql", "MySQL", "select database();"),
    # PgBouncer stands in for RDS Proxy; one connection (and proxy login) per invocation.
    "proxy": Function(
        "postgresql_function",
        "pgbouncer",
        "PostgreSQL via proxy (NullPool)",
        "SELECT current_database()",
        {"DBPool": "null"},
    ),
}


@dataclass
class Report:
    """What one function's run did; ``ok`` says whether it behaved."""

    function: str
    label: str
    endpoint: str
    invocations: int
    freeze_seconds: float
    databases: list[str]
    errors: list[str]
    auth_failures: int
    tokens_signed: int
    connects: int
    stale_connections_replaced: int
    init_ms: float
    first_invocation_ms: float
    warm_median_ms: float
    logins_verified: int = 0
    logins_rejected: int = 0
    rejection_reasons: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        """Why this run failed, empty when it did not."""
        found = []
        if self.errors:
            found.append(f"{len(self.errors)} invocation(s) failed, first: {self.errors[0]}")
        if self.logins_rejected:
            found.append(f"the server rejected {self.logins_rejected} login(s)")
        if self.freeze_seconds >= 900 and self.invocations > 1 and self.tokens_signed < 2:
            found.append("no new token was signed after a freeze longer than a token lives")
        return found


# -- emulator, Lambda environment, one container process per function --------------------


def lambda_environment(
    info: EmulatorInfo, name: str | Function, task_root: str | Path | None = None
) -> dict[str, str]:
    """The environment Lambda would give the function ``name``, pointed at the emulator.

    ``task_root`` (default: the current directory) is where the handler module is.
    """
    function = FUNCTIONS[name] if isinstance(name, str) else name
    label = name if isinstance(name, str) else function.module
    server = info.servers[function.server]
    identity = info.identities[IDENTITY]
    env = {
        # Set by Lambda: the execution role's temporary credentials and the region.
        "AWS_ACCESS_KEY_ID": identity.access_key_id,
        "AWS_SECRET_ACCESS_KEY": identity.secret_access_key,
        "AWS_SESSION_TOKEN": identity.session_token or "",
        "AWS_REGION": info.region,
        "AWS_DEFAULT_REGION": info.region,
        "AWS_LAMBDA_FUNCTION_NAME": f"sqlalchemy-rds-iam-example-{label}",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/sqlalchemy-rds-iam-example-{label}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2025/01/01/[$LATEST]local",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info[0]}.{sys.version_info[1]}",
        "_HANDLER": f"{function.module}.{function.handler}",
        "LAMBDA_TASK_ROOT": str(Path(task_root or Path.cwd()).resolve()),
        "TZ": ":UTC",
        "LANG": "en_US.UTF-8",
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        # Set by the SAM template.
        "DBEndPoint": server.host,
        "DatabaseName": server.database,
        "DBUserName": server.users[USER_INDEX],
        # Local runs only: the emulator's port and CA; ignore the developer's ~/.aws files.
        "DBPort": str(server.port),
        "DBCaBundle": server.ca_path,
        "AWS_CONFIG_FILE": os.path.join(tempfile.gettempdir(), "no-such-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(tempfile.gettempdir(), "no-such-aws-creds"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    if not identity.session_token:
        del env["AWS_SESSION_TOKEN"]
    env.update(function.environment)
    return env


def run_function(
    info: EmulatorInfo,
    name: str | Function,
    *,
    invocations: int = 50,
    freeze: float = DEFAULT_FREEZE,
    python: str = sys.executable,
    task_root: str | Path | None = None,
) -> Report:
    """Run function ``name`` in a fresh container process and check the server's log."""
    function = FUNCTIONS[name] if isinstance(name, str) else name
    root = Path(task_root or Path.cwd())
    if not (root / f"{function.module.replace('.', '/')}.py").is_file():
        raise RuntimeError(
            f"no {function.module}.py in {root}: give --dir (the guide's functions are in "
            "examples/lambda of the repository and the sdist), or --handler for your own"
        )
    server = info.servers[function.server]
    identity = info.identities[IDENTITY]
    offset = server.log_offset()
    argv = [python, str(CONTAINER), "--invocations", str(invocations), "--freeze", str(freeze)]
    proc = subprocess.run(  # noqa: S603 -- our interpreter and our own script
        argv, env=lambda_environment(info, function, root), capture_output=True, text=True,
        timeout=300,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(
            f"the {name} function's process failed (exit {proc.returncode}):\n{proc.stderr}"
        )
    run = json.loads(proc.stdout.strip().splitlines()[-1])
    report = Report(function=function.module if not isinstance(name, str) else name,
                    label=function.label, endpoint=server.endpoint, **run)
    mine = [
        v
        for v in server.verifications(offset)
        if v.access_key_id == identity.access_key_id and v.user == server.users[USER_INDEX]
    ]
    report.logins_verified = sum(v.ok for v in mine)
    report.logins_rejected = sum(not v.ok for v in mine)
    report.rejection_reasons = sorted({v.reason for v in mine if not v.ok})
    return report


def _summary(report: Report) -> str:
    return (
        f"{report.invocations} invocations, {len(report.errors)} errors, "
        f"{report.auth_failures} auth failures, {report.tokens_signed} tokens signed, "
        f"{report.connects} connects ({report.stale_connections_replaced} stale replaced), "
        f"{report.logins_verified} logins verified by the server "
        f"({report.logins_rejected} rejected); init {report.init_ms:.0f} ms, "
        f"first invocation {report.first_invocation_ms:.0f} ms, "
        f"warm median {report.warm_median_ms:.1f} ms"
    )


def _emulator(state_dir: str | None) -> tuple[Any, EmulatorInfo, bool]:
    from sqlalchemy_rds_iam.testing import Emulator

    emulator = Emulator(state_dir)
    info, started = emulator.ensure_started()
    return emulator, info, started


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", action="store_true", help="run AWS's two guide functions "
                        "(PostgreSQL, MySQL) and print what they return (make demo)")
    parser.add_argument("--function", choices=[*FUNCTIONS, "all"], default="all",
                        help="which of AWS's guide functions to run (default: all)")
    parser.add_argument("--dir", default=".", help="where the function modules are, "
                        "LAMBDA_TASK_ROOT (default: the current directory)")
    parser.add_argument("--handler", metavar="MODULE.FUNCTION",
                        help="run your own handler instead of the guide's functions")
    parser.add_argument("--server", choices=["postgresql", "mysql", "pgbouncer"],
                        default="postgresql", help="the emulator server DBEndPoint & co. "
                        "name for --handler (default: postgresql)")
    parser.add_argument("--invocations", type=int, help="per function (default 50; demo 20)")
    parser.add_argument("--freeze", type=float, default=DEFAULT_FREEZE,
                        help="simulated freeze in seconds, halfway (default 960; 0: none)")
    parser.add_argument("--state-dir", help="emulator state directory (default: the usual one)")
    parser.add_argument("--keep-emulator", action="store_true",
                        help="leave running an emulator this command had to start")
    parser.add_argument("--json", action="store_true", help="print the reports as JSON")
    args = parser.parse_args(argv)
    invocations = args.invocations or (20 if args.demo else 50)

    from sqlalchemy_rds_iam.testing import EmulatorError

    try:
        emulator, info, started = _emulator(args.state_dir)
    except EmulatorError as exc:
        print(f"lambda_local: cannot start the RDS IAM emulator: {exc}", file=sys.stderr)
        return 2
    try:
        if args.demo:
            return _demo(info, started, invocations, args.freeze, args.dir)
        names: list[str | Function] = (
            list(FUNCTIONS) if args.function == "all" else [args.function]
        )
        if args.handler:
            module, _, handler = args.handler.rpartition(".")
            names = [Function(module, args.server, args.handler, "", handler=handler)]
        try:
            reports = [run_function(info, n, invocations=invocations, freeze=args.freeze,
                                    task_root=args.dir) for n in names]
        except RuntimeError as exc:
            print(f"lambda_local: {exc}", file=sys.stderr)
            return 2
        if args.json:
            print(json.dumps([asdict(r) | {"ok": r.ok} for r in reports], indent=2))
        else:
            for r in reports:
                print(f"{'ok  ' if r.ok else 'FAIL'} {r.label:<32} {_summary(r)}")
                for problem in r.problems():
                    print(f"     {problem}")
        return 0 if all(r.ok for r in reports) else 1
    finally:
        if started and not args.keep_emulator:
            emulator.stop()


def _demo(
    info: EmulatorInfo, started: bool, invocations: int, freeze: float, task_root: str
) -> int:
    how = "started" if started else "running"
    print(f"RDS IAM emulator {how}: PostgreSQL {info.postgresql.endpoint}, "
          f"MariaDB {info.mysql.endpoint}, region {info.region}")
    print("AWS's Lambda guide functions, on sqlalchemy-rds-iam (engine at init, ORM Session);")
    print(f"each: init, {invocations} invocations, a {freeze / 60:.0f}-minute freeze halfway.\n")
    failed = False
    for name in ("postgresql", "mysql"):
        function = FUNCTIONS[name]
        try:
            report = run_function(info, name, invocations=invocations, freeze=freeze,
                                  task_root=task_root)
        except (RuntimeError, subprocess.SubprocessError) as exc:
            print(f"FAIL {function.label}: {exc}")
            failed = True
            continue
        returned = ", ".join(repr(d) for d in report.databases) or "nothing"
        handler = f"{function.module}.lambda_handler"
        print(f"{function.label:<11} {handler:<35} {function.sql:<26} -> {returned}")
        print(f"{'':<12}{_summary(report)}")
        for problem in report.problems():
            print(f"{'':<12}FAIL: {problem}")
        failed = failed or not report.ok or report.databases != [info.servers[name].database]
    print("\nFAILED" if failed else "\nOK: both functions returned their database's name "
          "over IAM-authenticated, verified-TLS connections.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
