"""doctor's words for the usual first mistakes: the checklist led by what the server said,
a concrete fix when there are no credentials, did-you-mean for plugin and driver names."""

from __future__ import annotations

import sys

import pytest

from sqlalchemy_rds_iam.doctor import (
    NO_CREDENTIALS_FIX,
    Step,
    credentials_fix,
    diagnose,
    login_checklist,
)

RDS = "db.cluster-abc123.us-east-1.rds.amazonaws.com"
PG = f"postgresql+psycopg2://iamuser@{RDS}/app"
MY = f"mysql+pymysql://iamuser@{RDS}/app"


def _items(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()[:2].rstrip(".").isdigit()]


def _checklist(reason: str, family: str = "postgresql") -> str:
    return login_checklist(family, "iamuser", RDS, 5432, "us-east-1", "aws", reason)


def test_password_authentication_failed_leads_with_the_iam_grant() -> None:
    """PostgreSQL tried a password: the user is not an IAM user (no GRANT rds_iam)."""
    text = _checklist('FATAL:  password authentication failed for user "iamuser"')
    first = _items(text)[0]
    assert first.startswith("1.") and "GRANT rds_iam TO iamuser" in first
    assert "not an IAM user" in text.splitlines()[0]


def test_pam_authentication_failed_leads_with_the_policy() -> None:
    """PostgreSQL ran the IAM check and it refused the token: policy, region, clock, key."""
    text = _checklist('FATAL:  PAM authentication failed for user "iamuser"')
    items = _items(text)
    assert "rds-db:connect" in items[0]
    assert "region" in items[1] and "clock" in items[2]
    assert "refused the token" in text.splitlines()[0]


def test_the_two_refusals_order_the_checklist_differently() -> None:
    password = _items(_checklist("password authentication failed for user"))
    pam = _items(_checklist("PAM authentication failed for user"))
    assert sorted(i[3:] for i in password) == sorted(i[3:] for i in pam)  # same items
    assert [i[3:] for i in password] != [i[3:] for i in pam]  # not the same order


def test_mysql_access_denied_keeps_the_default_order() -> None:
    text = _checklist("(1045, \"Access denied for user 'iamuser'@'10.0.0.1' (using password: "
                      "YES)\")", family="mysql")
    assert text.startswith("the server refused the token. Check, in this order:")
    assert "IAM database authentication is enabled" in _items(text)[0]


def test_no_credentials_names_where_credentials_come_from() -> None:
    fix = credentials_fix("no AWS credentials found (default credential chain): set ...")
    assert fix == NO_CREDENTIALS_FIX
    for words in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "aws sso login", "role"):
        assert words in fix
    assert "see the message" not in fix


def test_a_credentials_error_keeps_its_own_fix() -> None:
    message = ("could not load AWS credentials (profile 'x'): ProfileNotFound: The config "
               "profile (x) could not be found; fix aws_profile= / AWS_PROFILE, or add the "
               "profile to ~/.aws/config")
    assert credentials_fix(message).startswith("fix aws_profile= / AWS_PROFILE")


def _run(url: str) -> list[Step]:
    return diagnose(url, timeout=0.5)


def test_doctor_without_credentials_gives_the_concrete_fix() -> None:
    # conftest's autouse fixture leaves no AWS variables and empty config files
    steps = _run(f"{PG}?plugin=rds_iam")
    failed = steps[-1]
    assert (failed.name, failed.ok, failed.exit_code) == ("credentials", False, 4)
    assert failed.fix == NO_CREDENTIALS_FIX


@pytest.mark.parametrize("plugin", ["rds-iam", "rds_iamm", "rdsiam"])
def test_doctor_did_you_mean_for_a_misspelt_plugin(plugin: str) -> None:
    (step,) = _run(f"{PG}?plugin={plugin}")
    assert (step.name, step.exit_code) == ("options", 2)
    assert f"no plugin named {plugin!r}" in step.detail
    assert step.fix == "did you mean plugin=rds_iam?"


def test_doctor_did_you_mean_for_a_misspelt_driver() -> None:
    (step,) = _run(f"postgresql+pyscopg2://iamuser@{RDS}/app?plugin=rds_iam")
    assert (step.name, step.exit_code) == ("options", 2)
    assert "did you mean postgresql+psycopg2://" in step.fix


def test_doctor_names_the_extra_of_a_missing_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pymysql", None)
    (step,) = _run(f"{MY}?plugin=rds_iam")
    assert (step.name, step.exit_code) == ("options", 2)
    assert "needs pymysql, which is not installed" in step.detail
    assert step.fix == "pip install 'sqlalchemy-rds-iam[mysql]'"
