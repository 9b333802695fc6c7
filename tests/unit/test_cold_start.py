"""Cold start: what a fresh process (a Lambda's init) imports on the way to its first token.

Speed itself is measured in ``bench/`` (``make bench``); these tests pin what makes it fast.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.pinned_imports import (
    ALLOWED_OTHERS,
    DIFFLIB_ON_THE_CONNECT_PATH,
    NEVER,
    PINNED,
    drift,
    plugin_imports,
    report,
)


def test_lambda_path_never_imports_botocore() -> None:
    """A fresh process that signs with environment credentials takes the fast path."""
    code = (
        "import sys, sqlalchemy as sa, sqlalchemy_rds_iam\n"
        "engine = sa.create_engine('postgresql+psycopg2://iamuser@db.cluster-abc.us-east-1"
        ".rds.amazonaws.com/app?plugin=rds_iam')\n"
        "token = sqlalchemy_rds_iam.connector(engine).token()\n"
        "assert 'X-Amz-Security-Token=tok' in token\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('botocore', 'boto3')))\n"
    )
    env = {"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "s",
           "AWS_SESSION_TOKEN": "tok", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_importing_the_package_after_sqlalchemy_loads_only_the_standard_library() -> None:
    """What keeps ``import sqlalchemy_rds_iam`` under 10 ms once SQLAlchemy is imported
    (``make bench`` times it): no botocore, no driver; our own modules and the standard
    library only. (The error classes derive from SQLAlchemy's, which any user imports.)"""
    code = ("import sys, sqlalchemy; before = set(sys.modules); import sqlalchemy_rds_iam; "
            "print(' '.join(sorted({m.split('.')[0] for m in set(sys.modules) - before})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    loaded = set(out.stdout.split()) - {"sqlalchemy_rds_iam", "sqlalchemy"}
    assert loaded <= set(sys.stdlib_module_names), loaded


def test_an_imported_sqlalchemy_learns_the_plugin_without_its_entry_point_scan() -> None:
    code = (
        "import sqlalchemy, sqlalchemy_rds_iam\n"
        "from sqlalchemy.dialects import plugins\n"
        "assert 'rds_iam' in plugins.impls\n"
        "from sqlalchemy_rds_iam.plugin import RdsIamPlugin\n"
        "assert plugins.load('rds_iam') is RdsIamPlugin\n"
        "e = sqlalchemy.create_engine('postgresql+psycopg2://u@db.cluster-abc.us-east-1"
        ".rds.amazonaws.com/app?plugin=rds_iam')\n"
        "print(sqlalchemy_rds_iam.connector(e).target.region)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    assert out.stdout.strip() == "us-east-1"


# -- What a first connect imports, pinned (tests/pinned_imports.py) -----------------------

_URL = "postgresql+psycopg2://iamuser@db.cluster-abc.us-east-1.rds.amazonaws.com/app"
#: The app without the plugin: its engine (dialect and driver imported, as any app's are).
_BASELINE = f"sa.create_engine({_URL!r})"
#: A plugin engine's first connect up to the driver call: the do_connect listeners as
#: SQLAlchemy runs them (TLS defaults, the allow-list check, credentials, a signed token).
#: The driver itself is not called: the emulator's version is in tests/integration.
_FIRST_CONNECT = f"""
engine = sa.create_engine({_URL!r} + "?plugin=rds_iam")
engine.dialect.connect = lambda *cargs, **cparams: object()
cparams = dict(engine.dialect.create_connect_args(engine.url)[1])
for listener in engine.dialect.dispatch.do_connect:
    listener(engine.dialect, None, [], cparams)
assert sqlalchemy_rds_iam.connector(engine).cache._entries, "no token was signed"
"""
_ENV = {"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "tok",
        "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}


def test_a_first_connect_imports_only_the_pinned_modules() -> None:
    imported = plugin_imports(_BASELINE, _FIRST_CONNECT, _ENV)
    problems = drift(imported)
    assert not problems, report(problems)


def test_the_pin_reports_difflib_imported_on_the_connect_path(tmp_path: Path) -> None:
    """The negative control: with ``difflib`` imported along with ``options`` (as a
    module-level ``import difflib`` there would), the same check names it."""
    (tmp_path / "sitecustomize.py").write_text(DIFFLIB_ON_THE_CONNECT_PATH)
    imported = plugin_imports(_BASELINE, _FIRST_CONNECT, {**_ENV, "PYTHONPATH": str(tmp_path)})
    assert drift(imported) == ["other modules added to the connect path: difflib"]


def test_the_pin_reports_a_module_of_ours_added_or_gone() -> None:
    assert drift(set(PINNED) | {"hmac", "sqlalchemy_rds_iam.doctor"}) == [
        "added to the connect path: sqlalchemy_rds_iam.doctor"]
    assert drift(set(PINNED) - {"sqlalchemy_rds_iam.memo"}) == [
        "no longer on the connect path: sqlalchemy_rds_iam.memo"]


def test_the_pin_never_allows_what_must_stay_off_the_connect_path() -> None:
    assert not (PINNED | ALLOWED_OTHERS) & NEVER
