"""Cached verifying ``SSLContext`` objects for drivers (which CA file: ``cabundle.py``), and
the checks that a CA file or a user's ``SSLContext`` really verifies a server.

Drivers that take an ``SSLContext`` (pg8000, asyncpg, aiomysql, asyncmy) use it as-is, for
every connection: one context per set of inputs is built once (loading the bundle's roots
costs milliseconds, which would otherwise stall an event loop on every connect) and is
never modified after it is returned.

None of them writes a key log: ``ssl.create_default_context`` turns one on whenever
``SSLKEYLOGFILE`` is set (every TLS secret, so every token, readable off a capture by
whoever can read that file), so contexts are built from ``SSLContext(PROTOCOL_TLS_CLIENT)``
(the same defaults, minus the variable) and a user's context that logs keys is refused.
"""

from __future__ import annotations

import functools
import os
import ssl
import stat

from .cabundle import SHIPPED_DIR, ca_certificates

__all__ = [
    "TLS_MODES", "VERIFY_CA", "VERIFY_FULL", "ContextCheck", "bundle_problem", "client_context",
    "context_problem", "ssl_context",
]


# The ``iam_tls`` values: both verify the chain against the CA; neither sends without TLS.
# Plain words (drivers take them as they are), not an ``Enum``: building one costs every cold
# start ~0.2 ms.
#: The chain and the hostname (the default).
VERIFY_FULL = "verify-full"
#: The chain only: for a tunnel whose name is not in the certificate.
VERIFY_CA = "verify-ca"
#: Every ``iam_tls`` word, the default first.
TLS_MODES = (VERIFY_FULL, VERIFY_CA)

#: The package's own bundles live here (``cabundle`` builds their paths from it).
_SHIPPED_DIR = str(SHIPPED_DIR)


def ssl_context(
    ca_bundle: str | None,
    mode: str,
    *,
    capath: str | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
    ciphers: str | None = None,
) -> ssl.SSLContext:
    """A verifying client context for these inputs, built once and shared.

    ``certfile``/``keyfile`` (a client certificate) and ``ciphers`` exist so that an
    ``ssl={...}`` dict from a URL can be turned into a context without losing settings.
    """
    # Positional, so that omitted and explicit ``None`` keywords share one cache entry.
    return _cached_context(ca_bundle, mode, capath, certfile, keyfile, ciphers)


@functools.lru_cache(maxsize=64)
def _cached_context(
    ca_bundle: str | None,
    mode: str,
    capath: str | None,
    certfile: str | None,
    keyfile: str | None,
    ciphers: str | None,
) -> ssl.SSLContext:
    if mode not in TLS_MODES:
        raise ValueError(f"unknown TLS mode {mode!r}; expected one of {TLS_MODES}")
    context = client_context()
    if ca_bundle or capath:
        context.load_verify_locations(cafile=ca_bundle, capath=capath)
    context.check_hostname = mode == "verify-full"
    context.verify_mode = ssl.CERT_REQUIRED
    if certfile:
        context.load_cert_chain(certfile, keyfile)
    if ciphers:
        context.set_ciphers(ciphers)
    return context


def client_context() -> ssl.SSLContext:
    """``create_default_context()`` without roots and without ``SSLKEYLOGFILE``'s key log.

    ``PROTOCOL_TLS_CLIENT`` already means CERT_REQUIRED, check_hostname and TLS 1.2+.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.keylog_filename = None  # type: ignore[assignment]  # explicit: never a key log
    return context


def bundle_problem(path: object) -> str | None:
    """Why ``path`` cannot verify a server (missing, unreadable, no certificate), or ``None``.

    Checked on every connect, so the result is cached per (path, inode, size, mtime): a
    ``stat`` per connect, a parse only when the file changes.
    """
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not path.strip():
        return f"{path!r} is not a file path"
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"{path!r} cannot be read ({exc.strerror or exc})"
    if os.path.dirname(path) == _SHIPPED_DIR and stat.S_ISREG(st.st_mode) and st.st_size:
        # The package's own bundles: the test suite parses each one (tests/unit/test_cabundle.py)
        # and loading 100 roots costs ~20 ms of a Lambda cold start. Present is enough here.
        return None
    return _parse_problem(path, st.st_ino, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _parse_problem(path: str, _ino: int, _size: int, _mtime: int) -> str | None:
    try:
        certificates = ca_certificates(path)  # one parse shared with the other checks
    except ssl.SSLError:
        return f"{path!r} holds no PEM certificate"
    except (OSError, ValueError) as exc:
        return f"{path!r} cannot be read ({exc})"
    if not certificates:
        return f"{path!r} holds no CA certificate"
    return None


class ContextCheck(tuple[str, bool]):
    """What a user's ``SSLContext`` verifies: the roots it holds and whether it checks the name.

    A pair written out by hand: a named tuple costs a cold start ~0.2 ms to build.
    """

    __slots__ = ()

    def __new__(cls, roots: str, hostname_checked: bool) -> ContextCheck:
        return tuple.__new__(cls, (roots, hostname_checked))

    @property
    def roots(self) -> str:
        return self[0]

    @property
    def hostname_checked(self) -> bool:
        return self[1]

    def __repr__(self) -> str:
        return f"ContextCheck(roots={self[0]!r}, hostname_checked={self[1]!r})"


def context_problem(context: ssl.SSLContext) -> str | ContextCheck:
    """A reason ``context`` would accept an unverified server, or what it verifies.

    ``CERT_REQUIRED`` only (``CERT_NONE`` accepts anything; ``CERT_OPTIONAL`` is not a
    promise we can make), and at least one CA certificate loaded. A context that only
    points at a directory of roots (``capath``, loaded lazily) cannot be told apart from
    one with none; no system store holds the RDS roots anyway, so both are refused.
    """
    if getattr(context, "keylog_filename", None):
        return (f"it writes the TLS secrets to the key log {context.keylog_filename!r} "
                "(keylog_filename, set from SSLKEYLOGFILE by ssl.create_default_context), "
                "where anyone who can read that file can decrypt the token")
    if context.verify_mode != ssl.CERT_REQUIRED:
        mode = ssl.VerifyMode(context.verify_mode).name
        return f"its verify_mode is {mode}, so any certificate is accepted"
    loaded = context.cert_store_stats().get("x509_ca", 0)
    if loaded:
        return ContextCheck(f"{loaded} CA certificate(s) in the context", context.check_hostname)
    return "it holds no CA certificate: call load_verify_locations() with the RDS bundle"
