"""Login latency on the emulator: an IAM login against a password login on the same server.

Run: ``make bench`` (or ``.venv/bin/python bench/login.py [--state-dir DIR]``), as root. It
uses the running emulator in the state dir, or starts one there (and stops it afterwards).
Each round opens one connection of every kind, alternating, so that machine noise hits all
kinds alike; the figures are medians of ``--runs`` connects (TCP + TLS + authentication +
first query), each closed at once:

- PostgreSQL direct: IAM (PAM -> verifier) and password (SCRAM), same server.
- PgBouncer: IAM through PgBouncer; PgBouncer 1.18 authenticates every client with PAM, so
  the password reference is the direct PostgreSQL password login behind it.
- MariaDB: IAM (auth_pam, cleartext over TLS) and password (mysql_native_password).

An emulator without password users (an older version) is measured for IAM logins only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import psycopg2
import pymysql

from sqlalchemy_rds_iam.testing import Emulator, EmulatorInfo, ServerInfo, presign_token


def iam_token(info: EmulatorInfo, server: ServerInfo, user: str) -> str:
    ident = info.identities["primary"]
    return presign_token(
        server.host,
        server.port,
        user,
        access_key_id=ident.access_key_id,
        secret_access_key=ident.secret_access_key,
        region=info.region,
    )


def connector(server: ServerInfo, user: str, password: str) -> Callable[[], None]:
    def pg() -> None:
        conn = psycopg2.connect(
            host=server.host, port=server.port, dbname=server.database, user=user,
            password=password, sslmode="verify-full", sslrootcert=server.ca_path,
        )
        cur = conn.cursor()
        cur.execute("SELECT 1")
        conn.close()

    def my() -> None:
        conn = pymysql.connect(
            host=server.host, port=server.port, database=server.database, user=user,
            password=password, ssl_ca=server.ca_path, ssl_verify_identity=True,
        )
        cur = conn.cursor()
        cur.execute("SELECT 1")
        conn.close()

    return pg if server.dialect == "postgresql" else my


def kinds(info: EmulatorInfo) -> dict[str, Callable[[], None]]:
    result: dict[str, Callable[[], None]] = {}
    for name, server in info.servers.items():
        user = server.users[0]
        result[f"{name} IAM"] = connector(server, user, iam_token(info, server, user))
        password_user: Any = getattr(server, "password_user", None)
        if password_user is not None:
            result[f"{name} password"] = connector(server, password_user, server.password or "")
    return result


def measure(tasks: dict[str, Callable[[], None]], runs: int) -> dict[str, float]:
    for task in tasks.values():  # warm up: imports, TLS contexts, PgBouncer's server pool
        task()
    times: dict[str, list[float]] = {name: [] for name in tasks}
    for _ in range(runs):
        for name, task in tasks.items():
            start = time.perf_counter()
            task()
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def report(medians: dict[str, float], runs: int) -> None:
    print(f"login latency, median of {runs} connects each (ms), alternating:")
    for name, value in medians.items():
        print(f"  {name:<24} {value:8.2f}")
    pairs = (
        ("postgresql IAM", "postgresql password", "PostgreSQL direct, IAM / password"),
        ("pgbouncer IAM", "postgresql password", "PgBouncer IAM / PostgreSQL password"),
        ("pgbouncer IAM", "postgresql IAM", "PgBouncer IAM / PostgreSQL IAM"),
        ("mysql IAM", "mysql password", "MariaDB, IAM / password"),
    )
    for a, b, label in pairs:
        if a in medians and b in medians:
            print(f"  ratio {label:<38} {medians[a] / medians[b]:6.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--state-dir", help="emulator state directory (default: the usual one)")
    parser.add_argument("--runs", type=int, default=50, help="connects per kind")
    args = parser.parse_args()
    emulator = Emulator(args.state_dir)
    info, started = emulator.ensure_started()
    try:
        report(measure(kinds(info), args.runs), args.runs)
    finally:
        if started:
            emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
