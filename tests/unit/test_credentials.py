"""Credential sources: botocore's chain order, the environment fast path, region lookup."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sqlalchemy_rds_iam import CredentialsError
from sqlalchemy_rds_iam.credentials import BotocoreSource


@pytest.fixture
def profile_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "credentials"
    creds.write_text("[work]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = s\n")
    config = tmp_path / "config"
    config.write_text("[profile work]\nregion = ap-northeast-1\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))


@pytest.fixture
def env_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "tok")


@pytest.mark.usefixtures("env_keys")
def test_environment_credentials() -> None:
    frozen = BotocoreSource().frozen()
    assert (frozen.access_key, frozen.token, frozen.expiry) == ("AKIDENV", "tok", None)


@pytest.mark.usefixtures("env_keys", "profile_file")
def test_an_explicit_profile_wins_over_the_environment_as_in_botocore(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert BotocoreSource(profile="work").frozen().access_key == "AKIDPROFILE"
    assert BotocoreSource(profile="work").region() == "ap-northeast-1"
    # AWS_PROFILE does not beat environment keys in botocore's chain; its region still counts.
    monkeypatch.setenv("AWS_PROFILE", "work")
    source = BotocoreSource()
    assert source.frozen().access_key == "AKIDENV"
    assert source.region() == "ap-northeast-1"


@pytest.mark.usefixtures("env_keys")
def test_refreshable_environment_credentials_carry_their_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CREDENTIAL_EXPIRATION", "2099-01-01T00:00:00Z")
    assert BotocoreSource().frozen().expiry == 4070908800.0


def test_region_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    assert BotocoreSource().region() is None
    monkeypatch.setenv("AWS_REGION", "eu-north-1")
    assert BotocoreSource().region() == "eu-north-1"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    assert BotocoreSource().region() == "eu-west-3"


def test_no_credentials_message_says_what_to_do() -> None:
    with pytest.raises(CredentialsError, match="AWS_ACCESS_KEY_ID") as info:
        BotocoreSource().frozen()
    assert "aws_profile=" in str(info.value)


def test_unknown_profile_is_a_credentials_error() -> None:
    with pytest.raises(CredentialsError, match="ProfileNotFound"):
        BotocoreSource(profile="nope").frozen()


def test_lambda_path_does_not_import_botocore_session() -> None:
    code = (
        "import sys, sqlalchemy_rds_iam.credentials as c; "
        "c.BotocoreSource().frozen(); "
        "print('botocore.session' in sys.modules)"
    )
    env = {"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "s", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
