"""A login the server refused: recognising it, trying again where that may pass, saying so.

On the connect path (docs/architecture.md) right below the listener (``plugin``), which
makes each login's first attempt itself and hands a failed one here (:meth:`Refusals.after`),
and above the target each attempt is checked against. A refused IAM login reaches the user
as the driver's own words (``PAM authentication failed``, MySQL 1045). We do not wrap it: we
recognise it by SQLSTATE / error code (:func:`login_refused`) and try again only where
another attempt may pass (:func:`worth_retrying`): a cached token is replaced once by a
freshly signed one, and a refused fresh token is retried with backoff (``backoff``: the IAM
throttle); a TLS, network, configuration or access-rule failure never is. A refusal that
surfaces gets a PEP 678 note saying what the token was signed for and which ``doctor``
command checks it (:meth:`Refusals.doctor_command`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol, TypeVar

from .backoff import RetryPolicy, pause, retrying
from .errors import RdsIamError
from .options import OPTION_NAMES, Options
from .scrub import mask_query

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from .target import Target

__all__ = [
    "Refusals", "Signed", "add_note", "carry_notes", "login_refused", "worth_retrying",
]

logger = logging.getLogger("sqlalchemy_rds_iam")

T = TypeVar("T")

#: PostgreSQL: invalid_authorization_specification, invalid_password.
_SQLSTATES = frozenset({"28000", "28P01"})
#: MySQL/MariaDB: ER_ACCESS_DENIED_ERROR.
_MYSQL_CODES = frozenset({1045})
#: libpq reports connection failures without a SQLSTATE (psycopg2, psycopg): its text is all
#: there is, so for those two the server's message for a failed password/PAM login is used.
_LIBPQ_PHRASE = "authentication failed for user"
#: Refusals a retry cannot turn around, whatever their SQLSTATE: the server's access rules
#: (``pg_hba.conf``) reject this client, host or TLS setting before any token is checked.
_FINAL_PHRASES = ("pg_hba.conf", "SSL off", "no encryption")
#: How every note of ours begins.
_NOTE = "sqlalchemy-rds-iam:"


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


def worth_retrying(exc: BaseException, family: str) -> bool:
    """Whether another login may pass after ``exc``: a refused login, nothing else.

    Never our own errors (configuration, credentials, TLS refused before connecting), nor a
    TLS failure, nor a refusal by the server's access rules: those fail the same way again.
    """
    if isinstance(exc, (RdsIamError, OSError)):
        return False  # ssl.SSLError and a refused TCP connection are OSErrors
    if not login_refused(exc, family):
        return False
    text = str(exc)
    return not any(phrase in text for phrase in _FINAL_PHRASES)


def add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note(note)``, or its ``__notes__`` list on Python 3.10; never twice."""
    notes = getattr(exc, "__notes__", None) or []
    if note in notes:
        return
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    else:  # Python 3.10: the same attribute, which 3.11+ tracebacks print
        exc.__notes__ = [*notes, note]  # type: ignore[attr-defined]


def carry_notes(original: BaseException | None, wrapper: BaseException | None) -> None:
    """Our notes on the driver's exception, also on SQLAlchemy's wrapper of it (``handle_error``):
    a traceback or an error tracker shows the wrapper first."""
    if wrapper is not None:
        for note in getattr(original, "__notes__", None) or []:
            if note.startswith(_NOTE):
                add_note(wrapper, note)


class Signed:
    """What a refused token was signed in and with, for the note (never the token itself).

    A plain class: built only for a refusal, and cheaper to define at import than a named tuple.
    """

    __slots__ = ("access_key", "age", "credentials", "region")

    def __init__(self, region: str, access_key: str, age: str, credentials: str) -> None:
        self.region, self.access_key, self.age = region, access_key, age
        self.credentials = credentials
        """Where the credentials came from (``CredentialSource.describe()``)."""


if TYPE_CHECKING:
    class Listener(Protocol):
        """What :meth:`Refusals.after` asks of the engine's listener (``plugin.IamConnector``)."""

        def key(self) -> object: ...

        def refused(self) -> None:
            """Drop the refused token (and a global writer's region: the primary may move)."""

        def signed(self) -> Signed: ...


class Refusals:
    """One engine's policy for refused logins: when to try again, and the note when not."""

    def __init__(self, target: Target, url: URL, options: Options) -> None:
        self.target, self._url, self._options = target, url, options
        self.retry = RetryPolicy.from_options(options.iam_connect_retries,
                                              options.iam_retry_budget)
        """Backoff for a refused fresh token (the IAM throttle); see ``backoff.py``."""

    def may_pass(self, exc: BaseException) -> bool:
        return worth_retrying(exc, self.target.spec.family)

    def after(self, refused: Exception, attempt: Callable[[str | None], T],
              cached: str | None, listener: Listener) -> T:
        """The first ``attempt(cached)`` failed with ``refused``: ``attempt(token)`` (``None``:
        the listener's current token) again while one may pass.

        The listener makes that first attempt itself, so a successful connect never loads
        this module. A cached token may have been signed by credentials retired since
        (rotated keys, an ended session): refused, it is dropped and the login made once
        more with a freshly signed one. A refused fresh token may be the IAM throttle: it is
        retried with backoff (:attr:`retry`), reusing the token while the cache holds it. A
        refusal that surfaces gets a note (and a WARNING log line): what the token was signed
        for, how many attempts were made and which ``doctor`` command checks it.
        """
        fresh: list[None] = [] if cached is not None else [None]  # one per fresh attempt
        try:
            first: Exception | None = refused
            if cached is not None:
                if not self.may_pass(refused):
                    raise refused
                logger.info("login with a cached IAM token refused for %s; signing a fresh "
                            "one", listener.key())
                listener.refused()
                first = None  # the fresh token's first attempt is still to be made

            def attempt_fresh() -> T:
                fresh.append(None)
                return attempt(None)

            return retrying(self.retry, attempt_fresh, self.may_pass,
                            lambda delay: pause(delay, self.target.spec.is_async),
                            lambda number, delay: self._announce(listener, number, delay),
                            refused=first)
        except Exception as exc:
            if login_refused(exc, self.target.spec.family):
                self.explain(exc, listener.signed(), attempts=len(fresh) + (cached is not None),
                             cached=cached is not None)
                listener.refused()
            raise

    def _announce(self, listener: Listener, number: int, delay: float) -> None:
        logger.info(
            "IAM login for %s refused with a fresh token (the IAM throttle, or a token the "
            "server rejects): attempt %d of at most %d in %.2f s", listener.key(), number,
            self.retry.retries + 1, delay,
        )

    def explain(self, exc: BaseException, signed: Signed, *, attempts: int, cached: bool) -> None:
        """Add the note to ``exc`` (and log it once as a WARNING)."""
        fresh = attempts - 1 if cached else attempts
        steps = ["a cached token"] if cached else []
        if fresh:
            steps.append("a freshly signed one" + (f", tried {fresh} times" if fresh > 1 else ""))
        tried = (f" ({attempts} attempt{'s' if attempts > 1 else ''}: {', then '.join(steps)}; "
                 f"iam_connect_retries={self.retry.retries}, "
                 f"iam_retry_budget={self.retry.budget:g})")
        target = self.target
        note = (
            f"{_NOTE} the server refused the IAM token signed for user "
            f"{target.user!r} at {target.host}:{target.port}, region {signed.region}, access "
            f"key {signed.access_key}, token age {signed.age}, credentials from "
            f"{signed.credentials}{tried}. Check IAM auth on the instance, the user's "
            f"rds_iam/AWSAuthenticationPlugin grant, the rds-db:connect policy and the clock; "
            f"run: {self.doctor_command()}"
        )
        if note not in (getattr(exc, "__notes__", None) or []):
            logger.warning("%s", note)
        add_note(exc, note)

    def doctor_command(self) -> str:
        """The ``sqlalchemy-rds-iam doctor '<url>'`` line for this engine (no secrets)."""
        import shlex  # a refused login's note only: not on a successful connect's path

        options = self._options
        url = self._url.set(password=None)
        query = {name: str(getattr(options, name)) for name in OPTION_NAMES
                 if getattr(options, name) not in (None, Options().iam_tls)}
        if self.target.region and "aws_region" not in query:
            query["aws_region"] = self.target.region
        url = url.update_query_dict({"plugin": "rds_iam", **query})
        url = url.set(query=mask_query(url.query))  # sslpassword=, aws_external_id=...
        return f"sqlalchemy-rds-iam doctor {shlex.quote(url.render_as_string(False))}"
