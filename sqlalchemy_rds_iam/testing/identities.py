"""The emulator's AWS identities: throwaway ones made at start, yours added and retired later.

Identities live in the state file (what clients sign with) and in the verifier's config (what
it accepts); :func:`reconfigure` rewrites both, and the running verifier re-reads its config
on the next login, so changes need no restart.
"""

from __future__ import annotations

import base64
import secrets
import string
from collections.abc import Iterable

from sqlalchemy_rds_iam.testing import servers, wiring
from sqlalchemy_rds_iam.testing.errors import EmulatorError
from sqlalchemy_rds_iam.testing.info import EmulatorInfo, Identity
from sqlalchemy_rds_iam.testing.state import StateFile

__all__ = ["SESSION_TOKEN_LENGTH", "make_identities", "reconfigure", "session_token"]

#: Length of the ``temporary`` identity's session token: real STS tokens (Lambda's role
#: credentials, assumed roles, SSO) run to a thousand characters and more.
SESSION_TOKEN_LENGTH = 1200


def _key_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(string.ascii_uppercase + "234567") for _ in range(16))


def _secret(length: int = 40) -> str:
    return base64.b64encode(secrets.token_bytes(length)).decode()[:length]


def session_token(length: int = SESSION_TOKEN_LENGTH) -> str:
    """A made-up STS session token of ``length`` characters, shaped like a real one.

    Base64 with ``+``, ``/`` and ``=``, as real ones are, so that URL encoding (which makes
    the token in the password longer still) is exercised.
    """
    prefix, suffix = "IQoJb3JpZ2luX2VjE", "+/="
    body = base64.b64encode(secrets.token_bytes(length)).decode()
    return prefix + body[: max(0, length - len(prefix) - len(suffix))] + suffix


def make_identities() -> dict[str, Identity]:
    """Fresh throwaway identities: long-term, temporary (real-size session token), restricted."""
    return {
        "primary": Identity("primary", _key_id("AKIA"), _secret()),
        "temporary": Identity("temporary", _key_id("ASIA"), _secret(), session_token()),
        "restricted": Identity(
            "restricted", _key_id("AKIA"), _secret(), allowed_users=(servers.IAM_USERS[1],)
        ),
    }


def reconfigure(
    state_file: StateFile,
    verifier: wiring.VerifierFiles,
    *,
    add: Iterable[Identity] = (),
    retire: Iterable[str] = (),
    rate_limit: int | None = None,
) -> EmulatorInfo:
    """Rewrite the verifier's config and the state (lock held, emulator running)."""
    state = state_file.read()
    assert state is not None
    info = EmulatorInfo.from_dict(state["info"])
    identities = dict(info.identities)
    for name in retire:
        if name not in identities:
            raise EmulatorError(
                f"no identity {name!r}; the emulator has {', '.join(identities)}"
            )
        del identities[name]
    identities.update((i.name, i) for i in add)
    limit = info.rate_limit if rate_limit is None else (rate_limit or None)
    config = wiring.read_verifier_config(verifier)
    wiring.write_verifier_config(
        verifier,
        region=info.region,
        identities=identities,
        rate_limit=limit,
        services=config["services"],
    )
    data = info.to_dict()
    data["identities"] = {
        n: {**i, "allowed_users": list(i["allowed_users"])}
        for n, i in EmulatorInfo(
            info.state_dir, info.region, info.ca_path, identities=identities
        ).to_dict()["identities"].items()
    }
    data["rate_limit"] = limit
    state["info"] = data
    state_file.write(state)
    return EmulatorInfo.from_dict(data)
