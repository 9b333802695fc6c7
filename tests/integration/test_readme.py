"""The README's emulator snippet works when pasted."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from sqlalchemy_rds_iam.testing.info import EmulatorInfo

README = Path(__file__).resolve().parents[2] / "README.md"

pytestmark = pytest.mark.integration


def test_testing_snippet_runs(rds_iam_emulator: EmulatorInfo, rds_iam_aws_env: dict[str, str]) -> None:
    section = README.read_text().split("## Testing your own app", 1)[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.S)
    assert snippet is not None
    namespace: dict[str, Any] = {}
    exec(compile(snippet.group(1), "README.md", "exec"), namespace)  # noqa: S102 (our own README)
    namespace["test_orm"](rds_iam_emulator, rds_iam_aws_env)
