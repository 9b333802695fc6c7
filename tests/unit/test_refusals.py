"""Recognising a refused login by SQLSTATE / error code, and the note that explains it."""

from __future__ import annotations

import pymysql
import pytest

from sqlalchemy_rds_iam.refusals import add_note, login_refused


class WithState(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__("x")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(("exc", "family", "refused"), [
    (WithState("28P01"), "postgresql", True),                   # asyncpg (via SQLAlchemy)
    (WithState("28000"), "postgresql", True),
    (WithState("53300"), "postgresql", False),                  # too many connections
    (Exception({"C": "28000", "M": "PAM authentication failed"}), "postgresql", True),  # pg8000
    (Exception({"C": "3D000"}), "postgresql", False),
    (Exception('FATAL:  PAM authentication failed for user "iamuser"'), "postgresql", True),
    (Exception("could not connect to server"), "postgresql", False),
    (pymysql.err.OperationalError(1045, "Access denied"), "mysql", True),
    (pymysql.err.OperationalError(2003, "Can't connect"), "mysql", False),
    (Exception("authentication failed for user"), "mysql", False),  # text counts for libpq only
])
def test_login_refused(exc: Exception, family: str, refused: bool) -> None:
    assert login_refused(exc, family) is refused


def test_add_note_once() -> None:
    exc = ValueError("x")
    add_note(exc, "sqlalchemy-rds-iam: n")
    add_note(exc, "sqlalchemy-rds-iam: n")
    assert exc.__notes__ == ["sqlalchemy-rds-iam: n"]  # type: ignore[attr-defined]
