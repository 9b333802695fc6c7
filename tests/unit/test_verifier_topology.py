"""The verifier's per-endpoint rules for the emulator's real-looking endpoints: tokens for
GovCloud and China endpoints are scoped to their regions; DSQL endpoints take ``dsql``
tokens (DbConnectAdmin for ``admin`` only), checked by ``dsql_verifier.py``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sqlalchemy_rds_iam.credentials import FrozenCredentials
from sqlalchemy_rds_iam.testing import verifier
from sqlalchemy_rds_iam.tokens import TokenKey, sign_token

KEY, SECRET = "AKIDTOPOLOGY0001", "topology-secret"
GOV = "emu-pg.c0emulator0.us-gov-west-1.rds.amazonaws.com"
DSQL = "c0emulator0dsqlcluster0000.dsql.us-east-1.on.aws"
PORT = 5432


@pytest.fixture
def service(tmp_path: Path) -> verifier.VerifierService:
    config = {
        "region": "us-east-1",
        "credentials": [{"name": "primary", "access_key_id": KEY, "secret_access_key": SECRET,
                         "session_token": None}],
        "policy": {"primary": ["*"]},
        "rate_limit": None,
        "dsql_verifier": str(Path(verifier.__file__).with_name("dsql_verifier.py")),
        "services": {"postgresql": {
            "endpoints": [f"localhost:{PORT}", f"{GOV}:{PORT}"],
            "regions": {f"{GOV}:{PORT}": "us-gov-west-1"},
            "dsql": {DSQL: "us-east-1"},
            "log": str(tmp_path / "v.log"),
            "socket": str(tmp_path / "v.sock"),
            "owner": os.getuid(),
        }},
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return verifier.VerifierService(str(path))


def token(host: str, user: str, region: str, service: str = "rds-db",
          action: str = "connect") -> str:
    creds = FrozenCredentials(KEY, SECRET, None, None)
    return sign_token(TokenKey(host, PORT, user, region, service, action, 900), creds)


def test_govcloud_endpoint_takes_govcloud_scoped_tokens(
    service: verifier.VerifierService,
) -> None:
    assert service.decide("postgresql", "iamuser", token(GOV, "iamuser", "us-gov-west-1")).ok
    wrong = service.decide("postgresql", "iamuser", token(GOV, "iamuser", "us-east-1"))
    assert wrong.code == "scope"
    # the emulator's own names keep the emulator's region
    assert service.decide("postgresql", "iamuser", token("localhost", "iamuser", "us-east-1")).ok


@pytest.mark.parametrize(("user", "action", "ok"), [
    ("admin", "DbConnectAdmin", True), ("iamuser", "DbConnect", True),
    ("iamuser", "DbConnectAdmin", False), ("admin", "DbConnect", False)])
def test_dsql_endpoint_checks_the_action_against_the_role(
    service: verifier.VerifierService, user: str, action: str, ok: bool
) -> None:
    verdict = service.decide("postgresql", user, token(DSQL, user, "us-east-1", "dsql", action))
    assert verdict.ok is ok
    if not ok:
        assert verdict.code == "dsql" and "cannot log in as" in verdict.reason


def test_an_rds_token_for_the_dsql_host_is_refused(service: verifier.VerifierService) -> None:
    verdict = service.decide("postgresql", "admin", token(DSQL, "admin", "us-east-1"))
    assert not verdict.ok
