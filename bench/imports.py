"""What the plugin makes a first connect import: ``-X importtime``, ours against a password app.

Run: ``.venv/bin/python bench/imports.py [--ref REF] [--runs N] [--state-dir DIR]``, as root
(the emulator). The two apps of ``bench/run.py``'s cold start (the same SQLAlchemy +
psycopg2 app, a first ``SELECT 1`` over verify-full TLS; ``?plugin=rds_iam`` or a stored
password) run under ``python -X importtime`` in the Lambda-like venv (bytecode compiled), and
every module that only ours imports is listed with its self and cumulative time (the least of
``--runs`` processes: on a shared machine the least-disturbed run is the module's own cost;
importtime's own overhead inflates both). With ``--ref``, the package
at that git ref (exported, compiled, first on ``PYTHONPATH``) is listed beside the working
tree: the before/after table of ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run  # bench/ is not a package: its directory is on sys.path above

Times = dict[str, tuple[float, float]]


def importtime(python: str, script: str, env: dict[str, str], runs: int) -> Times:
    """Module -> (self us, cumulative us), least over the runs that imported it."""
    seen: dict[str, list[tuple[int, int]]] = {}
    for _ in range(runs):
        out = subprocess.run([python, "-X", "importtime", "-c", script], env=env, cwd="/",
                             capture_output=True, text=True, check=True)
        for line in out.stderr.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, cumulative, name = line[len("import time:"):].split("|")
            seen.setdefault(name.strip(), []).append((int(self_us), int(cumulative)))
    return {name: (min(s for s, _ in t), min(c for _, c in t))
            for name, t in seen.items() if len(t) * 2 > runs}


def plugin_only(ours: Times, password: Times) -> Times:
    return {name: t for name, t in ours.items() if name not in password}


def table(columns: dict[str, Times]) -> str:
    """Markdown: one row per module (by the first column's self time), self / cumulative."""
    names = sorted({n for t in columns.values() for n in t},
                   key=lambda n: [-t.get(n, (0, 0))[0] for t in columns.values()])
    head = " | ".join(f"{c}: self | {c}: cumulative" for c in columns)
    lines = [f"| module | {head} |", "| --- |" + " ---: | ---: |" * len(columns)]
    for name in names:
        cells = " | ".join(f"{t[name][0]:,.0f} | {t[name][1]:,.0f}" if name in t else "- | -"
                           for t in columns.values())
        lines.append(f"| `{name}` | {cells} |")
    totals = " | ".join(f"**{sum(s for s, _ in t.values()):,.0f}** ({len(t)} modules) | "
                        for t in columns.values())
    lines.append(f"| **self total** | {totals.rstrip()}")
    return "\n".join(lines)


def export(ref: str, python: str, into: str) -> str:
    """The package at ``ref`` under ``into``, compiled by the venv's interpreter."""
    import listener_ab

    listener_ab.export(ref, into)
    subprocess.run([python, "-m", "compileall", "-q", into], check=True)
    return into


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9, help="fresh processes per app")
    parser.add_argument("--ref", help="also list the package at this git ref (before)")
    parser.add_argument("--state-dir", help="emulator state directory")
    args = parser.parse_args()

    from sqlalchemy_rds_iam.testing import Emulator

    python = run.lambda_python()
    emulator = Emulator(args.state_dir, servers=("postgresql",))
    info, started = emulator.ensure_started()
    emulator.acquire()
    try:
        scripts, env = run.connect_scripts(info), run.connect_env(info)
        password = importtime(python, scripts["password"], env, args.runs)
        columns: dict[str, Times] = {}
        with tempfile.TemporaryDirectory() as tmp:
            if args.ref:
                root = export(args.ref, python, tmp)
                before = importtime(python, scripts["ours"], {**env, "PYTHONPATH": root},
                                    args.runs)
                columns[args.ref] = plugin_only(before, password)
            columns["working tree"] = plugin_only(
                importtime(python, scripts["ours"], env, args.runs), password)
    finally:
        emulator.release(stop=started)
    print(f"Modules a first connect imports with ?plugin=rds_iam and not with a stored "
          f"password (us, least of {args.runs} runs under -X importtime; load average "
          f"{run.load_average()}):\n")
    print(table(columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
