"""``emulator env``'s lines survive ``eval`` byte for byte, whatever the values hold."""

from __future__ import annotations

import json
import subprocess

from hypothesis import given, settings
from hypothesis import strategies as st

from sqlalchemy_rds_iam.testing.envcmd import URL_VARIABLES, env_lines, env_variables
from sqlalchemy_rds_iam.testing.info import EmulatorInfo, Identity
from sqlalchemy_rds_iam.testing.topology import EmulatedEndpoint

# Anything a shell variable can hold: no NUL, everything else (quotes, $(...), newlines).
values = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\0"),
                 min_size=1, max_size=40)

PRINT_ENV = "import json, os; print(json.dumps(dict(os.environ)))"


def _info(secret: str, state_dir: str, session_token: str | None = None,
          skipped: dict[str, str] | None = None) -> EmulatorInfo:
    endpoint = EmulatedEndpoint("postgresql-instance", "emu-pg.x.us-east-1.rds.amazonaws.com", 5432,
                        "postgresql", "postgresql", "rds-aws", "us-east-1", "instance", "app",
                        ("iamuser",))
    return EmulatorInfo(
        state_dir=state_dir, region="us-east-1", ca_path="/ca.pem",
        identities={"primary": Identity("primary", "AKIAEXAMPLE", secret, session_token)},
        topology={"postgresql-instance": endpoint},
        trust_stores={"rds-aws": f"{state_dir}/ca.pem"},
        skipped=skipped or {},
    )


def _eval(lines: list[str]) -> dict[str, str]:
    script = "\n".join(lines) + f"\nexec python3 -c '{PRINT_ENV}'"
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin", "AWS_SESSION_TOKEN": "stale"}).stdout
    env: dict[str, str] = json.loads(out)
    return env


@settings(max_examples=25, deadline=None)
@given(secret=values, state_dir=values, why=values)
def test_eval_gives_back_exactly_the_values(secret: str, state_dir: str, why: str) -> None:
    info = _info(secret, state_dir, skipped={"mysql": why})
    env = _eval(env_lines(info))
    for name, value in env_variables(info).items():
        assert env[name] == value
    assert "AWS_SESSION_TOKEN" not in env  # a stale one from the shell is gone


def test_a_temporary_identity_exports_its_session_token() -> None:
    info = _info("secret", "/tmp/x", session_token="IQoJ+/=")
    lines = env_lines(info)
    assert not any(line.startswith("unset AWS_SESSION_TOKEN ") for line in lines)
    assert _eval(lines)["AWS_SESSION_TOKEN"] == "IQoJ+/="


def test_one_url_per_running_server_with_the_plugin_alone() -> None:
    env = env_variables(_info("secret", "/tmp/x"))
    assert env["RDS_IAM_POSTGRESQL_URL"] == (
        "postgresql+psycopg2://iamuser@emu-pg.x.us-east-1.rds.amazonaws.com:5432/app"
        "?plugin=rds_iam"
    )
    assert set(URL_VARIABLES) & set(env) == {"RDS_IAM_POSTGRESQL_URL"}  # mysql, proxy: absent
