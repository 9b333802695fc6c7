"""Benchmarks: what the listener adds per new connection, and the cold start of an app.

Run: ``make bench`` (or ``.venv/bin/python bench/run.py [--state-dir DIR]``), as root: the
cold start connects to the local RDS IAM emulator (started in the state dir if it does not
run, and stopped afterwards). Ratios are measured side by side in one run, alternating,
because the machines are noisy.

1. listener, warm: the do_connect listener with a cached token (target: < 5 us).
2. listener, cold: the same with an empty cache (credentials snapshot + SigV4 signing).
3. import: ``import sqlalchemy_rds_iam`` after SQLAlchemy (target: < 10 ms).
4. cold start: a fresh interpreter from its imports to its first ``SELECT 1`` over
   verified TLS (verify-full, the emulator's CA bundle), the same SQLAlchemy + psycopg2 app
   in four ways, credentials in the environment as in Lambda:

   * ours: ``?plugin=rds_iam``, the package imported as the README's Lambda example does
     (SQLAlchemy then finds the plugin in its registry);
   * unimported: the same without the import (SQLAlchemy scans every installed
     distribution's entry points for it), to show what the import saves;
   * password: the same app with a stored password in the URL (the emulator's password
     user on the same server): what IAM should cost nothing over (target: ours /
     password <= 1.03);
   * guide: AWS's guide in the same app, ``boto3.client("rds").generate_db_auth_token``
     in a ``do_connect`` listener (target: ours / guide <= 0.55).

   All three run in one Lambda-like venv (``.venv-bench/lambda``: this package installed
   from this checkout, not editable, with bytecode compiled as pip leaves it in a
   deployment package; SQLAlchemy, boto3, psycopg2), medians of ``--runs`` fresh processes
   whose order rotates. Each is timed from its spawn to the line it writes right after its
   first query (wall); CPU time is the child's own ``process_time()`` at that line (startup
   included), and peak RSS its ``VmHWM`` there (its ``ru_maxrss`` would also count the
   parent's pages it was forked with). The interpreter's teardown after that line (50-80 ms
   of freeing objects here, for every contender, and the noisiest part) is left out: it is
   no part of a cold start, since Lambda keeps the process for the next invocations.

``bench/imports.py`` lists what the plugin makes a first connect import (``-X importtime``);
``bench/field.py`` (also run by ``make bench``) measures every published alternative.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import timeit
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

HERE = os.path.dirname(os.path.abspath(__file__))

URL = "postgresql+psycopg2://iamuser@db.cluster-abc123.us-east-1.rds.amazonaws.com:5432/app"
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    "AWS_SESSION_TOKEN": "FQoGZXIvYXdzEXAMPLE",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}

#: The cold-start contenders, in the order of the report.
CONTENDERS = {
    "ours": "sqlalchemy-rds-iam (?plugin=rds_iam)",
    "unimported": "the same, package not imported",
    "password": "stored password in the URL",
    "guide": "AWS guide (boto3.client('rds'))",
}
#: Targets: ours / password and ours / guide, cold, wall, median.
TARGETS = {"password": 1.03, "guide": 0.55}
#: Peak RSS of ours may exceed the password app's by at most this much.
RSS_MARGIN_KIB = 2048

_QUERY = """
with engine.connect() as conn:
    conn.execute(sa.text("SELECT 1")).scalar()
import sys, time
with open("/proc/self/status") as status:  # peak RSS of this program, in KiB
    rss = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
# The first query is done: its CPU time so far (startup included), then the line the parent
# stops its wall clock at. What follows (interpreter teardown, 50-80 ms of freeing objects
# on this machine, noisy) is no part of a cold start: Lambda keeps the process.
sys.stdout.write(f"{time.process_time() * 1000:.3f} {rss}\\n")
sys.stdout.flush()
"""


def connect_scripts(info: Any) -> dict[str, str]:
    """The three cold-start apps against the emulator's PostgreSQL, by contender.

    They connect to its real-looking RDS instance name (``/etc/hosts`` maps it to loopback),
    so ours finds the region in the hostname as it does on AWS; the CA bundle is the
    emulator's, given to each in its own way.
    """
    server = info.postgresql
    endpoint = info.topology["postgresql-instance"]
    host, port, user, db, ca = (endpoint.hostname, endpoint.port, server.users[0],
                                server.database, server.ca_path)
    iam = f"postgresql+psycopg2://{user}@{host}:{port}/{db}?plugin=rds_iam&iam_ca_bundle={ca}"
    password = (f"postgresql+psycopg2://{quote(server.password_user, safe='')}:"
                f"{quote(server.password, safe='')}@{host}:{port}/{db}"
                f"?sslmode=verify-full&sslrootcert={ca}")
    plain = f"postgresql+psycopg2://{user}@{host}:{port}/{db}"
    tls = {"sslmode": "verify-full", "sslrootcert": ca}
    return {
        "ours": (f"import sqlalchemy as sa, sqlalchemy_rds_iam\n"
                 f"engine = sa.create_engine({iam!r})\n" + _QUERY),
        # The README's app imports the package: SQLAlchemy then finds plugin=rds_iam in its
        # registry. Without the import it scans every installed distribution's entry points.
        "unimported": f"import sqlalchemy as sa\nengine = sa.create_engine({iam!r})\n" + _QUERY,
        "password": f"import sqlalchemy as sa\nengine = sa.create_engine({password!r})\n"
                    + _QUERY,
        "guide": (f"import sqlalchemy as sa, boto3\n"
                  f"engine = sa.create_engine({plain!r}, connect_args={tls!r})\n"
                  f"@sa.event.listens_for(engine, 'do_connect')\n"
                  f"def provide_token(dialect, conn_rec, cargs, cparams):\n"
                  f"    client = boto3.client('rds')\n"
                  f"    cparams['password'] = client.generate_db_auth_token("
                  f"{host!r}, {port}, {user!r})\n" + _QUERY),
    }


def connect_env(info: Any) -> dict[str, str]:
    """What Lambda gives a function: temporary credentials and the region, nothing else."""
    sys.path.insert(0, HERE)
    import field

    return field.lambda_env(info)


def lambda_python(ref: str | None = None, into: str | None = None) -> str:
    """The Lambda-like venv's interpreter (created, or reinstalled when the source changed).

    Only what a function needs: the dev ``.venv``'s hundred distributions would bill
    SQLAlchemy's entry-point scan, and its editable install has no bytecode. With ``ref``,
    a second one (``lambda-ref``) with this package at that git ref, exported under
    ``into`` and installed the same way: put first on ``PYTHONPATH`` instead, it would make
    every import of the app search one more directory, and the ref look slower than it is.
    """
    sys.path.insert(0, HERE)
    import field

    if ref is None:
        return field.python_for(field.Contender(
            "lambda", "", "", (*field.OURS, *field._pinned("boto3")), venv="lambda"))
    assert into is not None
    tree = subprocess.run(["git", "-C", field.ROOT, "archive", ref], capture_output=True,
                          check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tree)) as tar:
        tar.extractall(into, filter="data")
    return field.python_for(field.Contender(
        "lambda-ref", "", "", (f"sqlalchemy-rds-iam @ file://{into}", *field.OURS[1:],
                               *field._pinned("boto3")), venv="lambda-ref"))


def listener(number: int, timer: Callable[[], float] = time.perf_counter) -> tuple[float, float]:
    """Microseconds per call of the do_connect listener, warm and cold cache.

    ``timer``: wall time by default; ``time.process_time`` (this process's CPU time) is
    the companion figure on a shared machine, where other tenants preempt the loop.
    """
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

    # Best of many short batches: on a shared machine the minimum is the listener's own cost.
    warm_us = min(timeit.repeat(warm, number=number, repeat=25, timer=timer)) / number * 1e6
    cold_us = min(timeit.repeat(cold, number=max(1, number // 50), repeat=25, timer=timer))
    cold_us = cold_us / max(1, number // 50) * 1e6
    return warm_us, cold_us


def import_time(python: str, runs: int) -> float:
    """Median ms of ``import sqlalchemy_rds_iam`` in fresh processes (``-X importtime``),
    after ``import sqlalchemy`` (which any user of the package imports anyway)."""
    times = []
    for _ in range(runs):
        argv = [python, "-X", "importtime", "-c", "import sqlalchemy; import sqlalchemy_rds_iam"]
        out = subprocess.run(argv, capture_output=True, text=True, check=True, cwd="/",
                             env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        line = next(x for x in out.stderr.splitlines()
                    if x.rstrip().endswith("| sqlalchemy_rds_iam"))
        times.append(int(line.split("|")[1]) / 1000)  # cumulative microseconds
    return statistics.median(times)


Samples = dict[str, dict[str, list[float]]]


def cold_start(pythons: dict[str, str], scripts: dict[str, str],
               envs: dict[str, dict[str, str]], runs: int) -> Samples:
    """Per contender: wall ms, CPU ms and peak RSS KiB of fresh interpreters, alternated,
    each up to its first query's answer (teardown excluded: see the module docstring).

    CPU time (the child's ``process_time()``: user + system) is the companion figure for a
    shared machine: other tenants' work delays a process but does not bill it.
    """
    samples: Samples = {name: {"wall": [], "cpu": [], "rss": []} for name in scripts}
    names = list(scripts)
    for name in names:  # one unmeasured run each: page cache, the server's first backends
        subprocess.run([pythons[name], "-c", scripts[name]], env=envs[name], cwd="/",
                       check=True, stdout=subprocess.DEVNULL)
    for i in range(runs):
        k = i % len(names)
        for name in names[k:] + names[:k]:  # rotate the order: drift hits all alike
            start = time.perf_counter()
            proc = subprocess.Popen([pythons[name], "-c", scripts[name]], env=envs[name],
                                    cwd="/", stdout=subprocess.PIPE)
            assert proc.stdout is not None
            line = proc.stdout.readline()  # written right after the first SELECT 1
            samples[name]["wall"].append((time.perf_counter() - start) * 1000)
            proc.stdout.close()
            if proc.wait() or not line:
                raise RuntimeError(f"{name} failed with exit code {proc.returncode}")
            cpu_ms, rss_kib = line.split()
            samples[name]["cpu"].append(float(cpu_ms))  # the child's own, up to that line
            samples[name]["rss"].append(float(rss_kib))
    return samples


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def paired(samples: Samples, a: str, b: str, figure: str, ratio: bool = True) -> float:
    """Median over the rounds of ``a``'s figure over (or minus) ``b``'s in the same round.

    Each round runs every contender once, back to back: a burst of load from other tenants
    hits both of a pair alike, where it can move one contender's median more than another's.
    """
    pairs = zip(samples[a][figure], samples[b][figure], strict=True)
    return statistics.median(x / y if ratio else x - y for x, y in pairs)


def report_cold_start(samples: Samples, runs: int) -> tuple[dict[str, float], float]:
    """Print the cold-start table; returns the wall ratios and ours' extra peak RSS (KiB)."""
    med = {name: {k: statistics.median(v) for k, v in figures.items()}
           for name, figures in samples.items()}
    low = {name: min(figures["cpu"]) for name, figures in samples.items()}
    print(f"cold start, fresh process to its first SELECT 1 over verify-full TLS "
          f"(median of {runs}, alternating; CPU min: the least-disturbed run):")
    print(f"  {'':<40} {'wall':>9} {'CPU':>9} {'CPU min':>9} {'peak RSS':>10}")
    labels = {**CONTENDERS, **{n: f"ours at {n[4:]}" for n in med if n.startswith("ref ")}}
    for name, label in labels.items():
        m = med[name]
        print(f"  {label:<40} {m['wall']:6.1f} ms {m['cpu']:6.1f} ms {low[name]:6.1f} ms "
              f"{m['rss'] / 1024:6.1f} MiB")
    ratios = {}
    for ref in [*TARGETS, *(n for n in med if n.startswith("ref "))]:
        ratio = med["ours"]["wall"] / med[ref]["wall"]
        if ref in TARGETS:
            ratios[ref] = ratio
        print(f"  ours / {labels[ref].split(' (')[0] + ':':<27} wall {ratio:.3f}   "
              f"CPU {med['ours']['cpu'] / med[ref]['cpu']:.3f}   "
              f"CPU min {low['ours'] / low[ref]:.3f}   "
              f"paired {paired(samples, 'ours', ref, 'wall'):.3f}"
              + (f"   (target <= {TARGETS[ref]}, wall)" if ref in TARGETS else ""))
    if "unimported" in med:
        print(f"  package not imported, paired: "
              f"{paired(samples, 'unimported', 'ours', 'wall', ratio=False):+.1f} ms wall, "
              f"{paired(samples, 'unimported', 'ours', 'cpu', ratio=False):+.1f} ms CPU "
              "(SQLAlchemy scans every installed distribution's entry points for the plugin)")
    extra_rss = med["ours"]["rss"] - med["password"]["rss"]
    print(f"  peak RSS, ours - password: {extra_rss / 1024:+.2f} MiB "
          f"(target <= {RSS_MARGIN_KIB / 1024:.0f} MiB)")
    print("  wall range: " + ", ".join(
        f"{n} {min(f['wall']):.0f}-{max(f['wall']):.0f} ms" for n, f in samples.items()))
    return ratios, extra_rss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--number", type=int, default=5000, help="listener calls per timing")
    parser.add_argument("--runs", type=int, default=20, help="fresh processes per contender")
    parser.add_argument("--state-dir", help="emulator state directory")
    parser.add_argument("--cold-only", action="store_true", help="only the cold start")
    parser.add_argument("--ref", help="also the cold start of this package at a git ref")
    args = parser.parse_args()

    from sqlalchemy_rds_iam.testing import Emulator

    print(f"load average at start: {load_average()}")
    python = lambda_python()
    ok = True
    if not args.cold_only:
        warm_us, cold_us = listener(args.number)
        warm_cpu_us, _ = listener(args.number, time.process_time)
        print(f"listener per new connection, warm cache: {warm_us:8.2f} us   (target < 5 us)")
        print(f"  the same in this process's CPU time:   {warm_cpu_us:8.2f} us   "
              "(load-independent)")
        print(f"listener per new connection, cold cache: {cold_us:8.2f} us   "
              "(credentials + signing)")
        imported = import_time(python, args.runs)
        print(f"import sqlalchemy_rds_iam after sqlalchemy (fresh process, median of "
              f"{args.runs}): {imported:.1f} ms   (target < 10 ms)")
        ok = warm_us < 5 and imported < 10

    emulator = Emulator(args.state_dir, servers=("postgresql",))
    info, started = emulator.ensure_started()
    emulator.acquire()
    try:
        scripts, env = connect_scripts(info), connect_env(info)
        envs = {name: env for name in scripts}
        pythons = {name: python for name in scripts}
        with tempfile.TemporaryDirectory() as tmp:
            if args.ref:  # the package at the ref, installed as pip installs it
                name = f"ref {args.ref}"
                scripts[name], envs[name] = scripts["ours"], env
                pythons[name] = lambda_python(args.ref, tmp)
            samples = cold_start(pythons, scripts, envs, args.runs)
    finally:
        emulator.release(stop=started)
    ratios, extra_rss = report_cold_start(samples, args.runs)
    print(f"load average at end: {load_average()}")
    met = {f"ours / {ref} <= {target}": ratios[ref] <= target for ref, target in TARGETS.items()}
    met["peak RSS within 2 MiB of password"] = extra_rss <= RSS_MARGIN_KIB
    print("; ".join(f"{what}: {'met' if good else 'MISSED'}" for what, good in met.items()))
    return 0 if ok and all(met.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
