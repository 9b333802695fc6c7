"""aiomysql's row parts: ``ssl=SSLContext`` and a connection class that refuses a server
without TLS (aiomysql itself would continue in plain text), with PyMySQL 1.2's bytes escaping."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Mapping, Sequence
from typing import Any

from ..tls import ssl_context
from ..transport import Transport, refuse
from .rules import (
    _MYSQL_COMMON,
    _PYMYSQL_FAMILY,
    CHECKED,
    HARMLESS,
    CParams,
    _absent,
    _from_context,
    _keywords,
    _scrub_attrs,
    _tcp_host,
    _wants_default,
)
from .tlsargs import _context_from_ssl_dict, _option_file


def _aiomysql_prepare(cparams: CParams, ca_bundle: str, mode: str) -> None:
    """aiomysql takes only an ``SSLContext``, and skips TLS silently if the server lacks it.

    So the context is always ours (or the user's), and SQLAlchemy's ``async_creator_fn``
    hook connects through :func:`connect_aiomysql_requiring_tls`.
    """
    value = cparams.get("ssl")
    if isinstance(value, Mapping):
        cparams["ssl"] = _context_from_ssl_dict(value, ca_bundle, mode)
    elif _wants_default(value):
        cparams["ssl"] = ssl_context(ca_bundle, mode)
    cparams.setdefault("async_creator_fn", connect_aiomysql_requiring_tls)


def _aiomysql_classify(cargs: Sequence[Any], cparams: Mapping[str, Any]) -> Transport:
    if cparams.get("async_creator_fn") is not connect_aiomysql_requiring_tls:
        refuse("async_creator_fn", "replaces the connect function that refuses a server "
                "without TLS (aiomysql itself would silently continue in plain text)",
                "remove it")
    _absent(cparams, "unix_socket", "is a Unix socket (RDS is only reached over TCP)")
    _tcp_host(cparams)
    _option_file(cparams, ["client"] if cparams.get("read_default_group") is None else [])
    return _from_context("ssl", cparams.get("ssl"))


@functools.lru_cache(maxsize=1)
def _aiomysql_connection_class() -> type[Any]:
    """``aiomysql.Connection`` that raises before authenticating unless the socket is TLS."""
    import aiomysql
    from pymysql.constants import CLIENT, CR

    class TlsOnlyConnection(aiomysql.Connection):  # type: ignore[misc]
        async def _request_authentication(self) -> None:
            offered = bool(self.server_capabilities & CLIENT.SSL)
            if not (isinstance(self._ssl_context, ssl.SSLContext) and offered):
                raise aiomysql.OperationalError(
                    CR.CR_SSL_CONNECTION_ERROR,
                    "the server does not offer TLS; refusing to send the IAM token in plain text",
                )
            try:
                await super()._request_authentication()
            except BaseException:
                # A refused login (or TLS handshake) after the upgrade: aiomysql closes the
                # TLS transport without waiting, so a loop that ends now (asyncio.run right
                # after the error) leaves the socket open until gc finds the cycle.
                await _closed_fully(self._writer)
                raise

        async def ensure_closed(self) -> None:
            # aiomysql's own returns before the TLS shutdown has closed the socket.
            writer = self._writer
            await super().ensure_closed()
            await _closed_fully(writer)

        def escape(self, obj: Any) -> Any:
            # aiomysql 0.3.2 escapes bytes with PyMySQL's escape_bytes_prefixed, which PyMySQL
            # 1.2.1+ replaced by a string (every bytes parameter then fails); PyMySQL 1.1 is no
            # way out, it sends the token to a server that drops TLS. So: PyMySQL 1.2's own
            # rendering, a hex literal (nothing in it to escape).
            if isinstance(obj, (bytes, bytearray)):
                return f"_binary X'{bytes(obj).hex()}'"
            return super().escape(obj)

    return TlsOnlyConnection


async def _closed_fully(writer: Any) -> None:
    """Close an asyncio ``StreamWriter`` and wait (briefly) until its socket is closed.

    Closing a TLS transport only starts the TLS shutdown; the socket closes once the peer
    answers. Not waiting leaks the socket (a ResourceWarning) when the loop ends first.
    """
    if writer is None:
        return
    import asyncio

    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), _CLOSE_WAIT_SECONDS)
    except Exception:  # the connection is going away either way: make sure it is gone
        writer.transport.abort()


_CLOSE_WAIT_SECONDS = 2.0


async def connect_aiomysql_requiring_tls(**kwargs: Any) -> Any:
    """``aiomysql.connect`` with :func:`_aiomysql_connection_class`: TLS or no login at all."""
    connection = _aiomysql_connection_class()(**kwargs)
    await connection._connect()
    return connection


#: aiomysql 0.3 ``connect(host, user, password, db, port, unix_socket, charset, sql_mode,
#: read_default_file, conv, use_unicode, client_flag, cursorclass, init_command,
#: connect_timeout, read_default_group, autocommit, echo, local_infile, loop, ssl,
#: auth_plugin, program_name, server_public_key)``.
_AIOMYSQL_KEYWORDS = _keywords("aiomysql", _MYSQL_COMMON, _PYMYSQL_FAMILY, {
    "async_creator_fn": CHECKED,
    **dict.fromkeys(("cursorclass", "echo", "loop", "auth_plugin"), HARMLESS),
})


#: The row's parts (``drivers._build`` adds the facts).
ROWS: Mapping[str, Mapping[str, Any]] = {
    "aiomysql": {"keywords": _AIOMYSQL_KEYWORDS, "prepare": _aiomysql_prepare,
                 "classify": _aiomysql_classify, "scrub": _scrub_attrs("_password")},
}
