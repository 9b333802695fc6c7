"""Benchmarks: what the listener adds per new connection, and cold start against AWS's guide.

Run: ``make bench`` (or ``.venv/bin/python bench/run.py``). Offline: signing needs no
network, so credentials are fake and no connection is opened. Ratios are measured side
by side in one run, alternating, because the machines are noisy.

1. listener, warm: the do_connect listener with a cached token (target: < 20 us).
2. listener, cold: the same with an empty cache (credentials snapshot + SigV4 signing).
3. cold start: a fresh interpreter from imports to its first token, with the same SQLAlchemy
   engine created in both: this package vs ``boto3.client("rds").generate_db_auth_token``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import timeit

URL = "postgresql+psycopg2://iamuser@db.cluster-abc123.us-east-1.rds.amazonaws.com:5432/app"
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    "AWS_SESSION_TOKEN": "FQoGZXIvYXdzEXAMPLE",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}

OURS = f"""
import sqlalchemy as sa, sqlalchemy_rds_iam
engine = sa.create_engine({URL!r} + "?plugin=rds_iam")
token = sqlalchemy_rds_iam.connector(engine).token()
"""
GUIDE = f"""
import sqlalchemy as sa, boto3
engine = sa.create_engine({URL!r})
client = boto3.client("rds")
token = client.generate_db_auth_token(
    "db.cluster-abc123.us-east-1.rds.amazonaws.com", 5432, "iamuser"
)
"""
BASELINE = f"""
import sqlalchemy as sa
engine = sa.create_engine({URL!r})
"""


def listener(number: int) -> tuple[float, float]:
    """Microseconds per call of the do_connect listener, warm and cold cache."""
    import sqlalchemy as sa

    import sqlalchemy_rds_iam

    os.environ.update(FAKE_AWS)
    engine = sa.create_engine(URL + "?plugin=rds_iam")
    connector = sqlalchemy_rds_iam.connector(engine)
    # The listener makes the connection itself: measure it, not the network.
    engine.dialect.connect = lambda *cargs, **cparams: object()  # type: ignore[method-assign]
    base = dict(engine.dialect.create_connect_args(engine.url)[1])
    cparams = dict(base)
    connector(engine.dialect, None, [], cparams)  # warm up: botocore imported, token cached

    def warm() -> None:
        connector(engine.dialect, None, [], cparams)

    def cold() -> None:
        connector.cache.clear()
        connector(engine.dialect, None, [], cparams)

    warm_us = min(timeit.repeat(warm, number=number, repeat=5)) / number * 1e6
    cold_us = min(timeit.repeat(cold, number=max(1, number // 50), repeat=5))
    cold_us = cold_us / max(1, number // 50) * 1e6
    return warm_us, cold_us


def cold_start(runs: int) -> dict[str, list[float]]:
    """Wall time (ms) of fresh interpreters running each script, alternated."""
    env = {**os.environ, **FAKE_AWS}
    results: dict[str, list[float]] = {"ours": [], "guide": [], "baseline": []}
    scripts = {"ours": OURS, "guide": GUIDE, "baseline": BASELINE}
    for _ in range(runs):
        for name, script in scripts.items():
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", script], env=env, check=True)
            results[name].append((time.perf_counter() - start) * 1000)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--number", type=int, default=20000, help="listener calls per timing")
    parser.add_argument("--runs", type=int, default=10, help="fresh processes per variant")
    args = parser.parse_args()

    warm_us, cold_us = listener(args.number)
    print(f"listener per new connection, warm cache: {warm_us:8.2f} us   (target < 20 us)")
    print(f"listener per new connection, cold cache: {cold_us:8.2f} us   (credentials + signing)")

    results = cold_start(args.runs)
    medians = {name: statistics.median(times) for name, times in results.items()}
    print(f"cold start, fresh process to first token (median of {args.runs}, alternating):")
    for name, label in (("ours", "sqlalchemy-rds-iam (botocore signer)"),
                        ("guide", "AWS guide (boto3.client('rds'))"),
                        ("baseline", "SQLAlchemy engine alone, no token")):
        print(f"  {label:<40} {medians[name]:8.1f} ms")
    print(f"  ratio ours / guide: {medians['ours'] / medians['guide']:.2f}")
    extra_ours = medians["ours"] - medians["baseline"]
    extra_guide = medians["guide"] - medians["baseline"]
    print(f"  token cost beyond the engine: ours {extra_ours:.1f} ms, guide {extra_guide:.1f} ms")
    ok = warm_us < 20
    print("warm target met" if ok else "WARM TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
