"""SnapStart: restore-to-first-query against an on-demand cold start, per driver, on the emulator.

Run: ``.venv/bin/python bench/snapstart.py [--state-dir DIR] [--runs N]``, as root. It uses
the running emulator in the state dir, or starts one there (and stops it afterwards).

- **restore**: ``python -m sqlalchemy_rds_iam.testing.snapstart`` in a fresh process
  (init, snapshot, restore 30 minutes later with container credentials and init's
  sessions ended, after-restore hooks, first query); the figure is from the start of the
  hooks to the first query's result.
- **on-demand**: a fresh process with the same container credentials variables (a local
  endpoint, as Lambda's) imports SQLAlchemy and the driver, creates the engine, connects
  and queries: measured inside the process from its first line (the interpreter's own
  start-up, the same in both cases on Lambda, is not counted), and from outside (spawn to
  exit) for reference.
- **via botocore**: the restore again, with an (empty) AWS config file in play so that
  botocore's chain fetches the container credentials: what the restore costs when
  botocore is imported on its critical path.

Each figure is the median of ``--runs`` fresh processes after one warm-up run, with
``PYTHONDONTWRITEBYTECODE`` unset (a Lambda package has its bytecode; see FACTS).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy_rds_iam.testing import Emulator, Identity
from sqlalchemy_rds_iam.testing.credentials_endpoint import CredentialsEndpoint
from sqlalchemy_rds_iam.testing.identities import session_token
from sqlalchemy_rds_iam.testing.snapstart import DRIVERS

ON_DEMAND = """\
import time; began = time.perf_counter()
import sys, sqlalchemy as sa
url = sys.argv[1]
if sys.argv[2] == "async":
    import asyncio
    from sqlalchemy.ext.asyncio import create_async_engine
    async def main():
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            who = (await conn.execute(sa.text(sys.argv[3]))).scalar()
        elapsed = time.perf_counter() - began
        await engine.dispose()
        return who, elapsed
    who, elapsed = asyncio.run(main())
else:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        who = conn.execute(sa.text(sys.argv[3])).scalar()
    elapsed = time.perf_counter() - began
assert who == "iamuser", who
print(elapsed, any(m.startswith("botocore") for m in sys.modules))
"""
WHO = {"postgresql": "SELECT current_user", "mysql": "SELECT SUBSTRING_INDEX(USER(), '@', 1)"}


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **extra}


def restore_once(state_dir: str, driver: str, *extra: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "sqlalchemy_rds_iam.testing.snapstart", "--state-dir", state_dir,
         "--driver", driver, *extra], env=child_env({}), capture_output=True, text=True,
        timeout=300, check=False,
    )
    report: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    botocore = report.get("botocore_at_restore") or report.get("botocore_imported_by_restore")
    if out.returncode != 0 or report.get("refused_logins") or (botocore and not extra):
        raise SystemExit(f"simulation failed for {driver}: {report}")
    return report


def on_demand_once(url: str, driver: str, dialect: str, env: dict[str, str]) -> tuple[float, float]:
    began = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", ON_DEMAND, url, "async" if driver == "asyncpg" else "sync",
         WHO[dialect]], env=child_env(env), capture_output=True, text=True, timeout=300,
        check=True,
    )
    outside = time.perf_counter() - began
    inside, botocore = out.stdout.split()
    if botocore != "False":
        raise SystemExit(f"the on-demand start of {driver} imported botocore")
    return float(inside), outside


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", default=None)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    emulator = Emulator(args.state_dir)
    info, started = emulator.ensure_started()
    identity = Identity(f"bench-snapstart-{secrets.token_hex(3)}",
                        "ASIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30),
                        session_token())
    try:
        info = emulator.add_identity(identity)
        with CredentialsEndpoint(identity) as endpoint:
            env = {**endpoint.env(), "AWS_REGION": info.region}
            print(f"SnapStart restore vs on-demand cold start, median of {args.runs} fresh "
                  f"processes (Python {sys.version.split()[0]})")
            print(f"{'driver':10} {'restore->1st query':>19} {'(hooks)':>11} "
                  f"{'via botocore':>13} {'on-demand 1st query':>20} {'(spawn->exit)':>14}")
            for driver, server_name in DRIVERS.items():
                server = info.servers[server_name]
                url = server.url("iamuser", driver)
                restore_once(str(emulator.state_dir), driver)  # warm-up
                on_demand_once(url, driver, server.dialect, env)
                restores = [restore_once(str(emulator.state_dir), driver)
                            for _ in range(args.runs)]
                cold = [on_demand_once(url, driver, server.dialect, env)
                        for _ in range(args.runs)]
                boto = statistics.median(
                    float(restore_once(str(emulator.state_dir), driver, "--via-botocore")
                          ["restore_to_first_query"])  # type: ignore[arg-type]
                    for _ in range(args.runs))
                restore = statistics.median(float(r["restore_to_first_query"])  # type: ignore[arg-type]
                                            for r in restores)
                hooks = statistics.median(float(r["hooks_seconds"])  # type: ignore[arg-type]
                                          for r in restores)
                inside = statistics.median(c[0] for c in cold)
                outside = statistics.median(c[1] for c in cold)
                print(f"{driver:10} {ms(restore):>19} {ms(hooks):>11} {ms(boto):>13} "
                      f"{ms(inside):>20} {ms(outside):>14}", flush=True)
    finally:
        emulator.retire_identity(identity.name)
        if started:
            emulator.stop()
    print("botocore imported: by no restore (but the 'via botocore' ones) and no on-demand "
          "start; 0 refused logins")
    return 0


if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parents[1])
    raise SystemExit(main())
