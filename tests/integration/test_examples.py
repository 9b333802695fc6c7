"""The examples under ``examples/`` run as documented, against the local RDS IAM emulator.

* ``examples/lambda``: the Lambda runner (fresh process per function, init once, many warm
  invocations, a freeze longer than a token lives) has no failed login, signs a new token
  after the freeze, and every client login is one the server verified; ``--demo`` prints
  what AWS's two guide functions return.
* ``examples/alembic``: ``upgrade head`` / ``downgrade base`` from the ini's URL alone,
  through Alembic's command API and its CLI, on PostgreSQL and MariaDB; the ``%`` trap of
  the ini file; and the recipe for an ``env.py`` that builds its own engine (``attach()``).
"""

from __future__ import annotations

import configparser
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import create_engine, inspect

from sqlalchemy_rds_iam.testing import EmulatorInfo

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ALEMBIC_PROJECT = EXAMPLES / "alembic"
ALEMBIC_BIN = Path(sys.executable).with_name("alembic")
TABLES = {"account", "account_event"}


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run_local() -> ModuleType:
    return _load(EXAMPLES / "lambda" / "run_local.py")


# -- Lambda ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "invocations"),
    [("postgresql", 50), ("mysql", 50), ("proxy", 8)],
)
def test_lambda_runner_survives_a_freeze_longer_than_a_token_lives(
    rds_iam_emulator: EmulatorInfo, run_local: ModuleType, name: str, invocations: int
) -> None:
    report = run_local.run_function(rds_iam_emulator, name, invocations=invocations)
    server = rds_iam_emulator.servers[run_local.FUNCTIONS[name].server]

    assert report.errors == []
    assert report.auth_failures == 0
    assert report.databases == [server.database]
    # A token before the freeze, a new one after it (the cache's clock moved 16 minutes).
    assert report.tokens_signed == 2
    assert report.logins_rejected == 0
    # Every login the client made was one the server verified (others may share the log).
    assert report.logins_verified >= report.connects
    if name == "proxy":
        # NullPool: one proxy login per invocation, all on the two cached tokens.
        assert report.connects == invocations
    else:
        # Pooled: the initial login, then one reconnect after the server dropped the
        # idle socket during the freeze (found by pool_pre_ping, not by the handler).
        assert report.connects == 2
        assert report.stale_connections_replaced == 1
    assert report.ok


def test_demo_prints_what_both_guide_functions_return(
    rds_iam_emulator: EmulatorInfo, run_local: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    status = run_local.main(["--demo", "--invocations", "6", "--state-dir", rds_iam_emulator.state_dir])
    out = capsys.readouterr().out

    assert status == 0, out
    database = rds_iam_emulator.postgresql.database
    assert re.search(rf"^PostgreSQL .*SELECT current_database\(\) .*-> '{database}'$", out, re.M)
    database = rds_iam_emulator.mysql.database
    assert re.search(rf"^MySQL .*select database\(\); .*-> '{database}'$", out, re.M)
    assert "0 auth failures" in out
    assert out.rstrip().splitlines()[-1].startswith("OK")


def test_sam_template_is_valid_and_least_privilege() -> None:
    """cfn-lint (with the SAM transform) finds nothing; each role may connect as one user."""
    template = (EXAMPLES / "lambda" / "template.yaml").read_text()
    resources = re.findall(r"Resource: !Sub (\S+)", template)
    assert resources == [
        "arn:${AWS::Partition}:rds-db:${AWS::Region}:${AWS::AccountId}:dbuser:"
        f"${{{db}ResourceId}}/${{{db}DbUser}}"
        for db in ("Postgres", "MySql")
    ]
    cfn_lint = shutil.which("cfn-lint", path=str(ALEMBIC_BIN.parent)) or shutil.which("cfn-lint")
    if cfn_lint is None:
        pytest.skip("cfn-lint is not installed (pip install cfn-lint)")
    proc = subprocess.run([cfn_lint, str(EXAMPLES / "lambda" / "template.yaml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- Alembic -----------------------------------------------------------------------------


@pytest.fixture
def _keep_logging() -> Iterator[None]:
    """Undo the ``fileConfig()`` of Alembic's env.py, which disables every other logger."""
    manager = logging.Logger.manager
    loggers = [logging.getLogger()] + [
        lg for lg in manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    saved = [(lg, lg.disabled, lg.level, list(lg.handlers), lg.propagate) for lg in loggers]
    yield
    for lg, disabled, level, handlers, propagate in saved:
        lg.disabled, lg.propagate = disabled, propagate
        lg.setLevel(level)
        lg.handlers[:] = handlers
    for other in manager.loggerDict.values():
        if isinstance(other, logging.Logger) and other not in loggers:
            other.disabled = False


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the example project, so each test edits its own alembic.ini."""
    target = tmp_path / "project"
    shutil.copytree(ALEMBIC_PROJECT, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def _set_url(project: Path, url: str, *, escape: bool = True) -> Path:
    """Put ``url`` in the project's ini, as a user edits it (``%`` doubled for ConfigParser)."""
    ini = project / "alembic.ini"
    value = url.replace("%", "%%") if escape else url
    text, count = re.subn(
        r"^sqlalchemy\.url = .*$", lambda _: f"sqlalchemy.url = {value}", ini.read_text(), flags=re.M
    )
    assert count == 1
    ini.write_text(text)
    return ini


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _alembic_cli(ini: Path, *args: str, env: dict[str, str]) -> str:
    proc = subprocess.run(
        [str(ALEMBIC_BIN), "-c", str(ini), *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


SERVERS = ["postgresql", "mysql"]


@pytest.mark.usefixtures("_keep_logging")
@pytest.mark.parametrize("server", SERVERS)
def test_alembic_command_api_upgrades_and_downgrades_from_the_ini_alone(
    rds_iam_emulator: EmulatorInfo, rds_iam_aws_env: dict[str, str], project: Path, server: str
) -> None:
    from alembic import command
    from alembic.config import Config

    url = rds_iam_emulator.servers[server].url()
    config = Config(str(_set_url(project, url)))

    command.upgrade(config, "head")
    assert _tables(url) >= TABLES
    command.downgrade(config, "base")
    assert not _tables(url) & TABLES


@pytest.mark.parametrize("server", SERVERS)
def test_alembic_cli_upgrades_and_downgrades_from_the_ini_alone(
    rds_iam_emulator: EmulatorInfo, rds_iam_aws_env: dict[str, str], project: Path, server: str
) -> None:
    url = rds_iam_emulator.servers[server].url()
    ini = _set_url(project, url)
    env = dict(os.environ)  # rds_iam_aws_env put the emulator's credentials here

    assert "Running upgrade 0001 -> 0002" in _alembic_cli(ini, "upgrade", "head", env=env)
    assert _tables(url) >= TABLES
    assert "Running downgrade 0001 -> ," in _alembic_cli(ini, "downgrade", "base", env=env)
    assert not _tables(url) & TABLES


def test_alembic_ini_needs_percent_signs_doubled(
    rds_iam_emulator: EmulatorInfo, rds_iam_aws_env: dict[str, str], project: Path, tmp_path: Path
) -> None:
    """A CA bundle under ``certs 100%/`` puts ``%25`` in the URL: ConfigParser's trap."""
    from alembic.config import Config

    ca = tmp_path / "certs 100%" / "ca.pem"
    ca.parent.mkdir()
    shutil.copy(rds_iam_emulator.ca_path, ca)
    server = rds_iam_emulator.postgresql
    url = server.url(iam_ca_bundle=str(ca))
    assert "%25" in url

    ini = _set_url(project, url, escape=False)
    with pytest.raises(configparser.InterpolationSyntaxError):
        Config(str(ini)).get_main_option("sqlalchemy.url")

    ini = _set_url(project, url, escape=True)
    env = dict(os.environ)
    _alembic_cli(ini, "upgrade", "head", env=env)
    assert _tables(url) >= TABLES
    _alembic_cli(ini, "downgrade", "base", env=env)
    assert not _tables(url) & TABLES


@pytest.mark.parametrize("server", SERVERS)
def test_alembic_env_engine_recipe_attaches_iam_to_an_engine_built_in_env_py(
    rds_iam_emulator: EmulatorInfo, rds_iam_aws_env: dict[str, str], project: Path, server: str
) -> None:
    info = rds_iam_emulator.servers[server]
    shutil.copy(ALEMBIC_PROJECT / "env_engine_recipe.py", project / "migrations" / "env.py")
    # The ini keeps its placeholder URL: this env.py takes the URL from the app's settings.
    env = dict(os.environ)
    env["DATABASE_URL"] = info.url(plugin=False)
    env["IAM_CA_BUNDLE"] = info.ca_path
    ini = project / "alembic.ini"

    _alembic_cli(ini, "upgrade", "head", env=env)
    assert _tables(info.url()) >= TABLES
    _alembic_cli(ini, "downgrade", "base", env=env)
    assert not _tables(info.url()) & TABLES
