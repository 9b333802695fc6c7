"""Verify RDS IAM authentication tokens the way RDS does, with the standard library only.

An RDS IAM token is a SigV4 query-string presigned URL without its scheme::

    <host>:<port>/?Action=connect&DBUser=<user>&X-Amz-Algorithm=AWS4-HMAC-SHA256
        &X-Amz-Credential=<key id>/<date>/<region>/rds-db/aws4_request&X-Amz-Date=...
        &X-Amz-Expires=900[&X-Amz-Security-Token=...]&X-Amz-SignedHeaders=host
        &X-Amz-Signature=<hex>

:func:`verify_token` recomputes the signature independently of botocore (botocore is the
reference implementation the tests compare against, so it must not also be the judge) and
checks every field RDS checks. Each rejection comes with a reason of the form
``"<code>: <detail>"``; the codes are the ``REASON_*`` constants below.

The module is also the emulator's long-running verifier process (``--serve``): one per
emulator, run by the emulator as root from a copy in its state directory, hence standard
library only and no import from the rest of the package. It listens on one Unix socket per
server (owned by that server's user, mode 0600), where the emulator's PAM module
(``pam_rds_iam.c``) sends the login user and the whole password; it answers accept or reject
and appends one JSON line per decision to that server's log. The log never holds the token's
text or any secret: only its length, a short SHA-256 fingerprint (so a test can find its own
login), the access key id and the reason. Identities and the rate limit are re-read from the
config file when it changes, so identities can be added and retired without a restart.

On top of :func:`verify_token`, the process emulates RDS's IAM throttling (off unless the
config sets ``rate_limit``): a token not seen before counts against ``rate_limit`` new tokens
per second per server, beyond which it is refused (``throttled``); a token seen before, as a
client's token cache reuses it, is never throttled.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as _dt
import hashlib
import hmac
import json
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

__all__ = [
    "MAX_CLOCK_SKEW",
    "MAX_EXPIRES",
    "Credential",
    "RateLimiter",
    "Verdict",
    "VerifierService",
    "main",
    "token_fingerprint",
    "verify_token",
]


def _load_by_path(name: str, path: str) -> Any:
    """Run the module file ``path`` as top-level module ``name`` (in ``sys.modules`` first:
    dataclasses look their module up). The verifier process runs copies in the state dir
    without the package (``python -I -S``), so it cannot import its siblings."""
    import importlib.util

    module_spec = importlib.util.spec_from_file_location(name, path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


def _sibling(name: str) -> Any:
    """``<name>.py`` from this file's directory, loaded by path once per process."""
    module = sys.modules.get(name)
    if module is None:
        here = os.path.dirname(os.path.abspath(__file__))
        module = _load_by_path(name, os.path.join(here, f"{name}.py"))
    return module


if TYPE_CHECKING:
    from sqlalchemy_rds_iam.testing import sigv4_check
else:
    sigv4_check = _sibling("sigv4_check")


#: RDS refuses presigned tokens valid for longer than 15 minutes.
MAX_EXPIRES = 900
#: Tokens dated this many seconds ahead of the server's clock are still accepted (clock skew).
MAX_CLOCK_SKEW = 300
#: Longest password the PAM module forwards (RDS tokens are at most a few kilobytes).
MAX_TOKEN_BYTES = 64 * 1024

SERVICE = "rds-db"
ALGORITHM = "AWS4-HMAC-SHA256"
_AMZ_DATE = "%Y%m%dT%H%M%SZ"

REASON_OK = "ok"
REASON_TRUNCATED = "truncated"
REASON_THROTTLED = "throttled"
REASON_CONFIG = "config"
REASON_MALFORMED = "malformed"
REASON_ACTION = "action"
REASON_USER = "user"
REASON_ALGORITHM = "algorithm"
REASON_SIGNED_HEADERS = "signed-headers"
REASON_SCOPE = "scope"
REASON_EXPIRES = "expires"
REASON_EXPIRED = "expired"
REASON_FUTURE = "future"
REASON_ENDPOINT = "endpoint"
REASON_ACCESS_KEY = "access-key"
REASON_SESSION_TOKEN = "session-token"  # noqa: S105 -- a reason code, not a secret
REASON_SIGNATURE = "signature"
REASON_POLICY = "policy"
REASON_DSQL = "dsql"


@dataclass(frozen=True)
class Credential:
    """One signing identity the emulated account knows: what IAM would hold for a key id."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    name: str = ""

    def __repr__(self) -> str:
        # Keep secrets out of tracebacks and logs.
        return f"Credential(name={self.name!r}, access_key_id={self.access_key_id!r})"


@dataclass(frozen=True)
class Verdict:
    """The decision on one token; ``reason`` is ``"<code>: <detail>"`` or ``"ok"``."""

    ok: bool
    reason: str
    access_key_id: str | None = None

    @property
    def code(self) -> str:
        """The stable part of the reason (one of the ``REASON_*`` constants)."""
        return self.reason.partition(":")[0]


def _reject(code: str, detail: str, access_key_id: str | None = None) -> Verdict:
    return Verdict(False, f"{code}: {detail}", access_key_id)


def _show(value: str, limit: int = 64) -> str:
    """Quote an attacker-controlled value for a reason string, bounded in length."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def _parse_query(query: str) -> dict[str, str] | str:
    """Decode the query into a dict, or return why it is malformed (duplicates are refused)."""
    params: dict[str, str] = {}
    for pair in query.split("&"):
        if not pair:
            continue
        raw_key, sep, raw_value = pair.partition("=")
        if not sep:
            return f"query parameter without '=': {_show(raw_key)}"
        key, value = unquote(raw_key), unquote(raw_value)
        if key in params:
            return f"duplicate query parameter {_show(key)}"
        params[key] = value
    return params


def _parse_amz_date(text: str) -> float | None:
    """``YYYYMMDDTHHMMSSZ`` as Unix time (by hand: strptime's imports cost every login)."""
    digits = text[:8] + text[9:15]
    if len(text) != 16 or text[8] != "T" or text[15] != "Z" or not digits.isdigit():
        return None
    year, month, day = int(digits[:4]), int(digits[4:6]), int(digits[6:8])
    hour, minute, second = int(digits[8:10]), int(digits[10:12]), int(digits[12:14])
    try:
        moment = _dt.datetime(year, month, day, hour, minute, second, tzinfo=_dt.timezone.utc)
        return moment.timestamp()
    except ValueError:
        return None


def signature_for(host: str, params: Mapping[str, str], secret: str, date: str, region: str) -> str:
    """Return the hex SigV4 signature of a presigned ``GET /`` for ``host`` (no botocore)."""
    scope = f"{date}/{region}/{SERVICE}/aws4_request"
    return str(sigv4_check.presigned_get_signature(_canonical_host(host), params, secret, scope))


def _canonical_host(host: str) -> str:
    # botocore drops the scheme's default port from the Host header (https: 443).
    name, sep, port = host.rpartition(":")
    return name if sep and port == "443" else host


def verify_token(
    token: str,
    *,
    endpoints: Iterable[str],
    region: str,
    user: str,
    credentials: Mapping[str, Credential],
    now: float | None = None,
    policy: Mapping[str, Collection[str]] | None = None,
) -> Verdict:
    """Decide whether ``token`` lets ``user`` log in to a server reachable at ``endpoints``.

    ``endpoints`` are ``host:port`` strings the server answers to; ``credentials`` maps access
    key id to :class:`Credential`; ``now`` is the server's clock (Unix time, default: now);
    ``policy`` maps a credential's name to the database users it may connect as (``"*"``: any);
    a credential absent from a given policy is denied, as IAM denies by default.
    """
    if now is None:
        now = time.time()
    if "?" not in token:
        return _reject(REASON_MALFORMED, "no '?' separating endpoint and query")
    location, _, query = token.partition("?")
    host, slash, path = location.partition("/")
    if slash != "/" or path:
        return _reject(REASON_MALFORMED, f"path must be '/', got {_show('/' + path)}")
    if "://" in host or not host:
        return _reject(REASON_MALFORMED, "token must start with host:port (no scheme)")
    parsed = _parse_query(query)
    if isinstance(parsed, str):
        return _reject(REASON_MALFORMED, parsed)
    params = parsed
    required = (
        "Action",
        "DBUser",
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
    )
    missing = [name for name in required if name not in params]
    if missing:
        return _reject(REASON_MALFORMED, "missing query parameter(s) " + ", ".join(missing))

    if params["Action"] != "connect":
        return _reject(REASON_ACTION, f"Action must be 'connect', got {_show(params['Action'])}")
    if params["DBUser"] != user:
        return _reject(
            REASON_USER,
            f"token is for DBUser {_show(params['DBUser'])}, login user is {_show(user)}",
        )
    if params["X-Amz-Algorithm"] != ALGORITHM:
        return _reject(REASON_ALGORITHM, f"unsupported {_show(params['X-Amz-Algorithm'])}")
    if params["X-Amz-SignedHeaders"] != "host":
        return _reject(
            REASON_SIGNED_HEADERS,
            f"X-Amz-SignedHeaders must be 'host', got {_show(params['X-Amz-SignedHeaders'])}",
        )

    key_id, _, scope = params["X-Amz-Credential"].partition("/")
    scope_parts = scope.split("/")
    if len(scope_parts) != 4:
        return _reject(REASON_SCOPE, f"credential scope {_show(scope)} is not date/region/...")
    date, scope_region, scope_service, terminator = scope_parts
    amz_date = params["X-Amz-Date"]
    signed_at = _parse_amz_date(amz_date)
    if signed_at is None:
        return _reject(REASON_MALFORMED, f"X-Amz-Date {_show(amz_date)} is not {_AMZ_DATE}")
    if date != amz_date[:8]:
        return _reject(REASON_SCOPE, f"scope date {_show(date)} differs from X-Amz-Date")
    if scope_region != region:
        return _reject(
            REASON_SCOPE, f"token is for region {_show(scope_region)}, server is in {region!r}"
        )
    if scope_service != SERVICE or terminator != "aws4_request":
        return _reject(
            REASON_SCOPE, f"scope must end in {SERVICE}/aws4_request, got {_show(scope)}"
        )

    raw_expires = params["X-Amz-Expires"]
    if not raw_expires.isdigit():
        return _reject(REASON_EXPIRES, f"X-Amz-Expires {_show(raw_expires)} is not an integer")
    expires = int(raw_expires)
    if expires > MAX_EXPIRES:
        return _reject(REASON_EXPIRES, f"X-Amz-Expires {expires} exceeds {MAX_EXPIRES}")
    if signed_at + expires < now:
        return _reject(
            REASON_EXPIRED, f"token expired {int(now - signed_at - expires)} s ago", key_id
        )
    if signed_at > now + MAX_CLOCK_SKEW:
        return _reject(
            REASON_FUTURE,
            f"token dated {int(signed_at - now)} s in the future (allowed skew {MAX_CLOCK_SKEW} s)",
            key_id,
        )

    allowed = set(endpoints)
    if host not in allowed:
        return _reject(
            REASON_ENDPOINT,
            f"token signed for {_show(host)}, server answers to {sorted(allowed)}",
            key_id,
        )

    credential = credentials.get(key_id)
    if credential is None:
        return _reject(REASON_ACCESS_KEY, f"unknown access key id {_show(key_id)}", key_id)
    presented = params.get("X-Amz-Security-Token")
    if credential.session_token is not None:
        if presented is None:
            return _reject(
                REASON_SESSION_TOKEN, "temporary credential signed without session token", key_id
            )
        if not hmac.compare_digest(
            presented.encode("utf-8"), credential.session_token.encode("utf-8")
        ):
            return _reject(REASON_SESSION_TOKEN, "session token does not match", key_id)
    elif presented is not None:
        return _reject(
            REASON_SESSION_TOKEN, "session token given for a long-term access key", key_id
        )

    expected = signature_for(host, params, credential.secret_access_key, date, region)
    if not hmac.compare_digest(expected.encode("ascii"), params["X-Amz-Signature"].encode()):
        return _reject(REASON_SIGNATURE, "signature does not match", key_id)

    if policy is not None:
        allowed_users = policy.get(credential.name, ())
        if "*" not in allowed_users and user not in allowed_users:
            return _reject(
                REASON_POLICY,
                f"identity {credential.name!r} may not rds-db:connect as {_show(user)}",
                key_id,
            )
    return Verdict(True, REASON_OK, key_id)


# ---------------------------------------------------------------------------------------------
# The verifier process: what the PAM module asks.


def token_fingerprint(token: str) -> str:
    """A short SHA-256 of a token: lets a test find its own login in the log.

    Safe to log: it cannot be turned back into the token (which expires within 15 minutes
    anyway).
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


class RateLimiter:
    """RDS's IAM throttle: at most ``limit`` new tokens per ``window`` seconds.

    A token seen before passes whatever the rate, as on RDS, where connections that reuse a
    token are not throttled: that is what a client-side token cache buys. ``limit=None``
    admits everything.
    """

    #: Seen tokens are forgotten once they cannot be valid any more.
    FORGET_AFTER = MAX_EXPIRES + MAX_CLOCK_SKEW

    def __init__(self, limit: int | None, window: float = 1.0) -> None:
        self.limit = limit
        self.window = window
        self._recent: collections.deque[float] = collections.deque()
        self._seen: dict[str, float] = {}

    def admit(self, fingerprint: str, now: float) -> bool:
        """Whether a login with this token may proceed at monotonic time ``now``."""
        if self.limit is None or fingerprint in self._seen:
            return True
        while self._recent and self._recent[0] <= now - self.window:
            self._recent.popleft()
        if len(self._recent) >= self.limit:
            return False
        self._recent.append(now)
        self._seen[fingerprint] = now
        if len(self._seen) % 1024 == 0:
            horizon = now - self.FORGET_AFTER
            self._seen = {k: t for k, t in self._seen.items() if t > horizon}
        return True


def _credentials(raw: Iterable[Mapping[str, Any]]) -> dict[str, Credential]:
    return {
        c["access_key_id"]: Credential(
            access_key_id=c["access_key_id"],
            secret_access_key=c["secret_access_key"],
            session_token=c.get("session_token"),
            name=c.get("name", ""),
        )
        for c in raw
    }


def _append_log(path: str | None, entry: Mapping[str, Any]) -> None:
    if not path:
        return
    line = (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8")
    # One write on an O_APPEND descriptor: lines never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


async def _read_field(reader: asyncio.StreamReader, limit: int) -> str:
    (length,) = struct.unpack(">I", await reader.readexactly(4))
    if length > limit:
        raise ValueError(f"field of {length} bytes exceeds {limit}")
    return (await reader.readexactly(length)).decode("utf-8", errors="replace")


class VerifierService:
    """The verifier process's state: config (re-read when the file changes) and throttles.

    The config is JSON: ``region``, ``credentials`` (list of ``name``, ``access_key_id``,
    ``secret_access_key``, ``session_token``), ``policy`` (identity name to allowed users),
    ``rate_limit`` (new tokens per second per server, or null), ``ready_file``, and per server
    under ``services``: ``endpoints``, ``log``, ``socket``, ``owner`` (uid that may connect)
    ``wake_port`` (PgBouncer's port; see :meth:`_wake`) and ``max_password`` (a password
    this long may have been cut by the server: refused as ``truncated``).
    """

    #: After answering PgBouncer, connect to it this many seconds later (see :meth:`_wake`).
    WAKE_DELAYS = (0.0005, 0.005, 0.05)
    #: Seconds a client may take to send its request.
    READ_TIMEOUT = 10.0

    def __init__(self, config_path: str) -> None:
        self.config_path = config_path
        self._stamp: tuple[int, int, int] | None = None
        self._config: dict[str, Any] = {}
        self._credentials: dict[str, Credential] = {}
        self._limiters: dict[str, RateLimiter] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.reload()

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        services: dict[str, dict[str, Any]] = self._config["services"]
        return services

    def reload(self) -> None:
        """Re-read the config if the file changed (the emulator replaces it atomically)."""
        st = os.stat(self.config_path)
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        with open(self.config_path, encoding="utf-8") as fh:
            config: dict[str, Any] = json.load(fh)
        credentials = _credentials(config["credentials"])
        limit = config.get("rate_limit")
        if not self._config or limit != self._config.get("rate_limit"):
            self._limiters = {name: RateLimiter(limit) for name in config["services"]}
        self._config, self._credentials, self._stamp = config, credentials, stamp

    def decide(self, service: str, user: str, token: str, now: float | None = None) -> Verdict:
        """The verdict on one login to ``service``: throttle first, then :func:`verify_token`."""
        try:
            self.reload()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return Verdict(False, f"{REASON_CONFIG}: {type(exc).__name__}: {exc}")
        cut = self.services[service].get("max_password")
        if cut is not None and len(token) >= cut:
            return _reject(
                REASON_TRUNCATED,
                f"{len(token)} characters arrived, the most {service} passes on: the token was "
                "probably cut (PgBouncer 1.18 keeps at most 2047 characters of a password)",
            )
        limiter = self._limiters[service]
        if not limiter.admit(token_fingerprint(token), time.monotonic()):
            return _reject(
                REASON_THROTTLED,
                f"IAM authentication rate exceeded ({limiter.limit} new tokens per second); "
                "reuse tokens (cache them) or retry with backoff",
            )
        svc = self.services[service]
        signed_for = token.partition("/")[0].lower()
        dsql_region = svc.get("dsql", {}).get(signed_for)
        if dsql_region is not None:
            return self._decide_dsql(signed_for, dsql_region, user, token, now)
        return verify_token(
            token,
            endpoints=svc["endpoints"],
            # Endpoints in other regions (GovCloud, China): their tokens are scoped there.
            region=svc.get("regions", {}).get(signed_for, self._config["region"]),
            user=user,
            credentials=self._credentials,
            now=time.time() if now is None else now,
            policy=self._config.get("policy"),
        )

    def _decide_dsql(
        self, host: str, region: str, user: str, token: str, now: float | None
    ) -> Verdict:
        """A token for an emulated Aurora DSQL endpoint: checked by ``dsql_verifier.py``."""
        verifier = self._dsql_verifier()
        verdict = verifier.verify_dsql_token(
            token,
            host=host,
            role=user,
            region=region,
            secrets={k: c.secret_access_key for k, c in self._credentials.items()},
            now=time.time() if now is None else now,
        )
        if not verdict.ok:
            return _reject(REASON_DSQL, verdict.reason, verdict.access_key_id)
        credential = self._credentials[verdict.access_key_id]
        presented = _parse_query(token.partition("?")[2])
        session = presented.get("X-Amz-Security-Token") if isinstance(presented, dict) else None
        if session != credential.session_token:
            return _reject(REASON_SESSION_TOKEN, "session token missing or wrong",
                           verdict.access_key_id)
        return Verdict(True, REASON_OK, verdict.access_key_id)

    def _dsql_verifier(self) -> Any:
        """``dsql_verifier.py`` (its copy in the state dir), loaded at the first DSQL login."""
        module = getattr(self, "_dsql_module", None)
        if module is None:
            module = _load_by_path("dsql_verifier", self._config["dsql_verifier"])
            self._dsql_module = module
        return module

    def handle(self, service: str, user: str, token: str) -> Verdict:
        """Decide and log one login."""
        started = time.time()
        verdict = self.decide(service, user, token, started)
        entry = {
            "time": started,
            "service": service,
            "user": user,
            "ok": verdict.ok,
            "reason": verdict.reason,
            "access_key_id": verdict.access_key_id,
            "token_length": len(token),
            "token_sha256": token_fingerprint(token),
            "elapsed_ms": round((time.time() - started) * 1000, 3),
        }
        try:
            _append_log(self.services[service].get("log"), entry)
        except OSError as exc:
            print(f"rds-iam verifier: cannot write log: {exc}", file=sys.stderr, flush=True)
        return verdict

    async def _client(
        self, service: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            # The PAM module sends at once; a peer that stalls is dropped, not waited for.
            user, token = await asyncio.wait_for(self._read_request(reader), self.READ_TIMEOUT)
            verdict = self.handle(service, user, token)
            writer.write(b"1" if verdict.ok else b"0rds-iam: " + verdict.reason.encode())
            await writer.drain()
        except (asyncio.IncompleteReadError, ValueError, ConnectionError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()
        self._wake(self.services[service].get("wake_port"))

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str]:
        return await _read_field(reader, 1024), await _read_field(reader, MAX_TOKEN_BYTES)

    def _handler(
        self, service: str
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._client(service, reader, writer)

        return handle

    def _wake(self, port: int | None) -> None:
        """Make PgBouncer look at its PAM results now rather than at its next timer.

        PgBouncer runs PAM in a worker thread that only sets a status flag; its main loop
        collects the flag (``pam_poll``) after each libevent iteration, and with nothing
        else to do that iteration ends at the next maintenance timer, every 1/3 s. Hence
        ~330 ms per login. Any event ends the iteration: a TCP connection to its listening
        port is one. Several, because the worker sets the flag shortly after PAM returns.
        """
        if not port:
            return
        loop = asyncio.get_running_loop()
        for delay in self.WAKE_DELAYS:
            loop.call_later(delay, self._spawn, self._poke(port))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _poke(port: int) -> None:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return
        writer.close()

    async def serve(self, stop: asyncio.Event | None = None) -> None:
        """Listen on every server's socket until ``stop`` is set (default: SIGTERM, SIGINT)."""
        if stop is None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
        listeners = []
        for name, svc in self.services.items():
            path = svc["socket"]
            if os.path.exists(path):
                os.unlink(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old_umask = os.umask(0o177)  # 0600 from bind on: nobody connects before chown
            try:
                sock.bind(path)
            finally:
                os.umask(old_umask)
            os.chown(path, int(svc["owner"]), -1)
            listeners.append(
                await asyncio.start_unix_server(self._handler(name), sock=sock, backlog=512)
            )
        ready = self._config.get("ready_file")
        if ready:
            with open(ready, "w", encoding="utf-8") as fh:
                fh.write(str(os.getpid()))
        await stop.wait()
        for listener in listeners:
            listener.close()
            await listener.wait_closed()


_USAGE = """\
usage: verifier.py --config CONFIG.json

The RDS IAM emulator's verifier process: answers the emulator's PAM module on one Unix
socket per server until SIGTERM.
"""


def main(argv: list[str] | None = None) -> int:
    """Run the verifier process; exit status 2 is a usage error."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "--config":
        sys.stderr.write(_USAGE)
        return 2
    asyncio.run(VerifierService(args[1]).serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
