"""Recognising a login the server refused, and explaining it on the driver's exception.

A refused IAM login reaches the user as the driver's own words (``PAM authentication
failed``, MySQL 1045). We do not wrap it: we recognise it by SQLSTATE / error code and add
a PEP 678 note saying what the token was signed for and which ``doctor`` command checks it.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["add_note", "login_refused"]

#: PostgreSQL: invalid_authorization_specification, invalid_password.
_SQLSTATES = frozenset({"28000", "28P01"})
#: MySQL/MariaDB: ER_ACCESS_DENIED_ERROR.
_MYSQL_CODES = frozenset({1045})
#: libpq reports connection failures without a SQLSTATE (psycopg2, psycopg): its text is all
#: there is, so for those two the server's message for a failed password/PAM login is used.
_LIBPQ_PHRASE = "authentication failed for user"


def login_refused(exc: BaseException, family: str) -> bool:
    """Whether ``exc`` (a DBAPI error from connect) is the server refusing the login."""
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if state in _SQLSTATES:
        return True
    args = getattr(exc, "args", ())
    first = args[0] if args else None
    if isinstance(first, Mapping) and first.get("C") in _SQLSTATES:  # pg8000
        return True
    if family == "mysql":
        return first in _MYSQL_CODES or getattr(exc, "errno", None) in _MYSQL_CODES
    return state is None and _LIBPQ_PHRASE in str(exc)


def add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note(note)``, or its ``__notes__`` list on Python 3.10; never twice."""
    notes = getattr(exc, "__notes__", None) or []
    if note in notes:
        return
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    else:  # Python 3.10: the same attribute, which 3.11+ tracebacks print
        exc.__notes__ = [*notes, note]  # type: ignore[attr-defined]
