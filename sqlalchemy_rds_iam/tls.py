"""Cached verifying ``SSLContext`` objects for drivers (which CA file: ``cabundle.py``).

Drivers that take an ``SSLContext`` (pg8000, asyncpg, aiomysql, asyncmy) use it as-is, for
every connection: one context per set of inputs is built once (loading the bundle's roots
costs milliseconds, which would otherwise stall an event loop on every connect) and is
never modified after it is returned.
"""

from __future__ import annotations

import functools
import ssl

__all__ = ["TLS_MODES", "ssl_context"]

#: ``verify-full`` checks the chain and the hostname; ``verify-ca`` only the chain.
TLS_MODES = ("verify-full", "verify-ca")


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
    context = ssl.create_default_context(cafile=ca_bundle, capath=capath)
    context.check_hostname = mode == "verify-full"
    context.verify_mode = ssl.CERT_REQUIRED
    if certfile:
        context.load_cert_chain(certfile, keyfile)
    if ciphers:
        context.set_ciphers(ciphers)
    return context
