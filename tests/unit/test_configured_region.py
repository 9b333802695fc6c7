"""The one "region from the environment or profile" rule (``credentials.base.configured_region``)."""

from __future__ import annotations

import pytest

from sqlalchemy_rds_iam.credentials import (
    BotocoreSource,
    CallableSource,
    EnvironmentSource,
    configured_region,
)
from sqlalchemy_rds_iam.credentials.container import ContainerSource


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"AWS_REGION": "eu-west-1"}, "eu-west-1"),
        ({"AWS_DEFAULT_REGION": "us-east-2"}, "us-east-2"),
        ({"AWS_DEFAULT_REGION": "us-east-2", "AWS_REGION": "eu-west-1"}, "us-east-2"),
        ({"AWS_DEFAULT_REGION": "", "AWS_REGION": "eu-west-1"}, "eu-west-1"),
        ({"AWS_DEFAULT_REGION": "", "AWS_REGION": ""}, None),
    ],
)
def test_environment_rule(environ: dict[str, str], expected: str | None) -> None:
    assert configured_region(environ) == expected


def test_profile_region_only_when_the_environment_names_none() -> None:
    asked: list[int] = []

    def profile() -> str:
        asked.append(1)
        return "ap-south-1"

    env = {"AWS_REGION": "eu-west-1"}
    assert configured_region(env, profile_region=profile) == "eu-west-1"
    assert asked == []
    assert configured_region({}, profile_region=profile) == "ap-south-1"


def test_a_chosen_profile_wins_and_aws_region_is_the_last_resort() -> None:
    env = {"AWS_DEFAULT_REGION": "us-east-2", "AWS_REGION": "eu-west-1"}
    chosen = {"profile_chosen": True}
    assert configured_region(env, profile_region=lambda: "ap-south-1", **chosen) == "ap-south-1"
    assert configured_region(env, profile_region=lambda: None, **chosen) == "eu-west-1"
    assert configured_region({}, profile_region=lambda: None, **chosen) is None


def test_every_source_asks_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-2")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    assert EnvironmentSource().region() == "us-east-2"
    assert BotocoreSource().region() == "us-east-2"
    assert CallableSource(lambda: ("a", "b")).region() == "us-east-2"
    assert CallableSource(lambda: ("a", "b"), "eu-west-1").region() == "eu-west-1"
    container_env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:1/c",
                     "AWS_REGION": "sa-east-1"}
    assert ContainerSource(container_env).region() == "sa-east-1"
