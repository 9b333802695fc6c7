"""The warm ``do_connect`` listener of two versions of this package, side by side.

Run: ``.venv/bin/python bench/listener_ab.py main`` (any git ref; default ``main``). The
ref's package is exported with ``git archive`` to a temporary directory; then fresh
processes alternate between it and the working tree, each timing ``run.listener`` (best of
25 batches, the same measurement ``bench/run.py`` reports; wall and CPU time), and the
medians are compared. On a shared machine only a ratio measured this way means anything.
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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CHILD = """
import sys
sys.path.insert(0, {bench!r})
import run, sqlalchemy_rds_iam
assert sqlalchemy_rds_iam.__file__.startswith({root!r}), sqlalchemy_rds_iam.__file__
import time
print(run.listener({number})[0], run.listener({number}, time.process_time)[0])
"""


def export(ref: str, into: str) -> str:
    """The package at ``ref``, unpacked under ``into``; returns the directory to import from."""
    data = subprocess.run(["git", "-C", ROOT, "archive", ref, "sqlalchemy_rds_iam"],
                          capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def warm_us(root: str, number: int) -> tuple[float, float]:
    """(wall, CPU) microseconds of one fresh process's warm listener."""
    env = {**os.environ, "PYTHONPATH": root}
    code = CHILD.format(bench=HERE, root=root, number=number)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, cwd="/",
                         text=True, check=True)
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ref", nargs="?", default="main", help="git ref to compare against")
    parser.add_argument("--runs", type=int, default=10, help="fresh processes per version")
    parser.add_argument("--number", type=int, default=5000, help="listener calls per batch")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        roots = {args.ref: export(args.ref, tmp), "working tree": ROOT}
        wall: dict[str, list[float]] = {name: [] for name in roots}
        cpu: dict[str, list[float]] = {name: [] for name in roots}
        for i in range(args.runs):
            order = list(roots) if i % 2 == 0 else list(roots)[::-1]
            for name in order:
                w, c = warm_us(roots[name], args.number)
                wall[name].append(w)
                cpu[name].append(c)
    for label, times in (("wall", wall), ("CPU", cpu)):
        for name, values in times.items():
            print(f"warm listener ({label}), {name:<14} median {statistics.median(values):6.2f}"
                  f" us (min {min(values):.2f}, max {max(values):.2f}, {len(values)} processes)")
        ratio = statistics.median(times["working tree"]) / statistics.median(times[args.ref])
        print(f"  working tree / {args.ref} ({label}): {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
