"""The field, side by side in one run, against the local RDS IAM emulator's PostgreSQL.

Run: ``make bench`` (or ``.venv/bin/python bench/field.py``; needs root for the emulator and
PyPI, or the configured mirror, for the contenders' venvs). Contenders (``bench/peer.py``):

* ``ours``: this package, ``?plugin=rds_iam`` (psycopg2; ``ours-psycopg``: psycopg 3);
* ``guide``: AWS's guide as published: per invocation ``boto3.client("rds")``, a token,
  a pg8000 connection; no SQLAlchemy;
* ``guide-orm``: the guide in a SQLAlchemy app: the same per connection, in ``do_connect``;
* ``recipe``: SQLAlchemy's documented ``do_connect`` recipe, one boto3 client reused;
* ``cisco``: cisco's ``sqlalchemy-rdsiam`` (its ``postgresql+psycopg2rdsiam`` dialect);
* ``auth-plugin``: ``sqlalchemy-rds-iam-auth-plugin`` (``?plugin=rds_iam&use_iam_auth=true``);
* ``aws-wrapper``: ``aws-advanced-python-wrapper``, ``postgresql+aws_wrapper_psycopg`` with
  its ``iam`` plugin.

Each contender runs in its own venv under ``.venv-bench/`` (the auth plugin installs the
import name ``sqlalchemy_rds_iam`` too), with the SQLAlchemy, boto3 and driver versions of
the project's ``.venv``, so that only the contender differs; ours is installed from this
checkout, not editable, as a Lambda deployment package holds it. Figures: fresh-process time to
the first token and to the first query (medians of ``--runs`` alternating runs, the order
rotating), resident memory after the first query, the warm per-connection overhead of each
contender's token step, and an IAM login's overhead over a password login on the same server.
Every process signs as the emulator's temporary identity (with a session token), from
environment variables, as in Lambda.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEER = Path(__file__).resolve().parent / "peer.py"
VENVS = ROOT / ".venv-bench"


@dataclass(frozen=True)
class Contender:
    name: str
    label: str
    driver: str
    #: What its venv holds (pip requirements).
    packages: tuple[str, ...]
    #: A venv shared with contenders of the same packages (default: its own name).
    venv: str | None = None


def _pinned(*names: str) -> tuple[str, ...]:
    return tuple(f"{name}=={version(name)}" for name in names)


def _source_digest() -> str:
    """Changes whenever this package's code does: its venv is then reinstalled."""
    digest = hashlib.sha256()
    for path in sorted([ROOT / "pyproject.toml", *(ROOT / "sqlalchemy_rds_iam").rglob("*.py")]):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


#: This package installed the way a Lambda deployment package holds it (not editable), with
#: only what it needs: the venv a Lambda function would have.
OURS = (f"sqlalchemy-rds-iam @ file://{ROOT}",
        *_pinned("SQLAlchemy", "botocore", "psycopg2-binary", "psycopg", "psycopg-binary"))

CONTENDERS = [
    Contender("ours", "sqlalchemy-rds-iam (this package)", "psycopg2", OURS, venv="ours"),
    Contender("ours-psycopg", "sqlalchemy-rds-iam (this package)", "psycopg 3", OURS,
              venv="ours"),
    Contender("guide", "AWS guide, as published (client per call)", "pg8000",
              _pinned("boto3", "pg8000")),
    Contender("guide-orm", "AWS guide in a SQLAlchemy app", "psycopg2",
              _pinned("SQLAlchemy", "boto3", "psycopg2-binary"), venv="boto3-psycopg2"),
    Contender("recipe", "SQLAlchemy docs do_connect, reused client", "psycopg2",
              _pinned("SQLAlchemy", "boto3", "psycopg2-binary"), venv="boto3-psycopg2"),
    Contender("cisco", "sqlalchemy-rdsiam 1.0.3 (cisco)", "psycopg2",
              ("sqlalchemy-rdsiam==1.0.3", *_pinned("SQLAlchemy", "boto3", "psycopg2-binary"))),
    Contender("auth-plugin", "sqlalchemy-rds-iam-auth-plugin 0.1.0", "psycopg2",
              ("sqlalchemy-rds-iam-auth-plugin==0.1.0",
               *_pinned("SQLAlchemy", "boto3", "psycopg2-binary"))),
    Contender("aws-wrapper", "aws-advanced-python-wrapper 3.1.0, iam", "psycopg 3",
              ("aws-advanced-python-wrapper==3.1.0",
               *_pinned("SQLAlchemy", "boto3", "psycopg", "psycopg-binary"))),
]


def python_for(contender: Contender) -> str:
    """The contender's interpreter, creating its venv first if needed."""
    venv = VENVS / (contender.venv or contender.name)
    stamp = venv / ".bench-installed"
    wanted = "\n".join(contender.packages)
    if any(package.endswith(f"file://{ROOT}") for package in contender.packages):
        wanted += f"\nsource {_source_digest()}"
    if not stamp.exists() or stamp.read_text() != wanted:
        print(f"  creating {venv.relative_to(ROOT)}: {' '.join(contender.packages)}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        pip = subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q",
                              "--disable-pip-version-check", *contender.packages],
                             capture_output=True, text=True)
        if pip.returncode != 0:
            raise RuntimeError(f"pip could not install {contender.packages}:\n{pip.stderr}")
        stamp.write_text(wanted)
    return str(venv / "bin/python")


def lambda_env(info: Any) -> dict[str, str]:
    """What Lambda gives a function: the role's temporary credentials and the region, and
    nothing from this machine's AWS configuration."""
    identity = info.identities["temporary"]
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "AWS_ACCESS_KEY_ID": identity.access_key_id,
        "AWS_SECRET_ACCESS_KEY": identity.secret_access_key,
        "AWS_SESSION_TOKEN": identity.session_token or "",
        "AWS_REGION": info.region,
        "AWS_DEFAULT_REGION": info.region,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def environment(info: Any) -> dict[str, str]:
    server = info.postgresql
    env = {
        **lambda_env(info),
        "BENCH_HOST": server.host,
        "BENCH_PORT": str(server.port),
        "BENCH_DB": server.database,
        "BENCH_USER": server.users[0],
        "BENCH_CA": server.ca_path,
    }
    # The emulator's password user (a login without IAM on the same server), when it has one.
    if getattr(server, "password_user", None) and hasattr(server, "password_url"):
        env["BENCH_PASSWORD_URL"] = server.password_url("psycopg2")
    return env


def run(python: str, name: str, mode: str, env: dict[str, str]) -> dict[str, Any]:
    began = time.time()
    proc = subprocess.run([python, str(PEER), name, mode], env={**env, "BENCH_T0": repr(began)},
                          capture_output=True, text=True, timeout=600, cwd="/")
    if proc.returncode != 0:
        raise RuntimeError(f"{name} {mode} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def measure(contenders: list[Contender], env: dict[str, str], runs: int) -> dict[str, Any]:
    pythons = {c.name: python_for(c) for c in contenders}
    samples: dict[str, dict[str, list[float]]] = {
        c.name: {"token_ms": [], "query_ms": [], "rss_mb": []} for c in contenders}
    names = [c.name for c in contenders]
    for i in range(runs):
        k = i % len(names)
        for name in names[k:] + names[:k]:  # rotate the order: drift hits all alike
            for mode in ("token", "query"):
                for key, value in run(pythons[name], name, mode, env).items():
                    if value is not None:
                        samples[name][key].append(value)
        print(f"  run {i + 1}/{runs} done", flush=True)
    figures: dict[str, Any] = {}
    for name in names:
        figures[name] = {key: statistics.median(v) if v else None
                         for key, v in samples[name].items()}
        warm = run(pythons[name], name, "warm", env)
        figures[name]["warm_us"] = warm["warm_us"]
        figures[name]["warm_note"] = warm.get("warm_note")
    figures["login"] = run(pythons["ours"], "ours", "login", env) if "ours" in pythons else {}
    figures["samples"] = samples
    return figures


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, "
            f"Python {platform.python_version()}, SQLAlchemy {version('SQLAlchemy')}, "
            f"botocore {version('botocore')}")


def _fmt(value: float | None, unit: str, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f} {unit}"


def _warm(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.1f} us" if value < 1000 else f"{value / 1000:,.1f} ms"


def table(contenders: list[Contender], figures: dict[str, Any], runs: int) -> str:
    lines = [
        "| contender | driver | first token | first query | RSS after first query "
        "| warm overhead per new connection |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for c in contenders:
        f = figures[c.name]
        note = " (a)" if f.get("warm_note") else ""
        lines.append(f"| {c.label} | {c.driver} | {_fmt(f['token_ms'], 'ms')} | "
                     f"{_fmt(f['query_ms'], 'ms')} | {_fmt(f['rss_mb'], 'MB', 1)} | "
                     f"{_warm(f['warm_us'])}{note} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="fresh processes per figure")
    parser.add_argument("--only", nargs="*", help="contenders to run (default: all)")
    parser.add_argument("--state-dir", help="emulator state directory")
    parser.add_argument("--json", help="also write every sample to this file")
    args = parser.parse_args(argv)

    from sqlalchemy_rds_iam.testing import Emulator

    contenders = [c for c in CONTENDERS if not args.only or c.name in args.only]
    emulator = Emulator(args.state_dir)
    info, started = emulator.ensure_started()
    emulator.acquire()
    try:
        print(f"field: {len(contenders)} contenders, {args.runs} fresh processes each per "
              f"figure, against {info.postgresql.host}:{info.postgresql.port}", flush=True)
        figures = measure(contenders, environment(info), args.runs)
    finally:
        emulator.release(stop=started)
    print(f"\nMachine: {machine()}\n")
    print(table(contenders, figures, args.runs))
    print(f"\nMedians of {args.runs} fresh processes per figure, alternating, from process "
          "spawn (interpreter start included). Warm overhead: per call of the contender's "
          "token step once warm (best of 25 short batches). First token n/a: the token is "
          "made inside the connect.")
    for c in contenders:
        if figures[c.name].get("warm_note"):
            print(f"(a) {c.label}: its token step cannot be called alone; "
                  f"{figures[c.name]['warm_note']}.")
    login = figures["login"]
    if login.get("login_ms") is None:
        print("IAM login over a password login on the same server: pending (the emulator "
              "has no password user yet).")
    else:
        print(f"IAM login over a password login on the same server (connect + SELECT 1, "
              f"best of 25 each): {login['login_ms']:+.1f} ms "
              f"({login['iam_login_ms']:.1f} ms against {login['password_login_ms']:.1f} ms).")
    for reference in ("guide-orm", "guide"):
        if "ours" not in figures or reference not in figures:
            continue
        label = next(c.label for c in contenders if c.name == reference)
        for key, what in (("token_ms", "first token"), ("query_ms", "first query")):
            ours, guide = figures["ours"][key], figures[reference][key]
            if ours and guide:
                print(f"ours / {label}, {what}: {ours / guide:.2f}")
    if "ours" in figures:
        warm = figures["ours"]["warm_us"]
        print(f"ours, warm overhead per new connection < 5 us: "
              f"{'met' if warm is not None and warm < 5 else 'MISSED'}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
