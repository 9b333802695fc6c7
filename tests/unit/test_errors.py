"""The error contract and the public surface: one root that SQLAlchemy users already catch,
typos named with a suggestion, the trees and tables users read checked against the code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

import sqlalchemy_rds_iam
from sqlalchemy_rds_iam import errors
from sqlalchemy_rds_iam.errors import (
    ConfigurationError,
    CredentialsError,
    InsecureConnectionError,
    RdsIamError,
    TokenError,
    UnsupportedDriverError,
)

ROOT = Path(__file__).resolve().parents[2]
EXCEPTIONS_PAGE = (ROOT / "docs" / "reference" / "exceptions.md").read_text()
PG = "postgresql+psycopg2://iamuser@db.cluster-abc123.us-east-1.rds.amazonaws.com/app"


def test_public_surface_is_pinned() -> None:
    assert sorted(sqlalchemy_rds_iam.__all__) == [
        "ConfigurationError",
        "CredentialsError",
        "IamConnector",
        "InsecureConnectionError",
        "RdsIamError",
        "RegionError",
        "TokenError",
        "TrustStoreError",
        "UnsupportedDriverError",
        "__version__",
        "attach",
        "connector",
    ]
    for name in sqlalchemy_rds_iam.__all__:
        assert getattr(sqlalchemy_rds_iam, name) is not None
    from sqlalchemy_rds_iam.plugin import IamConnector

    assert sqlalchemy_rds_iam.IamConnector is IamConnector
    with pytest.raises(AttributeError):
        _ = sqlalchemy_rds_iam.NoSuchThing  # type: ignore[attr-defined]


def test_exporting_iam_connector_keeps_the_import_light() -> None:
    code = ("import sys, sqlalchemy_rds_iam; "
            "print(any(m.startswith('botocore') for m in sys.modules), "
            "'sqlalchemy_rds_iam.plugin' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_every_error_is_a_sqlalchemy_error() -> None:
    for cls in (RdsIamError, CredentialsError, TokenError, ConfigurationError):
        assert issubclass(cls, sa.exc.SQLAlchemyError)
    for cls in (ConfigurationError, InsecureConnectionError, UnsupportedDriverError):
        assert issubclass(cls, sa.exc.ArgumentError) and issubclass(cls, ValueError)
    assert not issubclass(CredentialsError, sa.exc.ArgumentError)
    # SQLAlchemy's str() would add a "Background on this error" link for a code; ours have none
    assert str(CredentialsError("no AWS credentials")) == "no AWS credentials"


def test_credentials_error_at_connect_is_caught_as_sqlalchemy_error() -> None:
    engine = sa.create_engine(f"{PG}?plugin=rds_iam")  # autouse fixture: no AWS credentials
    with pytest.raises(sa.exc.SQLAlchemyError) as info:
        engine.connect()
    assert isinstance(info.value, CredentialsError)


def test_no_region_at_connect_is_caught_as_sqlalchemy_error(aws_env: None) -> None:
    engine = sa.create_engine("postgresql+psycopg2://iamuser@10.0.0.1/app?plugin=rds_iam")
    with pytest.raises(sa.exc.SQLAlchemyError, match="no AWS region"):
        engine.connect()



@pytest.mark.parametrize(("keyword", "suggestion"), [
    ("aws_regoin", "aws_region"), ("iam_prot", "iam_port"), ("aws_proflie", "aws_profile"),
    ("iam_ca_bundel", "iam_ca_bundle"), ("iam_tsl", "iam_tls"),
])
def test_unknown_create_engine_keyword_says_did_you_mean(keyword: str, suggestion: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        sa.create_engine(PG, plugins=["rds_iam"], **{keyword: "x"})
    message = str(info.value)
    assert f"{keyword!r} (did you mean {suggestion!r}?)" in message
    from sqlalchemy_rds_iam.options import KEYWORD_ONLY_NAMES, OPTION_NAMES

    assert ", ".join(OPTION_NAMES + KEYWORD_ONLY_NAMES) in message


def test_unknown_url_parameter_and_attach_keyword_say_did_you_mean() -> None:
    with pytest.raises(ConfigurationError, match="did you mean 'iam_host'"):
        sa.create_engine(f"{PG}?plugin=rds_iam&iam_hots=x")
    with pytest.raises(ConfigurationError, match="did you mean 'aws_region'"):
        sqlalchemy_rds_iam.attach(sa.create_engine(PG), aws_regoin="us-east-1")  # type: ignore[call-arg]
    # a name with nothing close still lists the known ones
    with pytest.raises(ConfigurationError, match=r"'iam_zzzzzzzz'; sqlalchemy-rds-iam knows aws_region"):
        sa.create_engine(PG, plugins=["rds_iam"], iam_zzzzzzzz=1)


def test_other_keywords_are_left_to_sqlalchemy() -> None:
    with pytest.raises(TypeError, match="pool_sise"):
        sa.create_engine(PG, plugins=["rds_iam"], pool_sise=1)


def test_mypy_catches_a_misspelt_attach_keyword(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        "import sqlalchemy as sa\n"
        "from sqlalchemy.ext.asyncio import create_async_engine\n"
        "import sqlalchemy_rds_iam\n"
        "engine = sa.create_engine('postgresql+psycopg2://u@h/db')\n"
        "sqlalchemy_rds_iam.attach(engine, aws_region='us-east-1', iam_port=5432)\n"
        "sqlalchemy_rds_iam.attach(create_async_engine('postgresql+asyncpg://u@h/db'))\n"
        "sqlalchemy_rds_iam.connector(engine).token()\n"
        "sqlalchemy_rds_iam.attach(engine, aws_regoin='us-east-1')\n"
        "sqlalchemy_rds_iam.attach(engine, iam_tls=1)\n"
        "sqlalchemy_rds_iam.attach('postgresql://u@h/db')\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary",
         "--cache-dir", str(tmp_path / "cache"), str(snippet)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={**os.environ, "MYPYPATH": str(ROOT)},  # an editable install hides the package
    )
    lines = sorted(int(m) for m in re.findall(r"snippet\.py:(\d+): error", result.stdout))
    assert lines == [8, 9, 10], result.stdout
    assert 'did you mean "aws_region"' in result.stdout


def _tree(text: str) -> list[tuple[int, str]]:
    """(depth, class name) for each line of a box-drawing tree whose root is RdsIamError."""
    start = text.index("RdsIamError ")
    column = start - (text.rfind("\n", 0, start) + 1)
    rows = []
    for line in text[start - column:].splitlines():
        match = re.match(r"^((?:[│ ]   )*)(?:[├└]── )?([A-Z]\w+Error)\b", line[column:])
        if not match:
            break
        rows.append((len(match.group(1)) // 4 + (1 if "──" in line else 0), match.group(2)))
    return rows


def _code_tree() -> list[tuple[int, str]]:
    classes = [getattr(errors, name) for name in errors.__all__]
    rows: list[tuple[int, str]] = []

    def walk(cls: type, depth: int) -> None:
        rows.append((depth, cls.__name__))
        for sub in sorted((c for c in classes if cls in c.__bases__), key=classes.index):
            walk(sub, depth + 1)

    walk(RdsIamError, 0)
    return rows


def test_error_tree_in_docstring_and_docs_matches_the_classes() -> None:
    expected = _code_tree()
    assert len(expected) == len(errors.__all__)
    assert _tree(errors.__doc__ or "") == expected
    assert _tree(EXCEPTIONS_PAGE) == expected
