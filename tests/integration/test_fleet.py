"""bench/fleet.py, small: 40 execution environments starting within one second against an
IAM limit of 20 new tokens per second (a 2-second backlog, as 400 would make at AWS's 200/s;
a 4-second one, at 10/s, sits too close to the default 5-second budget on a loaded machine:
1 of 40 failed once in CI).

With the default backoff every environment connects; with ``iam_connect_retries=0`` the
throttle's refusals surface as failed connects. The script runs as users run it, against a
private emulator (PostgreSQL only) it starts and stops itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_a_small_fleet_connects_with_the_defaults_and_not_without_retries() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fleet.py"), "--environments", "40",
         "--rate-limit", "20", "--json"],
        capture_output=True, text=True, timeout=180, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.splitlines()[-1])
    defaults, off = figures["runs"]
    print(f"fleet 40 environments at 20/s: {figures}")
    assert (defaults["label"], off["label"]) == ("defaults", "retries off")
    assert defaults["failed"] == 0
    assert defaults["throttled"] > 0  # the throttle was hit, and the retries got through it
    assert defaults["tokens_signed"] == 40  # a retry reuses its environment's token
    assert off["failed"] > 0 and off["failed"] == off["throttled"]
    assert off["p99_ms"] >= off["p50_ms"] > 0
