"""Secrets out of log records while we call into botocore (credentials, assume-role, STS).

At DEBUG, botocore logs the HTTP request it sends (headers with the session token and the
signature, which replays the STS call for minutes), the canonical request, and the response
body (AssumeRole's ``SecretAccessKey`` and ``SessionToken``); ``urllib3`` and botocore's
hooks log around them. Inside :func:`scrubbed_logs`, every record this thread creates, from
any logger, has such values replaced by ``***`` before any filter, handler or error tracker
sees it. It is a log record factory rather than a filter because a logger's filters do not
apply to its children's records, and botocore creates loggers as it imports modules during
the very call we guard. Other threads' records (the application's own boto3 calls) are
untouched.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["mention_secrets", "scrub_text", "scrubbed_logs"]

MASK = "***"
#: ``name<sep>value``, masked where the name says secret (:data:`_SECRET_NAME`): XML
#: (``<SessionToken>v``), JSON and Python reprs (``"SecretAccessKey": "v"``,
#: ``'X-Amz-Security-Token': b'v'``), headers and query strings (``x-amz-security-token:v``,
#: ``Signature=v``), botocore's ``Signature:\nv``. ``(?=(x+))\1`` is an atomic ``x+`` (no
#: backtracking into the name: records are scrubbed in linear time).
_FIELD = re.compile(r"(?<![\w-])(?=([\w-]+))\1([\"']?(?:\s*[:=]\s*|>)b?[\"']?)([^\s\"'<&,;}\\]+)")
_SECRET_NAME = re.compile(r"(?i)secret|token|signature|password|authorization|externalid")

_state = threading.local()
_factory_lock = threading.Lock()
_installed: Callable[..., logging.LogRecord] | None = None


def scrub_text(text: str, secrets: frozenset[str] | set[str] = frozenset()) -> str:
    """``text`` with every known secret and every secret-named field's value masked."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    return _FIELD.sub(_mask_field, text)


def _mask_field(match: re.Match[str]) -> str:
    if _SECRET_NAME.search(match.group(1)):
        return match.group(1) + match.group(2) + MASK
    return match.group(0)


def _scrub(record: logging.LogRecord, secrets: set[str]) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a record whose arguments do not format: keep none of them
        message = str(record.msg)
    cleaned = scrub_text(message, secrets)
    if cleaned != message or record.args:
        record.msg, record.args = cleaned, None
    if record.exc_info:
        text = logging.Formatter().formatException(record.exc_info)
        cleaned = scrub_text(text, secrets)
        if cleaned != text:  # the traceback itself would carry a secret: keep the text only
            record.exc_info, record.exc_text = None, cleaned


def _wrap(previous: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        secrets: set[str] | None = getattr(_state, "secrets", None)
        if secrets is not None:
            _scrub(record, secrets)
        return record

    return factory


def _ensure_installed() -> None:
    """Our factory on top of the current one (again, if someone replaced it since)."""
    global _installed
    if _installed is not None and logging.getLogRecordFactory() is _installed:
        return
    with _factory_lock:
        current = logging.getLogRecordFactory()
        if current is not _installed:
            _installed = _wrap(current)
            logging.setLogRecordFactory(_installed)


@contextlib.contextmanager
def scrubbed_logs(*secrets: str | None) -> Iterator[None]:
    """For the duration of the block, this thread's log records carry no secret."""
    _ensure_installed()
    outer: set[str] | None = getattr(_state, "secrets", None)
    _state.secrets = set(outer or ()) | {s for s in secrets if s}
    try:
        yield
    finally:
        _state.secrets = outer


def mention_secrets(*secrets: str | None) -> None:
    """Add values to mask for the rest of the current :func:`scrubbed_logs` block, if any."""
    current: set[str] | None = getattr(_state, "secrets", None)
    if current is not None:
        current.update(s for s in secrets if s)
