"""Nothing to steal in a failed connect's exception, nor in a URL we quote.

Error trackers (Sentry, Rollbar, ...) record the local variables of every frame in a raised
exception's traceback and in its ``__cause__``/``__context__`` chain. A connect that failed
(the server is down, the login was refused) has the driver's frames there, and they hold
the password keyword, the token: SQLAlchemy's ``DefaultDialect.connect(**cparams)``, the
drivers' ``kwargs``/``dsn``, our ``connect_aiomysql_requiring_tls``. So before the exception
leaves the listener, :func:`scrub_exception` clears the locals of every frame of the chain
that has finished running (``frame.clear()``: the file, line and function stay, so the
traceback still prints) and removes the password from exception attributes that keep the
failed connection (psycopg's ``pgconn``). The exception object, its type, message, SQLSTATE
and errno are unchanged, so SQLAlchemy wraps it as usual.

:func:`mask_query` hides the values of secret-looking URL query keys in what we print.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["MASK", "is_secret_key", "iter_chain", "mask_query", "scrub_exception"]

#: What a masked value reads as (a word: a URL would render "***" as "%2A%2A%2A").
MASK = "REDACTED"

_SECRET_KEYS = frozenset({"sslpassword", "password", "aws_external_id", "aws_secret_access_key"})
_SECRET_WORDS = ("password", "secret", "token")
#: Our own options whose name has a secret word but whose value (seconds) is not a secret.
_NOT_SECRET = frozenset({"iam_token_lifetime"})


def is_secret_key(name: str) -> bool:
    """Whether a URL query key (or driver keyword) holds a value we must not quote."""
    lower = name.lower()
    if lower in _NOT_SECRET:
        return False
    return lower in _SECRET_KEYS or any(word in lower for word in _SECRET_WORDS)


def mask_query(query: Mapping[str, Any]) -> dict[str, Any]:
    """``query`` with the value of each secret key (:func:`is_secret_key`) as :data:`MASK`."""
    return {name: (MASK if is_secret_key(name) else value) for name, value in query.items()}


def iter_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception reachable from it: causes, contexts, group members."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        todo.extend(getattr(current, "exceptions", None) or ())  # an ExceptionGroup's members


def scrub_exception(exc: BaseException) -> None:
    """Clear the finished frames of ``exc``'s chain and the password its attributes keep.

    Frames still running (the listener's caller, SQLAlchemy's pool) cannot be cleared and
    keep their locals: they must hold no token themselves (the caller pops it from the
    shared ``cparams`` and keeps none in a local).
    """
    for member in iter_chain(exc):
        tb = member.__traceback__
        while tb is not None:
            try:
                tb.tb_frame.clear()
            except RuntimeError:  # a frame still executing (ours, the caller's)
                pass
            tb = tb.tb_next
        _scrub_pgconn(member)


def _scrub_pgconn(exc: BaseException) -> None:
    """psycopg 3 keeps the failed connection on its error (``pgconn``), password included.

    A ``FinishedPGconn`` (a dataclass of the connection's values) gets the password and the
    secret ``info`` values blanked; a live ``PGconn`` is finished into one first.
    """
    pgconn = getattr(exc, "_pgconn", None)
    if pgconn is None:
        return
    import dataclasses

    if not dataclasses.is_dataclass(pgconn):
        try:
            from psycopg.errors import finish_pgconn

            pgconn = finish_pgconn(pgconn)
        except Exception:  # an unknown psycopg: drop the connection rather than keep it
            exc._pgconn = None  # type: ignore[attr-defined]
            return
    info = [
        option._replace(val=None)
        if is_secret_key(bytes(option.keyword).decode("ascii", "replace")) else option
        for option in getattr(pgconn, "info", None) or ()
    ]
    try:
        exc._pgconn = dataclasses.replace(  # type: ignore[attr-defined]
            pgconn, password=b"", info=info)  # type: ignore[type-var]
    except (TypeError, ValueError):  # fields of an unknown psycopg
        exc._pgconn = None  # type: ignore[attr-defined]
