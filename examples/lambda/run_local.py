#!/usr/bin/env python3
"""Run the example Lambda functions the way Lambda runs them, against the local RDS IAM emulator.

The runner ships in the package (``python -m sqlalchemy_rds_iam.testing.lambda_local``, which
works from a pip install too); this script runs it on the functions of this directory.

    python examples/lambda/run_local.py --demo
    python examples/lambda/run_local.py --function all --invocations 50 --json
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from sqlalchemy_rds_iam.testing import lambda_local
from sqlalchemy_rds_iam.testing.lambda_local import FUNCTIONS, Function, Report

__all__ = ["FUNCTIONS", "HERE", "Function", "Report", "lambda_environment", "main", "run_function"]

HERE = Path(__file__).resolve().parent


def lambda_environment(info: Any, name: str) -> dict[str, str]:
    """The environment Lambda would give the function ``name`` of this directory."""
    return lambda_local.lambda_environment(info, name, HERE)


def run_function(info: Any, name: str, **kwargs: Any) -> Report:
    """Run function ``name`` of this directory (see ``lambda_local.run_function``)."""
    return lambda_local.run_function(info, name, task_root=HERE, **kwargs)


def main(argv: list[str] | None = None) -> int:
    """``lambda_local``'s command line, with ``--dir`` this directory."""
    return lambda_local.main(["--dir", str(HERE), *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
