"""pytest fixtures for the local RDS IAM emulator (entry point ``pytest11``: ``rds_iam``).

    rds_iam_emulator   session: the running emulator's :class:`EmulatorInfo` (started if
                       needed; stopped at the end only if this session started it and no
                       other process still uses it or asked to keep it)
    rds_iam_aws_env    function: AWS_* variables set to the emulator's primary identity,
                       profiles and config files cleared; returns the variables

Tests skip only when server programs are not installed: a test that uses a server this
machine lacks (``info.pgbouncer``, ``info.servers["mysql"]``) is skipped with the Debian
package to install; anything else (not root, a server that fails to start) is an error, so
that CI never passes by skipping. Without the ``[testing]`` extra (no ``cryptography``) the
session stops with one line naming it (exit status 1). Loading this plugin is cheap: it
imports nothing heavy until a fixture is used.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from sqlalchemy_rds_iam.testing.info import EmulatorInfo

__all__ = ["rds_iam_aws_env", "rds_iam_emulator"]

# Variables that could make botocore sign as someone else than the emulator's identity.
_AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Options to point the fixtures at an emulator and to keep it running afterwards."""
    group = parser.getgroup("rds_iam", "sqlalchemy-rds-iam emulator")
    group.addoption(
        "--rds-iam-emulator-dir",
        metavar="DIR",
        default=None,
        help="state directory of the RDS IAM emulator (default: "
        "$SQLALCHEMY_RDS_IAM_EMULATOR_DIR or /tmp/sqlalchemy-rds-iam-emulator)",
    )
    group.addoption(
        "--rds-iam-servers",
        metavar="LIST",
        default=None,
        help="servers to run among postgresql,mysql,pgbouncer (default: every one installed)",
    )
    group.addoption(
        "--rds-iam-rate-limit",
        metavar="N",
        type=int,
        default=None,
        help="throttle new IAM tokens to N per second per server, as RDS does (0: off)",
    )
    group.addoption(
        "--rds-iam-keep-emulator",
        action="store_true",
        default=False,
        help="leave an emulator this session started running at the end",
    )


@pytest.fixture(scope="session")
def rds_iam_emulator(request: pytest.FixtureRequest) -> Iterator[EmulatorInfo]:
    """The running emulator: reused if alive, else started (and then stopped at the end)."""
    from sqlalchemy_rds_iam.testing.emulator import Emulator
    from sqlalchemy_rds_iam.testing.errors import ServerBinariesMissingError
    from sqlalchemy_rds_iam.testing.extra import MissingTestingExtraError

    servers = request.config.getoption("--rds-iam-servers")
    emulator = Emulator(
        request.config.getoption("--rds-iam-emulator-dir"),
        servers=servers.split(",") if servers else None,
        rate_limit=request.config.getoption("--rds-iam-rate-limit"),
    )
    keep = bool(request.config.getoption("--rds-iam-keep-emulator"))
    try:
        info, started = emulator.ensure_started(keep=keep)
    except ServerBinariesMissingError as exc:
        pytest.skip(f"RDS IAM emulator unavailable: {exc}")
    except MissingTestingExtraError as exc:  # one line and exit 1, not an error per test
        pytest.exit(str(exc), returncode=1)
    # A lease: another session that reuses this emulator keeps it alive past our end.
    emulator.acquire()
    try:
        yield info
    finally:
        emulator.release(stop=started and not keep)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """A test that needs a server this emulator runs without is skipped, not failed."""
    outcome: Any = yield
    if call.excinfo is None:
        return
    from sqlalchemy_rds_iam.testing.errors import ServerNotRunningError

    if call.excinfo.errisinstance(ServerNotRunningError):
        report = outcome.get_result()
        path, lineno, _ = item.reportinfo()
        report.outcome = "skipped"
        report.longrepr = (str(path), (lineno or 0) + 1, f"Skipped: {call.excinfo.value}")


@pytest.fixture
def rds_iam_aws_env(
    rds_iam_emulator: EmulatorInfo,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """Make botocore sign as the emulator's primary identity, and as nothing else."""
    for name in _AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    # No ~/.aws files, no instance metadata: only the variables below can supply credentials.
    empty = tmp_path_factory.mktemp("aws") / "none"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    env = rds_iam_emulator.aws_env("primary")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def rds_iam_topology_env(
    rds_iam_aws_env: dict[str, str],
    rds_iam_emulator: EmulatorInfo,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """:func:`rds_iam_aws_env` plus the test seam: each trust store is its stand-in CA.

    For the emulator's real-looking endpoints (``info.topology``) with default options.
    """
    env = dict(rds_iam_aws_env)
    for name, value in rds_iam_emulator.trust_store_env().items():
        monkeypatch.setenv(name, value)
        env[name] = value
    return env
