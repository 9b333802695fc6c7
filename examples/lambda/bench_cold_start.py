#!/usr/bin/env python3
"""Cold start of the example handler versus AWS's guide's approach, side by side.

Each run is a fresh process (a new Lambda execution environment) with the environment
run_local.py gives the functions, against the local RDS IAM emulator:

* ``example``: import the example module (engine and sessionmaker at init), invoke once;
* ``guide``: AWS's sample, ``import boto3, psycopg2`` (or pymysql), and per invocation
  ``boto3.client("rds").generate_db_auth_token(...)``, a new TLS connection, the query;
* ``guide-orm``: the same ORM app as ``example`` (SQLAlchemy, pooled engine at init,
  pre-ping), with the token from ``boto3.client("rds")`` in a ``do_connect`` listener
  instead of the plugin: what an ORM app following the guide writes by hand.

Runs rotate the variants' order so that drift hits all alike. Reported per variant,
medians: time to first response (spawn of the process to the first invocation's result:
interpreter start, imports, init, first query), the same timed inside the process (no
interpreter start), and a warm invocation.

    python examples/lambda/bench_cold_start.py --runs 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VARIANTS = ("example", "guide", "guide-orm")
SQL = {"postgresql": "SELECT current_database()", "mysql": "select database();"}


def _guide_handler_factory(database: str) -> Any:
    """AWS's guide's function (imports at module level, everything else per invocation)."""
    import boto3

    if database == "postgresql":
        import psycopg2

        def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
            db_host = os.environ["DBEndPoint"]
            db_name = os.environ["DatabaseName"]
            db_user = os.environ["DBUserName"]
            aws_region = os.environ["AWS_REGION"]
            port = int(os.environ.get("DBPort", "5432"))
            client = boto3.client("rds")
            token = client.generate_db_auth_token(
                DBHostname=db_host, Port=port, DBUsername=db_user, Region=aws_region
            )
            conn = psycopg2.connect(
                dbname=db_name, user=db_user, password=token, host=db_host, port=port,
                # The same TLS work as the plugin does (the guide's sample says "require").
                sslmode="verify-full", sslrootcert=os.environ["DBCaBundle"],
            )
            try:
                with conn.cursor() as cur:
                    cur.execute(SQL["postgresql"])
                    row = cur.fetchone()
                    return {"statusCode": 200, "database": row[0] if row else None}
            finally:
                conn.close()

    else:
        import pymysql

        def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
            db_host = os.environ["DBEndPoint"]
            db_name = os.environ["DatabaseName"]
            db_user = os.environ["DBUserName"]
            aws_region = os.environ["AWS_REGION"]
            port = int(os.environ.get("DBPort", "3306"))
            client = boto3.client("rds")
            token = client.generate_db_auth_token(
                DBHostname=db_host, Port=port, DBUsername=db_user, Region=aws_region
            )
            conn = pymysql.connect(
                host=db_host, user=db_user, password=token, database=db_name, port=port,
                ssl_ca=os.environ["DBCaBundle"], ssl_verify_cert=True, ssl_verify_identity=True,
            )
            try:
                with conn.cursor() as cur:
                    cur.execute(SQL["mysql"])
                    row = cur.fetchone()
                    return {"statusCode": 200, "database": row[0] if row else None}
            finally:
                conn.close()

    return lambda_handler


def _guide_orm_handler_factory(database: str) -> Any:
    """The example's ORM app, with a hand-written boto3 token listener instead of the plugin."""
    import boto3
    from sqlalchemy import URL, create_engine, event, text
    from sqlalchemy.orm import sessionmaker

    host, user = os.environ["DBEndPoint"], os.environ["DBUserName"]
    postgres = database == "postgresql"
    port = int(os.environ.get("DBPort", "5432" if postgres else "3306"))
    ca = os.environ["DBCaBundle"]
    url = URL.create(
        "postgresql+psycopg2" if postgres else "mysql+pymysql",
        username=user, host=host, port=port, database=os.environ["DatabaseName"],
    )
    tls = (
        {"sslmode": "verify-full", "sslrootcert": ca}
        if postgres
        else {"ssl_ca": ca, "ssl_verify_cert": True, "ssl_verify_identity": True}
    )
    engine = create_engine(
        url, pool_size=1, max_overflow=0, pool_pre_ping=True, pool_recycle=900,
        connect_args={"connect_timeout": 5, **tls},
    )

    @event.listens_for(engine, "do_connect")
    def _token(dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        client = boto3.client("rds")
        cparams["password"] = client.generate_db_auth_token(
            DBHostname=host, Port=port, DBUsername=user, Region=os.environ["AWS_REGION"]
        )

    session_factory = sessionmaker(engine)

    def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
        with session_factory() as session:
            return {"statusCode": 200,
                    "database": session.execute(text(SQL[database])).scalar_one()}

    return lambda_handler


def _child(variant: str, database: str, warm: int) -> int:
    start = time.perf_counter()
    if variant == "example":
        sys.path.insert(0, str(HERE))
        handler = __import__(f"{database}_function").lambda_handler
    elif variant == "guide":
        handler = _guide_handler_factory(database)
    else:
        handler = _guide_orm_handler_factory(database)
    first = handler({}, None)
    cold_ms = (time.perf_counter() - start) * 1000
    # The parent times the arrival of this line: the first response.
    print(json.dumps({"database": first["database"], "cold_ms": cold_ms}), flush=True)
    warm_ms = []
    for _ in range(warm):
        began = time.perf_counter()
        handler({}, None)
        warm_ms.append((time.perf_counter() - began) * 1000)
    print(json.dumps({"warm_ms": statistics.median(warm_ms) if warm_ms else None}))
    return 0


def _one(variant: str, database: str, warm: int, env: dict[str, str]) -> dict[str, Any]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", variant]
    argv += ["--database", database, "--warm", str(warm)]
    began = time.perf_counter()
    with subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        first_line = proc.stdout.readline()
        first_response_ms = (time.perf_counter() - began) * 1000
        rest, errors = proc.communicate(timeout=300)
    if proc.returncode != 0 or not first_line:
        raise RuntimeError(f"{variant} on {database} failed:\n{errors}")
    return {
        **json.loads(first_line),
        **json.loads(rest.strip().splitlines()[-1]),
        "first_response_ms": first_response_ms,
    }


def bench(info: Any, databases: list[str], runs: int, warm: int) -> dict[str, Any]:
    """Alternate fresh-process runs of both variants; return per-run figures and medians."""
    sys.path.insert(0, str(HERE))
    import run_local

    results: dict[str, Any] = {}
    for database in databases:
        env = run_local.lambda_environment(info, database)
        samples: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
        for i in range(runs):
            k = i % len(VARIANTS)
            for variant in VARIANTS[k:] + VARIANTS[:k]:
                samples[variant].append(_one(variant, database, warm, env))
        medians = {
            variant: {
                key: statistics.median(s[key] for s in samples[variant])
                for key in ("first_response_ms", "cold_ms", "warm_ms")
            }
            for variant in VARIANTS
        }
        results[database] = {"samples": samples, "medians": medians}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="fresh processes per variant")
    parser.add_argument("--warm", type=int, default=20, help="warm invocations per process")
    parser.add_argument("--database", choices=[*SQL, "all"], default="all")
    parser.add_argument("--state-dir", help="emulator state directory")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child, args.database, args.warm)

    from sqlalchemy_rds_iam.testing import Emulator

    info = Emulator(args.state_dir).start()
    databases = list(SQL) if args.database == "all" else [args.database]
    results = bench(info, databases, args.runs, args.warm)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"Fresh process per run, {args.runs} rotating runs per variant, medians "
          f"(warm: median of {args.warm} invocations in each process, then median over runs).")
    columns = (("first_response_ms", "first response", 0), ("cold_ms", "in-process cold", 0),
               ("warm_ms", "warm invocation", 1))
    print(f"{'':<12}{'variant':<14}" + "".join(f"{title:>18}" for _, title, _ in columns))
    for database, result in results.items():
        m = result["medians"]
        for variant in VARIANTS:
            print(f"{database:<12}{variant:<14}"
                  + "".join(f"{m[variant][k]:>15.{d}f} ms" for k, _, d in columns))
        for variant in VARIANTS[1:]:
            print(f"{'':<12}{variant + '/ex.':<14}"
                  + "".join(f"{m[variant][k] / m['example'][k]:>17.2f}x" for k, _, _ in columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
