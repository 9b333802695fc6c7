"""Notes and logs quote no secret; the connector keeps no token; scrubbed exceptions, offline.

The traceback scan against real drivers is tests/security/test_traceback_secrets.py.
"""

from __future__ import annotations

import logging
import string
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

import sqlalchemy_rds_iam
from sqlalchemy_rds_iam.scrub import MASK, is_secret_key, iter_chain, mask_query, scrub_exception
from tests.fakes import driver_arguments, signed_tokens

RDS = "db.cluster-abc123.us-east-1.rds.amazonaws.com"
ROLE = "arn:aws:iam::123456789012:role/app"
SECRETS = ("hunter2-sslpass", "ext-id-secret-7", "tok-value-9")

WORDS = ("password", "secret", "token")
NAME_CHARS = string.ascii_letters + string.digits + "_-."


def _random_case(draw: Any, word: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    return "".join(c.upper() if f else c for c, f in zip(word, flips, strict=True))


@st.composite
def secret_names(draw: Any) -> str:
    word = _random_case(draw, draw(st.sampled_from(WORDS)))
    prefix = draw(st.text(NAME_CHARS, max_size=8))
    suffix = draw(st.text(NAME_CHARS, max_size=8))
    return prefix + word + suffix


@given(secret_names())
def test_any_key_with_password_secret_or_token_is_secret(name: str) -> None:
    assert is_secret_key(name)
    assert mask_query({name: "value", "application_name": "app"}) == {
        name: MASK, "application_name": "app"}


@given(st.text(NAME_CHARS, max_size=24))
def test_other_keys_are_quoted(name: str) -> None:
    lower = name.lower()
    named = lower in {"sslpassword", "password", "aws_external_id", "aws_secret_access_key"}
    worded = any(word in lower for word in WORDS) and lower != "iam_token_lifetime"
    assert is_secret_key(name) == (named or worded)


@pytest.mark.parametrize("name", ["sslpassword", "PASSWORD", "aws_external_id",
                                  "AWS_SECRET_ACCESS_KEY", "aws_session_token", "passfile_password"])
def test_named_secret_keys(name: str) -> None:
    assert is_secret_key(name)


@pytest.mark.parametrize("name", ["application_name", "aws_region", "sslmode", "iam_host",
                                  "iam_token_lifetime", "connect_timeout"])
def test_ordinary_keys(name: str) -> None:
    assert not is_secret_key(name)


def _engine(**query: str) -> sa.Engine:
    url = sa.make_url(f"postgresql+psycopg2://iamuser@{RDS}/app").update_query_dict(
        {"plugin": "rds_iam", **query})
    return sa.create_engine(url)


@pytest.mark.usefixtures("aws_env")
def test_the_refusal_note_and_warning_mask_secret_query_values(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sqlalchemy_rds_iam")
    engine = _engine(sslpassword=SECRETS[0], aws_role_arn=ROLE, aws_external_id=SECRETS[1],
                     application_name="billing")
    connector = sqlalchemy_rds_iam.connector(engine)
    command = connector.doctor_command()
    assert "sslpassword=REDACTED" in command and "aws_external_id=REDACTED" in command
    assert "application_name=billing" in command and "aws_role_arn=" in command
    refused = RuntimeError("password authentication failed")
    connector.refusals.explain(refused, connector.signed(), attempts=1, cached=False)
    (note,) = refused.__notes__
    (record,) = [r for r in caplog.records if "refused the IAM token" in r.getMessage()]
    for text in (command, note, record.getMessage()):
        assert not any(secret in text for secret in SECRETS), text


@pytest.mark.usefixtures("aws_env")
def test_the_connector_keeps_no_token_after_the_connect() -> None:
    engine = _engine()
    connector = sqlalchemy_rds_iam.connector(engine)
    tokens = signed_tokens(connector)
    sent = driver_arguments(engine)
    (token,) = tokens
    assert sent["password"] == token
    signed_at, access_key = connector._last_signing or (None, None)
    assert access_key == "AKIDEXAMPLE" and signed_at is not None
    # the token cache keeps it for reuse, by design; no other attribute does
    held = {name: value for name, value in vars(connector).items() if name != "cache"}
    assert token not in repr(held)
    assert all(token not in repr(vars(value)) for value in held.values()
               if hasattr(value, "__dict__") and not callable(value))


@pytest.mark.usefixtures("aws_env")
def test_the_note_reports_the_signing_time_and_key_without_the_token() -> None:
    engine = _engine()
    connector = sqlalchemy_rds_iam.connector(engine)
    tokens = signed_tokens(connector)
    driver_arguments(engine)
    refused = RuntimeError("password authentication failed")
    connector.refusals.explain(refused, connector.signed(), attempts=2, cached=True)
    (note,) = refused.__notes__
    assert "access key AKIDEXAMPLE" in note and "token age 0 s" in note
    assert tokens[0] not in note and "X-Amz" not in note


class _FakeError(Exception):
    """A psycopg-like error keeping the failed connection (a dataclass) as ``_pgconn``."""


def test_a_kept_failed_connection_loses_its_password() -> None:
    import dataclasses

    @dataclasses.dataclass
    class Finished:
        info: list[Any] = dataclasses.field(default_factory=list)
        password: bytes = b""
        host: bytes = b""

    from psycopg.pq.misc import ConninfoOption

    option = ConninfoOption(b"sslpassword", None, None, b"k3y", b"", b"*", 20)
    other = ConninfoOption(b"host", None, None, b"db", b"", b"", 40)
    error = _FakeError("connection failed")
    error._pgconn = Finished([option, other], b"tok", b"db")  # type: ignore[attr-defined]
    scrub_exception(error)
    kept = error._pgconn  # type: ignore[attr-defined]
    assert kept.password == b"" and kept.host == b"db"
    assert [o.val for o in kept.info] == [None, b"db"]
    assert str(error) == "connection failed"


def test_finished_frames_are_cleared_running_ones_kept() -> None:
    def inner(secret: str) -> None:
        raise ValueError("inner")

    running = "kept-local"
    try:
        try:
            inner("s3cr3t")
        except ValueError as exc:
            raise KeyError("outer") from exc
    except KeyError as outer:
        scrub_exception(outer)
        frames = [tb.tb_frame for e in iter_chain(outer) for tb in _tbs(e)]
    assert all("s3cr3t" not in repr(f.f_locals) for f in frames)
    assert running == "kept-local"  # this (running) frame was not cleared
    assert [f.f_code.co_name for f in frames].count("inner") == 1  # the frame stays, empty


def _tbs(exc: BaseException) -> list[Any]:
    tb, found = exc.__traceback__, []
    while tb is not None:
        found.append(tb)
        tb = tb.tb_next
    return found
