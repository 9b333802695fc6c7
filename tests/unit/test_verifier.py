"""The emulator's token verifier against botocore, the reference signer; offline, fixed clock."""

from __future__ import annotations

import ast
import asyncio
import datetime
import json
import os
import socket
import struct
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sqlalchemy_rds_iam.testing import verifier
from sqlalchemy_rds_iam.testing.presign import presign_token
from sqlalchemy_rds_iam.testing.verifier import Credential, Verdict, verify_token

REGION = "us-east-1"
HOST, PORT = "localhost", 5432
ENDPOINTS = (f"{HOST}:{PORT}", f"127.0.0.1:{PORT}")
SIGNED_AT = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
NOW = SIGNED_AT.timestamp() + 60

LONG_TERM = Credential(
    "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", None, "primary"
)
TEMPORARY = Credential(
    "ASIAEXAMPLE000000001",
    "temporarySecretKey/0123456789abcdefghij",
    "FQoGZXIvYXdzE+/=",
    "temporary",
)
RESTRICTED = Credential(
    "AKIAEXAMPLE000000002", "restrictedSecretKey+0123456789abcdefghi", None, "restricted"
)
CREDENTIALS = {c.access_key_id: c for c in (LONG_TERM, TEMPORARY, RESTRICTED)}
POLICY = {"primary": ["*"], "temporary": ["*"], "restricted": ["iamuser2"]}

# botocore's token for LONG_TERM at SIGNED_AT: pins both signers to one known value.
PINNED_TOKEN = (
    "localhost:5432/?Action=connect&DBUser=iamuser&X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240501%2Fus-east-1%2Frds-db%2Faws4_request"
    "&X-Amz-Date=20240501T120000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=f09921f751655071979ca7505c90aa90f47e62c354c0eb2e1728d5196df5f4d9"
)


@pytest.fixture
def fixed_clock() -> Iterator[None]:
    """botocore signs at SIGNED_AT."""
    naive = SIGNED_AT.replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=naive):
        yield


def boto3_token(cred: Credential, user: str = "iamuser", port: int = PORT, **kw: str | None) -> str:
    """The reference: what boto3's generate_db_auth_token returns."""
    client = boto3.client(
        "rds",
        region_name=REGION,
        aws_access_key_id=kw.get("key", cred.access_key_id),
        aws_secret_access_key=kw.get("secret", cred.secret_access_key),
        aws_session_token=kw.get("session", cred.session_token),
    )
    return str(client.generate_db_auth_token(HOST, port, user))


def check(token: str, user: str = "iamuser", now: float = NOW, **kw: object) -> Verdict:
    args: dict[str, object] = {
        "endpoints": ENDPOINTS,
        "region": REGION,
        "user": user,
        "credentials": CREDENTIALS,
        "now": now,
        "policy": POLICY,
    }
    args.update(kw)
    return verify_token(token, **args)  # type: ignore[arg-type]


def presign(cred: Credential = LONG_TERM, **kw: object) -> str:
    args: dict[str, object] = {
        "access_key_id": cred.access_key_id,
        "secret_access_key": cred.secret_access_key,
        "session_token": cred.session_token,
        "region": REGION,
        "signed_at": SIGNED_AT,
    }
    args.update(kw)
    port = int(args.pop("port", PORT))  # type: ignore[call-overload]
    user = str(args.pop("user", "iamuser"))
    return presign_token(HOST, port, user, **args)  # type: ignore[arg-type]


def replace_param(token: str, name: str, value: str) -> str:
    head, _, query = token.partition("?")
    pairs = [p.partition("=") for p in query.split("&")]
    return head + "?" + "&".join(f"{k}={value if k == name else v}" for k, _, v in pairs)


# -- accepted ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("fixed_clock")
def test_boto3_token_is_pinned_and_verifies() -> None:
    token = boto3_token(LONG_TERM)
    assert token == PINNED_TOKEN
    assert check(token) == Verdict(True, "ok", LONG_TERM.access_key_id)


@pytest.mark.usefixtures("fixed_clock")
def test_temporary_credentials_with_encoded_session_token_verify() -> None:
    token = boto3_token(TEMPORARY)
    assert "X-Amz-Security-Token=FQoGZXIvYXdzE%2B%2F%3D" in token
    assert check(token).ok


@pytest.mark.usefixtures("fixed_clock")
def test_presign_token_matches_boto3() -> None:
    assert presign(TEMPORARY) == boto3_token(TEMPORARY)


@pytest.mark.usefixtures("fixed_clock")
def test_user_names_needing_encoding_verify() -> None:
    user = "iam user+x~é"
    assert check(boto3_token(LONG_TERM, user=user), user=user).ok


def test_token_for_ip_endpoint_verifies() -> None:
    token = presign_token(
        "127.0.0.1",
        PORT,
        "iamuser",
        access_key_id=LONG_TERM.access_key_id,
        secret_access_key=LONG_TERM.secret_access_key,
        region=REGION,
        signed_at=SIGNED_AT,
    )
    assert check(token).ok


def test_port_443_is_left_out_of_the_host_header_as_botocore_does() -> None:
    token = presign(port=443)
    assert check(token, endpoints=["localhost:443"]).ok


def test_without_policy_every_known_identity_may_connect() -> None:
    assert check(presign(RESTRICTED), policy=None).ok


def test_restricted_identity_may_connect_as_its_user() -> None:
    assert check(presign(RESTRICTED, user="iamuser2"), user="iamuser2").ok


def test_validity_window_edges() -> None:
    token = presign()
    signed = SIGNED_AT.timestamp()
    assert check(token, now=signed + 900).ok
    assert check(token, now=signed - verifier.MAX_CLOCK_SKEW).ok
    assert check(presign(expires=1), now=signed + 1).ok


# -- rejected ----------------------------------------------------------------------------------


def tampered_signature(token: str) -> str:
    last = token[-1]
    return token[:-1] + ("0" if last != "0" else "1")


REJECTIONS: dict[str, tuple[Callable[[], str], dict[str, Any], str]] = {
    "tampered signature": (lambda: tampered_signature(presign()), {}, "signature"),
    "unknown access key": (
        lambda: presign(Credential("AKIAUNKNOWN000000000", LONG_TERM.secret_access_key)),
        {},
        "access-key",
    ),
    "wrong secret key": (
        lambda: presign(secret_access_key="not-the-secret"),
        {},
        "signature",
    ),
    "another user's token": (lambda: presign(user="iamuser2"), {}, "user"),
    "DBUser rewritten to the login user": (
        lambda: replace_param(presign(user="iamuser2"), "DBUser", "iamuser"),
        {},
        "signature",
    ),
    "token for another port": (lambda: presign(port=5433), {}, "endpoint"),
    "expired (signed 16 minutes ago)": (
        lambda: presign(signed_at=SIGNED_AT - datetime.timedelta(minutes=16)),
        {"now": SIGNED_AT.timestamp()},
        "expired",
    ),
    "from the future": (
        lambda: presign(signed_at=SIGNED_AT + datetime.timedelta(minutes=6)),
        {"now": SIGNED_AT.timestamp()},
        "future",
    ),
    "X-Amz-Expires 901": (lambda: presign(expires=901), {}, "expires"),
    "X-Amz-Expires not an integer": (
        lambda: replace_param(presign(), "X-Amz-Expires", "9e2"),
        {},
        "expires",
    ),
    "missing session token": (
        lambda: presign(TEMPORARY, session_token=None),
        {},
        "session-token",
    ),
    "wrong session token": (
        lambda: presign(TEMPORARY, session_token="FQoGZXIvYXdzEwrong"),
        {},
        "session-token",
    ),
    "session token with a long-term key": (
        lambda: presign(LONG_TERM, session_token="FQoGZXIvYXdzE+/="),
        {},
        "session-token",
    ),
    "policy denies the identity": (lambda: presign(RESTRICTED), {}, "policy"),
    "identity absent from the policy": (
        lambda: presign(),
        {"policy": {"restricted": ["*"]}},
        "policy",
    ),
    "another region": (lambda: presign(region="eu-west-1"), {}, "scope"),
    "another service": (lambda: presign(service="rds"), {}, "scope"),
    "scope date differs from X-Amz-Date": (
        lambda: replace_param(presign(), "X-Amz-Date", "20240502T120000Z"),
        {"now": SIGNED_AT.timestamp() + 86400},
        "scope",
    ),
    "Action is not connect": (
        lambda: replace_param(presign(), "Action", "describe"),
        {},
        "action",
    ),
    "another algorithm": (
        lambda: replace_param(presign(), "X-Amz-Algorithm", "AWS4-HMAC-SHA1"),
        {},
        "algorithm",
    ),
    "more signed headers": (
        lambda: replace_param(presign(), "X-Amz-SignedHeaders", "host%3Bx-amz-date"),
        {},
        "signed-headers",
    ),
    "scheme included": (lambda: "https://" + presign(), {}, "malformed"),
    "no query": (lambda: "localhost:5432/", {}, "malformed"),
    "missing signature": (
        lambda: presign().rpartition("&X-Amz-Signature=")[0],
        {},
        "malformed",
    ),
    "duplicate parameter": (lambda: presign() + "&DBUser=iamuser", {}, "malformed"),
    "path other than /": (
        lambda: presign().replace("/?", "/x?", 1),
        {},
        "malformed",
    ),
    "bad X-Amz-Date": (
        lambda: replace_param(presign(), "X-Amz-Date", "yesterday"),
        {},
        "malformed",
    ),
    "impossible X-Amz-Date": (
        lambda: replace_param(presign(), "X-Amz-Date", "20241301T120000Z"),
        {},
        "malformed",
    ),
    "empty token": (lambda: "", {}, "malformed"),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_rejections_name_their_reason(case: str) -> None:
    make, overrides, code = REJECTIONS[case]
    verdict = check(make(), **overrides)
    assert not verdict.ok
    assert verdict.code == code, verdict.reason
    assert verdict.reason.startswith(code + ": ")


def test_expiry_is_strict_after_the_window() -> None:
    verdict = check(presign(), now=SIGNED_AT.timestamp() + 901)
    assert verdict.code == "expired"


def test_reasons_never_echo_secrets() -> None:
    token = presign(TEMPORARY, session_token="FQoGZXIvYXdzEwrong")
    reason = check(token).reason
    for secret in ("FQoGZXIvYXdzEwrong", TEMPORARY.session_token, TEMPORARY.secret_access_key):
        assert secret and secret not in reason


def test_reasons_bound_attacker_controlled_text() -> None:
    token = replace_param(presign(), "DBUser", "x" * 5000)
    assert len(check(token).reason) < 300


def test_credential_repr_hides_secrets() -> None:
    assert TEMPORARY.secret_access_key not in repr(TEMPORARY)
    assert str(TEMPORARY.session_token) not in repr(TEMPORARY)


# -- the verifier process (what the PAM module asks) --------------------------------------------


def write_config(path: Path, credentials: list[Credential], **extra: object) -> Path:
    config = {
        "region": REGION,
        "credentials": [
            {
                "name": c.name,
                "access_key_id": c.access_key_id,
                "secret_access_key": c.secret_access_key,
                "session_token": c.session_token,
            }
            for c in credentials
        ],
        "policy": POLICY,
        "rate_limit": None,
        "services": {
            "postgresql": {
                "endpoints": list(ENDPOINTS),
                "log": str(path.with_name("v.log")),
                "socket": str(path.with_name("pg.sock")),
                "owner": os.getuid(),
            },
            "pgbouncer": {
                "endpoints": list(ENDPOINTS),
                "log": str(path.with_name("b.log")),
                "socket": str(path.with_name("b.sock")),
                "owner": os.getuid(),
                "max_password": 2047,
            },
        },
    }
    config.update(extra)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config))
    os.replace(tmp, path)  # as the emulator does: a new inode the service notices
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "verifier.json", list(CREDENTIALS.values()))


def log_entries(config: Path, name: str = "v.log") -> list[dict[str, Any]]:
    log = config.with_name(name)
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_service_accepts_and_logs_without_the_token(config: Path) -> None:
    token = boto3_token(TEMPORARY)  # real clock: the service reads the time itself
    service = verifier.VerifierService(str(config))
    assert service.handle("postgresql", "iamuser", token).ok
    (entry,) = log_entries(config)
    assert entry["ok"] is True and entry["reason"] == "ok"
    assert entry["user"] == "iamuser" and entry["service"] == "postgresql"
    assert entry["access_key_id"] == TEMPORARY.access_key_id
    assert entry["token_length"] == len(token)
    assert entry["token_sha256"] == verifier.token_fingerprint(token)
    text = config.with_name("v.log").read_text()
    signature = token.rpartition("=")[2]
    for secret in (signature, TEMPORARY.secret_access_key, "FQoGZXIvYXdzE"):
        assert secret not in text


def test_service_rejects_and_says_why(config: Path) -> None:
    service = verifier.VerifierService(str(config))
    verdict = service.handle("postgresql", "iamuser2", boto3_token(LONG_TERM))
    assert not verdict.ok and verdict.code == "user"
    assert log_entries(config)[0]["reason"].startswith("user: ")


def test_service_refuses_what_pgbouncer_may_have_cut(config: Path) -> None:
    token = boto3_token(TEMPORARY, session="IQoJb3JpZ2luX2VjE" * 200)[:2047]
    verdict = verifier.VerifierService(str(config)).handle("pgbouncer", "iamuser", token)
    assert verdict.code == "truncated" and "2047" in verdict.reason


def test_service_picks_up_identity_changes_without_restart(config: Path) -> None:
    service = verifier.VerifierService(str(config))
    token = boto3_token(RESTRICTED, user="iamuser2")
    assert service.decide("postgresql", "iamuser2", token).ok
    write_config(config, [LONG_TERM, TEMPORARY])  # retired
    assert service.decide("postgresql", "iamuser2", token).code == "access-key"
    write_config(config, list(CREDENTIALS.values()))  # back
    assert service.decide("postgresql", "iamuser2", token).ok


def test_service_fails_closed_on_a_bad_config(config: Path) -> None:
    service = verifier.VerifierService(str(config))
    config.write_text("{not json")
    verdict = service.decide("postgresql", "iamuser", boto3_token(LONG_TERM))
    assert not verdict.ok and verdict.code == "config"
    with pytest.raises(FileNotFoundError):
        verifier.VerifierService(str(config.with_name("missing.json")))


def test_service_throttles_new_tokens_only(config: Path) -> None:
    write_config(config, list(CREDENTIALS.values()), rate_limit=2)
    service = verifier.VerifierService(str(config))
    tokens = [presign(signed_at=datetime.datetime.now(datetime.timezone.utc)
                      - datetime.timedelta(seconds=i)) for i in range(4)]
    codes = [service.decide("postgresql", "iamuser", t).code for t in tokens]
    assert codes == ["ok", "ok", "throttled", "throttled"]
    # Tokens already seen pass whatever the rate; other servers have their own budget.
    assert [service.decide("postgresql", "iamuser", t).code for t in tokens[:2] * 5] == ["ok"] * 10
    assert service.decide("pgbouncer", "iamuser", tokens[2]).ok
    reason = service.decide("postgresql", "iamuser", tokens[3]).reason
    assert reason.startswith("throttled: IAM authentication rate exceeded (2 new tokens")


def test_rate_limiter_window_slides() -> None:
    limiter = verifier.RateLimiter(2)
    assert limiter.admit("a", 0.0) and limiter.admit("b", 0.1)
    assert not limiter.admit("c", 0.5)
    assert limiter.admit("c", 1.05)  # "a" left the window
    assert limiter.admit("a", 1.06)  # seen: never throttled
    assert verifier.RateLimiter(None).admit("anything", 0.0)


@given(
    limit=st.integers(min_value=1, max_value=20),
    events=st.lists(
        st.tuples(st.integers(min_value=0, max_value=30), st.floats(min_value=0, max_value=0.3)),
        max_size=200,
    ),
)
def test_rate_limiter_never_admits_more_than_the_limit_of_new_tokens(
    limit: int, events: list[tuple[int, float]]
) -> None:
    limiter = verifier.RateLimiter(limit)
    now, admitted_new, seen = 0.0, [], set()
    for token_id, step in events:
        now += step
        token = f"t{token_id}"
        ok = limiter.admit(token, now)
        if token in seen:
            assert ok, "a token seen before is never throttled"
        elif ok:
            admitted_new.append(now)
            seen.add(token)
    for i, start in enumerate(admitted_new):
        in_window = [t for t in admitted_new[i:] if t < start + 1.0]
        assert len(in_window) <= limit


def _ask(path: str, user: str, token: str) -> bytes:
    """What pam_rds_iam.c does: two length-prefixed fields, then read the answer to EOF."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        for field in (user, token):
            data = field.encode()
            sock.sendall(struct.pack(">I", len(data)) + data)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return answer


def test_service_answers_on_its_sockets(config: Path) -> None:
    service = verifier.VerifierService(str(config))
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()

    async def run() -> None:
        task = asyncio.ensure_future(service.serve(stop))
        while not all(os.path.exists(s["socket"]) for s in service.services.values()):
            await asyncio.sleep(0.01)
        ready.set()
        await task

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),))
    thread.start()
    try:
        assert ready.wait(10)
        sock = service.services["postgresql"]["socket"]
        assert os.stat(sock).st_mode & 0o777 == 0o600
        long_token = boto3_token(TEMPORARY, session="IQoJb3JpZ2luX2VjE" * 250)
        assert len(long_token) > 4096
        write_config(config, [*CREDENTIALS.values(), Credential(
            TEMPORARY.access_key_id, TEMPORARY.secret_access_key,
            "IQoJb3JpZ2luX2VjE" * 250, "temporary")])
        assert _ask(sock, "iamuser", long_token) == b"1"
        answer = _ask(sock, "iamuser2", long_token)
        assert answer.startswith(b"0rds-iam: user: ")
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


@pytest.mark.parametrize("name", ["verifier", "dsql_verifier", "sigv4_check"])
def test_verifier_uses_the_standard_library_only(name: str) -> None:
    """The emulator runs it with -I -S from a copy: outside our virtualenv and package.

    Imports under ``if TYPE_CHECKING:`` never run (they give mypy the shared checker's types).
    """
    tree = ast.parse(Path(verifier.__file__).with_name(f"{name}.py").read_text())
    type_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    imported: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module
            imported.add(node.module.split(".")[0])
    assert imported <= sys.stdlib_module_names | {"__future__"}
