"""One simulated Lambda execution environment: init the handler once, invoke it, freeze halfway.

Started by :mod:`~sqlalchemy_rds_iam.testing.lambda_local` as a script (by path, so that
nothing but the standard library is imported before the handler) in a fresh process whose
environment is the one Lambda would give the function. Like Lambda's Python runtime it
finds the handler in ``_HANDLER`` (``module.function``) under ``LAMBDA_TASK_ROOT``, imports
the module once (init), then invokes the handler ``--invocations`` times (warm). Halfway it
simulates a freeze of ``--freeze`` seconds (for handlers that keep their engine in
``engine``, as the guide's functions do):

* the server closes the idle pooled connection, as an idle timeout or RDS Proxy's
  ``IdleClientTimeout`` would while the sandbox is frozen, so ``pool_pre_ping`` must
  notice and reconnect;
* the engine's token cache is moved ``--freeze`` seconds ahead
  (``connector(engine).cache.advance()``), so that reconnect must sign a new token.

It prints one JSON object: what the handler returned, errors, authentication failures,
tokens signed (counted by hash, never printed), connects, stale connections replaced, and
timings.

    python .../sqlalchemy_rds_iam/testing/lambda_container.py --invocations 50 --freeze 960
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import re
import statistics
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

_AUTH_FAILURE = re.compile(r"PAM authentication failed|Access denied|\b1045\b")


class LambdaContext:
    """The attributes of Lambda's context object that handlers commonly read."""

    def __init__(self, timeout_s: float = 30.0) -> None:
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
        self.memory_limit_in_mb = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.invoked_function_arn = (
            f"arn:aws:lambda:{os.environ['AWS_REGION']}:123456789012:function:{self.function_name}"
        )
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def watch(engine: Engine) -> dict[str, Any]:
    """Count connects, distinct tokens (by hash) and stale connections the pool replaced."""
    from sqlalchemy import event

    seen: dict[str, Any] = {"connects": 0, "tokens": set(), "invalidated": 0}

    # The plugin's do_connect listener connects itself, through dialect.connect(): watch
    # that call, where the token is in the driver's arguments.
    real_connect = engine.dialect.connect

    def _count(*cargs: Any, **cparams: Any) -> Any:
        seen["connects"] += 1
        for value in cparams.values():
            if isinstance(value, str) and "X-Amz-Signature=" in value:
                seen["tokens"].add(hashlib.sha256(value.encode()).hexdigest())
        return real_connect(*cargs, **cparams)

    engine.dialect.connect = _count  # type: ignore[method-assign]

    @event.listens_for(engine, "invalidate")
    def _invalidated(dbapi_conn: Any, conn_rec: Any, exc: BaseException | None) -> None:
        seen["invalidated"] += 1

    return seen


def let_server_close_idle_connections(engine: Engine, idle_seconds: int = 1) -> None:
    """Make the server drop the pooled connection once idle, as timeouts do during a freeze."""
    from sqlalchemy.pool import NullPool

    if isinstance(engine.pool, NullPool):
        return  # nothing pooled: every invocation connects anew
    sql = (
        f"SET SESSION wait_timeout = {idle_seconds}"
        if engine.dialect.name == "mysql"
        else f"SET idle_session_timeout = {idle_seconds * 1000}"
    )
    with engine.connect() as conn:
        conn.exec_driver_sql(sql)
        conn.commit()  # a SET rolled back would be undone (PostgreSQL)
    time.sleep(idle_seconds + 1.0)


def freeze(engine: Engine, seconds: float) -> None:
    """What a frozen sandbox finds on waking ``seconds`` later: no idle connection, old tokens."""
    import sqlalchemy_rds_iam

    let_server_close_idle_connections(engine)
    sqlalchemy_rds_iam.connector(engine).cache.advance(seconds)
    # botocore signs with the wall clock: a token re-signed within the same second is
    # byte-identical to the old one (logins take milliseconds), so step past it.
    time.sleep(1.01 - time.time() % 1.0)


def run(invocations: int, freeze_seconds: float) -> dict[str, Any]:
    """Init the handler module once, invoke it, freeze halfway, invoke again."""
    module_name, handler_name = os.environ["_HANDLER"].rsplit(".", 1)
    start = time.perf_counter()
    sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])
    module = importlib.import_module(module_name)  # Lambda's init phase
    init_ms = (time.perf_counter() - start) * 1000
    handler = getattr(module, handler_name)

    # The guide's functions keep their engine in ``engine``; other handlers run unwatched.
    engine = getattr(module, "engine", None)
    seen: dict[str, Any] = (
        watch(engine) if engine is not None else {"connects": 0, "tokens": set(), "invalidated": 0}
    )
    databases: list[str] = []
    errors: list[str] = []
    auth_failures = 0
    durations: list[float] = []
    expected = os.environ.get("DatabaseName")
    for i in range(invocations):
        if freeze_seconds > 0 and i == invocations // 2 and i > 0 and engine is not None:
            freeze(engine, freeze_seconds)
        began = time.perf_counter()
        try:
            result = handler({"invocation": i}, LambdaContext())
        except Exception as exc:  # what Lambda would record as a failed invocation
            message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            errors.append(message)
            auth_failures += bool(_AUTH_FAILURE.search(str(exc)))
            continue
        finally:
            durations.append((time.perf_counter() - began) * 1000)
        database = result.get("database") if isinstance(result, dict) else None
        if expected is not None and database != expected:
            errors.append(f"returned {result!r}, expected database {expected!r}")
        elif database is not None and database not in databases:
            databases.append(database)
    return {
        "invocations": invocations,
        "freeze_seconds": freeze_seconds,
        "databases": databases,
        "errors": errors,
        "auth_failures": auth_failures,
        "tokens_signed": len(seen["tokens"]),
        "connects": seen["connects"],
        "stale_connections_replaced": seen["invalidated"],
        "init_ms": init_ms,
        "first_invocation_ms": durations[0] if durations else 0.0,
        "warm_median_ms": statistics.median(durations[1:]) if len(durations) > 1 else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: print the run's JSON object; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invocations", type=int, default=50)
    parser.add_argument("--freeze", type=float, default=16 * 60.0,
                        help="simulated freeze in seconds, halfway (0: none)")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.invocations, args.freeze)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
