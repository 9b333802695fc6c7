"""The emulator's token verifier against botocore, the reference signer; offline, fixed clock."""

from __future__ import annotations

import ast
import datetime
import io
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest

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


# -- script mode (what PAM runs) ---------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "verifier.json"
    path.write_text(
        json.dumps(
            {
                "region": REGION,
                "credentials": [
                    {
                        "name": c.name,
                        "access_key_id": c.access_key_id,
                        "secret_access_key": c.secret_access_key,
                        "session_token": c.session_token,
                    }
                    for c in CREDENTIALS.values()
                ],
                "policy": POLICY,
                "services": {
                    "postgresql": {"endpoints": list(ENDPOINTS), "log": str(tmp_path / "v.log")}
                },
            }
        )
    )
    return path


def run_script(
    config: Path, token: str, user: str = "iamuser", monkeypatch: pytest.MonkeyPatch | None = None
) -> tuple[int, list[dict[str, object]]]:
    assert monkeypatch is not None
    monkeypatch.setenv("PAM_USER", user)
    monkeypatch.setenv("PAM_SERVICE", "test-service")
    stdin = io.TextIOWrapper(io.BytesIO(token.encode() + b"\0"))
    monkeypatch.setattr(sys, "stdin", stdin)
    status = verifier.main(["--config", str(config), "--service", "postgresql"])
    log = config.with_name("v.log")
    lines = log.read_text().splitlines() if log.exists() else []
    return status, [json.loads(line) for line in lines]


def test_script_accepts_and_logs_without_the_token(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = boto3_token(TEMPORARY)  # real clock: the script reads the time itself
    status, log = run_script(config, token, monkeypatch=monkeypatch)
    assert status == 0
    (entry,) = log
    assert entry["ok"] is True and entry["reason"] == "ok"
    assert entry["user"] == "iamuser" and entry["service"] == "postgresql"
    assert entry["access_key_id"] == TEMPORARY.access_key_id
    assert entry["token_length"] == len(token)
    assert entry["token_sha256"] == verifier.token_fingerprint(token)
    text = config.with_name("v.log").read_text()
    signature = token.rpartition("=")[2]
    for secret in (signature, TEMPORARY.secret_access_key, "FQoGZXIvYXdzE"):
        assert secret not in text


def test_script_rejects_with_exit_status_1(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    status, log = run_script(
        config, boto3_token(LONG_TERM), user="iamuser2", monkeypatch=monkeypatch
    )
    assert status == 1
    assert log[0]["ok"] is False and str(log[0]["reason"]).startswith("user: ")


def test_script_rejects_input_pam_exec_may_have_cut(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = boto3_token(TEMPORARY, session="x" * 300)[:511]  # what pam_exec hands over
    status, log = run_script(config, token, monkeypatch=monkeypatch)
    assert status == 1
    assert str(log[0]["reason"]).startswith("truncated: ")
    assert log[0]["token_length"] == 511
    assert log[0]["token_sha256"] == verifier.token_fingerprint(token + "cut off by pam_exec")


def test_script_fails_closed_on_a_bad_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "missing.json"
    monkeypatch.setenv("PAM_USER", "iamuser")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"token\0")))
    assert verifier.main(["--config", str(bad), "--service", "postgresql"]) == 1


def test_verifier_uses_the_standard_library_only() -> None:
    """PAM runs it under /usr/bin/python3, outside our virtualenv and package."""
    tree = ast.parse(Path(verifier.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module
            imported.add(node.module.split(".")[0])
    assert imported <= sys.stdlib_module_names | {"__future__"}
