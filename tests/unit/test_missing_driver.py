"""A driver that is not installed, or a misspelt one: the plugin says so before SQLAlchemy's
bare ModuleNotFoundError / "Can't load plugin", naming the extra to install."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from sqlalchemy_rds_iam import ConfigurationError, UnsupportedDriverError
from sqlalchemy_rds_iam.drivers import DRIVERS
from sqlalchemy_rds_iam.missing import DRIVER_MODULES, driver_problem

RDS = "db.cluster-abc123.us-east-1.rds.amazonaws.com"


def test_every_driver_row_names_its_modules() -> None:
    assert set(DRIVER_MODULES) == set(DRIVERS)


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_a_missing_driver_is_a_configuration_error_naming_the_extra(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = DRIVERS[name]
    module = DRIVER_MODULES[name][0]
    # None in sys.modules: the import SQLAlchemy would do next raises ModuleNotFoundError,
    # so only a check made before it can produce our error.
    monkeypatch.setitem(sys.modules, module, None)
    url = f"{spec.url_prefix}://iamuser@{RDS}/app?plugin=rds_iam"
    make = create_async_engine if spec.is_async else sa.create_engine
    with pytest.raises(ConfigurationError) as caught:
        make(url)
    message = str(caught.value)
    assert f"pip install 'sqlalchemy-rds-iam[{spec.extra}]'" in message
    assert module in message and spec.url_prefix in message
    assert not isinstance(caught.value, ImportError)


def test_without_the_plugin_sqlalchemy_fails_on_the_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: the blocked module really is what create_engine imports."""
    monkeypatch.setitem(sys.modules, "pymysql", None)
    with pytest.raises(ImportError):
        sa.create_engine(f"mysql+pymysql://iamuser@{RDS}/app")


# A meta path finder that refuses one top-level module, as an environment without it would.
BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == {module!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Block())
"""


def test_a_plain_postgresql_url_says_which_driver_sqlalchemy_picks() -> None:
    """SQLAlchemy 2.1 maps postgresql:// to psycopg 3 (2.0: psycopg2): say so, and the way out."""
    default = sa.make_url("postgresql://").get_dialect().driver
    code = BLOCK.format(module=default) + textwrap.dedent(f"""
        import sqlalchemy as sa
        try:
            sa.create_engine("postgresql://iamuser@{RDS}/app?plugin=rds_iam")
        except Exception as exc:
            print(type(exc).__name__)
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    kind, message = out.split("\n", 1)
    assert kind == "ConfigurationError"
    assert f"postgresql:// without a driver means postgresql+{default}://" in message
    assert f"SQLAlchemy {sa.__version__}" in message
    if default == "psycopg":  # SQLAlchemy 2.1
        assert "pip install 'sqlalchemy-rds-iam[psycopg]'" in message
        assert "postgresql+psycopg2://" in message
        assert "pip install 'sqlalchemy-rds-iam[postgresql]'" in message
    else:
        assert "pip install 'sqlalchemy-rds-iam[postgresql]'" in message


@pytest.mark.parametrize(
    ("drivername", "guess"),
    [
        ("postgresql+psycopg3", "postgresql+psycopg"),
        ("postgresql+pyscopg2", "postgresql+psycopg2"),
        ("mysql+pymsql", "mysql+pymysql"),
        ("postgres+psycopg2", "postgresql+psycopg2"),
    ],
)
def test_a_misspelt_driver_gets_a_did_you_mean(drivername: str, guess: str) -> None:
    with pytest.raises(UnsupportedDriverError, match=re.escape(f"did you mean {guess}")):
        sa.create_engine(f"{drivername}://iamuser@{RDS}/app?plugin=rds_iam")


def test_a_driver_that_is_installed_passes() -> None:
    assert driver_problem(sa.make_url(f"postgresql+psycopg2://iamuser@{RDS}/app")) is None


def test_an_unrelated_name_lists_the_supported_drivers() -> None:
    problem = driver_problem(sa.make_url("nosuchdb+thing://x@h/d"))
    assert problem is not None and "postgresql+psycopg2" in problem.fix


@pytest.mark.parametrize("name", ["rds-iam", "rdsiam"])
def test_a_misspelt_plugin_name_says_the_right_one(name: str) -> None:
    """Without the misspelling registered, SQLAlchemy says only "Can't load plugin"."""
    with pytest.raises(ConfigurationError, match=re.escape(
        f"no SQLAlchemy plugin {name!r}: did you mean plugin=rds_iam"
    )):
        sa.create_engine(f"postgresql+psycopg2://iamuser@{RDS}/app?plugin={name}")
    with pytest.raises(ConfigurationError, match="did you mean plugin=rds_iam"):
        sa.create_engine(f"postgresql+psycopg2://iamuser@{RDS}/app", plugins=[name])


def test_control_an_unregistered_misspelling_is_sqlalchemys_bare_error() -> None:
    with pytest.raises(sa.exc.NoSuchModuleError, match="Can't load plugin"):
        sa.create_engine(f"postgresql+psycopg2://iamuser@{RDS}/app?plugin=rds_iamm")


def test_a_plain_mariadb_url_names_mariadb_drivers(monkeypatch: pytest.MonkeyPatch) -> None:
    default = sa.make_url("mariadb://").get_dialect().driver  # mysqldb
    module = DRIVER_MODULES[default][0]
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ConfigurationError) as caught:
        sa.create_engine(f"mariadb://iamuser@{RDS}/app?plugin=rds_iam")
    message = str(caught.value)
    assert f"mariadb:// without a driver means mariadb+{default}://" in message
    assert f"{module} is not installed" in message
    assert "mariadb+pymysql://" in message and "[mysql]" in message
