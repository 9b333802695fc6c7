"""The emulator's TLS relay: one port per real-looking endpoint whose certificate differs.

A server presents one certificate, but the emulator's endpoints must present certificates
from different stand-in CAs (GovCloud, China, Amazon roots for RDS Proxy and DSQL). The
relay terminates TLS with the endpoint's certificate and re-encrypts to the real server
(verifying the server's own certificate), speaking each protocol's TLS upgrade: PostgreSQL's
``SSLRequest`` and MySQL's ``SSL Request`` packet after the server greeting. Bytes inside
TLS pass unchanged, so the login (and the IAM token in it) is the server's business and
reaches it only after the client verified the relay's certificate.

Standard library only, run as ``python -I -S relay.py --config FILE`` (like the verifier).
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import ssl
import struct
import sys
from typing import Any

_SSL_REQUEST = struct.pack("!II", 8, 80877103)
_GSSENC_REQUEST = 80877104
_CLIENT_SSL = 0x0800
_CHUNK = 65536


Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    """Read exactly ``size`` bytes and no more: what follows (a TLS ClientHello) must stay
    in the kernel for the TLS layer, not in a stream's buffer."""
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < size:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, size - len(data)), 10)
        if not chunk:
            raise ConnectionError("peer closed during the TLS upgrade")
        data += chunk
    return data


async def _streams(
    sock: socket.socket, ctx: ssl.SSLContext | None, *, server_side: bool
) -> Streams:
    """Streams over ``sock``, with TLS (``ctx``) as the server or as the backend's client."""
    if not server_side:
        if ctx is None:
            return await asyncio.open_connection(sock=sock)
        return await asyncio.open_connection(
            sock=sock, ssl=ctx, server_hostname="localhost", ssl_handshake_timeout=10
        )
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_CHUNK)
    protocol = asyncio.StreamReaderProtocol(reader)
    transport, _ = await loop.connect_accepted_socket(
        lambda: protocol, sock, ssl=ctx, ssl_handshake_timeout=10 if ctx else None
    )
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        try:
            writer.close()
        except Exception:  # noqa: S110 -- closing a broken transport
            pass


class Relay:
    """One listening port: ``protocol``, its certificate, the server behind it."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_ctx.load_cert_chain(settings["cert"], settings["key"])
        self.backend_ctx = ssl.create_default_context(cafile=settings["backend_ca"])

    async def _backend(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, ("127.0.0.1", self.settings["backend_port"]))
        return sock

    async def handle(self, client: socket.socket) -> None:
        backend: socket.socket | None = None
        pair: list[Streams] = []
        try:
            backend = await self._backend()
            start_tls = self._mysql if self.settings["protocol"] == "mysql" else self._postgresql
            upgrade = await start_tls(client, backend)
            # Client side first: the client already sent its ClientHello.
            pair.append(await _streams(client, self.server_ctx if upgrade else None,
                                       server_side=True))
            pair.append(await _streams(backend, self.backend_ctx if upgrade else None,
                                       server_side=False))
            (c_reader, c_writer), (b_reader, b_writer) = pair
            await asyncio.gather(_pipe(c_reader, b_writer), _pipe(b_reader, c_writer))
        except (ConnectionError, ssl.SSLError, OSError, asyncio.IncompleteReadError,
                asyncio.TimeoutError) as exc:
            print(f"relay {self.settings['port']}: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            for _, writer in pair:
                writer.close()
            # Sockets not (yet) owned by a stream's transport are ours to close.
            for sock in (client, backend)[len(pair):]:
                if sock is not None:
                    sock.close()

    async def _postgresql(self, client: socket.socket, backend: socket.socket) -> bool:
        """PostgreSQL's SSLRequest: answer it ourselves, make our own to the server."""
        loop = asyncio.get_running_loop()
        first = await _recv_exactly(client, 8)
        while struct.unpack("!II", first)[1] == _GSSENC_REQUEST:
            await loop.sock_sendall(client, b"N")  # no GSSAPI encryption: TLS is asked next
            first = await _recv_exactly(client, 8)
        if first != _SSL_REQUEST:
            await loop.sock_sendall(backend, first)  # plaintext: the server refuses it
            return False
        await loop.sock_sendall(backend, _SSL_REQUEST)
        if await _recv_exactly(backend, 1) != b"S":
            raise ConnectionError("the server refused TLS")
        await loop.sock_sendall(client, b"S")
        return True

    async def _mysql(self, client: socket.socket, backend: socket.socket) -> bool:
        """MySQL: pass the greeting on, then the client's SSL Request; TLS starts after it."""
        loop = asyncio.get_running_loop()
        header = await _recv_exactly(backend, 4)
        greeting = await _recv_exactly(backend, int.from_bytes(header[:3], "little"))
        await loop.sock_sendall(client, header + greeting)
        header = await _recv_exactly(client, 4)
        packet = await _recv_exactly(client, int.from_bytes(header[:3], "little"))
        await loop.sock_sendall(backend, header + packet)
        flags = int.from_bytes(packet[:4], "little") if len(packet) >= 4 else 0
        return len(packet) == 32 and bool(flags & _CLIENT_SSL)


async def _accept(listener: socket.socket, relay: Relay, tasks: set[asyncio.Task[None]]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        client, _ = await loop.sock_accept(listener)
        client.setblocking(False)
        task = asyncio.ensure_future(relay.handle(client))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


async def serve(config: dict[str, Any]) -> None:
    relays = [Relay(settings) for settings in config["listeners"]]
    tasks: set[asyncio.Task[None]] = set()
    listeners = []
    for relay in relays:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", relay.settings["port"]))
        listener.listen(128)
        listener.setblocking(False)
        listeners.append(listener)
        tasks.add(asyncio.ensure_future(_accept(listener, relay, tasks)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with open(config["ready_file"], "w", encoding="utf-8") as fh:
        fh.write("ready\n")
    await stop.wait()
    for listener in listeners:
        listener.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "--config":
        print("usage: relay.py --config FILE", file=sys.stderr)
        return 2
    with open(args[1], encoding="utf-8") as fh:
        config = json.load(fh)
    asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
