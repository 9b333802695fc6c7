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

The module is also the script PAM runs (``pam_exec.so expose_authtok``) as the database
server's unprivileged user, under the system ``/usr/bin/python3``: hence standard library
only, and no import from the rest of the package. In script mode it reads the token from
stdin, the login user from ``PAM_USER``, the credentials from ``--config``, exits 0 to accept
and 1 to reject, and appends one JSON line per decision to the configured log. The log never
holds the token's text or any secret: only its length, a short SHA-256 fingerprint (so a test
can find its own login), the access key id and the reason.

Limitation: pam_exec hands the password over truncated to ``PAM_MAX_RESP_SIZE`` (512 bytes
including the terminating NUL, so at most 511 characters arrive). A token that long may have
been cut, so script mode rejects it with reason ``truncated``. Tokens signed without a session
token are about 330 characters; the emulator therefore issues temporary credentials with a
short session token. Real STS session tokens (several hundred characters) cannot be tested
through the emulator's servers; :func:`verify_token` itself has no length limit.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import os
import sys
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "MAX_CLOCK_SKEW",
    "MAX_EXPIRES",
    "PAM_MAX_TOKEN_CHARS",
    "Credential",
    "Verdict",
    "main",
    "token_fingerprint",
    "verify_token",
]

#: RDS refuses presigned tokens valid for longer than 15 minutes.
MAX_EXPIRES = 900
#: Tokens dated this many seconds ahead of the server's clock are still accepted (clock skew).
MAX_CLOCK_SKEW = 300
#: pam_exec's expose_authtok delivers at most this many characters; longer input was cut.
PAM_MAX_TOKEN_CHARS = 510

SERVICE = "rds-db"
ALGORITHM = "AWS4-HMAC-SHA256"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_AMZ_DATE = "%Y%m%dT%H%M%SZ"

REASON_OK = "ok"
REASON_TRUNCATED = "truncated"
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


def _canonical_query(params: Mapping[str, str]) -> str:
    # SigV4: URI-encode every key and value (unreserved characters kept), sort by key,
    # and leave the signature itself out.
    encoded = sorted(
        (quote(k, safe="-_.~"), quote(v, safe="-_.~"))
        for k, v in params.items()
        if k != "X-Amz-Signature"
    )
    return "&".join(f"{k}={v}" for k, v in encoded)


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode("utf-8")
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def _canonical_host(host: str) -> str:
    # botocore drops the scheme's default port from the Host header (https: 443).
    name, sep, port = host.rpartition(":")
    return name if sep and port == "443" else host


def signature_for(host: str, params: Mapping[str, str], secret: str, date: str, region: str) -> str:
    """Return the hex SigV4 signature of a presigned ``GET /`` for ``host`` (no botocore)."""
    canonical_request = "\n".join(
        [
            "GET",
            "/",
            _canonical_query(params),
            f"host:{_canonical_host(host)}",
            "",
            "host",
            _EMPTY_SHA256,
        ]
    )
    scope = f"{date}/{region}/{SERVICE}/aws4_request"
    string_to_sign = "\n".join(
        [
            ALGORITHM,
            params["X-Amz-Date"],
            scope,
            hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
        ]
    )
    key = _signing_key(secret, date, region, SERVICE)
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


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
# Script mode: what PAM runs.


def load_config(path: str, service: str) -> dict[str, Any]:
    """Read the JSON config and return the fields for ``service`` (see the emulator)."""
    with open(path, encoding="utf-8") as fh:
        config: dict[str, Any] = json.load(fh)
    services: dict[str, Any] = config["services"]
    if service not in services:
        raise KeyError(f"service {service!r} not in {path}")
    return {
        "region": config["region"],
        "credentials": {
            c["access_key_id"]: Credential(
                access_key_id=c["access_key_id"],
                secret_access_key=c["secret_access_key"],
                session_token=c.get("session_token"),
                name=c.get("name", ""),
            )
            for c in config["credentials"]
        },
        "policy": config.get("policy"),
        "endpoints": services[service]["endpoints"],
        "log": services[service].get("log"),
    }


def token_fingerprint(token: str) -> str:
    """A short SHA-256 of what PAM handed over: lets a test find its own login in the log.

    Safe to log: it cannot be turned back into the token (which expires within 15 minutes
    anyway). Input longer than pam_exec passes is cut the same way first.
    """
    arrived = token[: PAM_MAX_TOKEN_CHARS + 1]
    return hashlib.sha256(arrived.encode("utf-8")).hexdigest()[:16]


def _append_log(path: str | None, entry: Mapping[str, Any]) -> None:
    if not path:
        return
    line = (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8")
    # One write on an O_APPEND descriptor: concurrent logins don't interleave lines.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _read_token(stream: Any) -> str:
    data: bytes = stream.read()
    # pam_exec writes the authtok NUL-terminated; a human feeding stdin adds a newline.
    data = data.split(b"\0", 1)[0].rstrip(b"\r\n")
    return data.decode("utf-8", errors="replace")


_USAGE = """\
usage: verifier.py --config CONFIG.json --service NAME

PAM helper (pam_exec expose_authtok): verify the RDS IAM token read from stdin for $PAM_USER.
Exit status 0 accepts the login, 1 rejects it, 2 is a usage error.
"""


def _parse_args(argv: list[str]) -> dict[str, str] | None:
    # Not argparse: it would add ~8 ms of imports to every database login.
    options: dict[str, str] = {}
    it = iter(argv)
    for arg in it:
        name, eq, value = arg.partition("=")
        if name not in ("--config", "--service"):
            return None
        options[name[2:]] = value if eq else next(it, "")
    return options if options.get("config") and options.get("service") else None


def main(argv: list[str] | None = None) -> int:
    """Script entry point: exit status 0 accepts the login, 1 rejects it."""
    options = _parse_args(sys.argv[1:] if argv is None else argv)
    if options is None:
        sys.stderr.write(_USAGE)
        return 2
    started = time.time()
    user = os.environ.get("PAM_USER", "")
    token = _read_token(sys.stdin.buffer)
    log_path: str | None = None
    try:
        config = load_config(options["config"], options["service"])
        log_path = config["log"]
        if len(token) > PAM_MAX_TOKEN_CHARS:
            verdict = _reject(
                REASON_TRUNCATED,
                f"{len(token)} characters arrived, the most pam_exec passes on "
                "(PAM_MAX_RESP_SIZE): the token was probably cut; sign with a shorter "
                "session token",
            )
        else:
            verdict = verify_token(
                token,
                endpoints=config["endpoints"],
                region=config["region"],
                user=user,
                credentials=config["credentials"],
                now=started,
                policy=config["policy"],
            )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        verdict = Verdict(False, f"config: {type(exc).__name__}: {exc}")
    entry = {
        "time": started,
        "service": options["service"],
        "pam_service": os.environ.get("PAM_SERVICE"),
        "user": user,
        "ok": verdict.ok,
        "reason": verdict.reason,
        "access_key_id": verdict.access_key_id,
        "token_length": len(token),
        "token_sha256": token_fingerprint(token),
        "elapsed_ms": round((time.time() - started) * 1000, 3),
    }
    try:
        _append_log(log_path, entry)
    except OSError as exc:
        print(f"rds-iam verifier: cannot write log: {exc}", file=sys.stderr)
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
