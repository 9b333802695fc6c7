"""Shared test setup: no test sees the machine's AWS configuration."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _no_ambient_aws(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Clear AWS_* variables and point botocore at empty config files."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    empty = tmp_path_factory.getbasetemp() / "no-aws-config"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # `sqlalchemy-rds-iam ca update` writes here; keep a user's stored bundle out of tests.
    monkeypatch.setenv("SQLALCHEMY_RDS_IAM_CACHE_DIR", str(empty.parent / "ca-cache"))
    yield
