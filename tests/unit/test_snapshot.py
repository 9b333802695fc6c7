"""SnapStart hooks: registered once with AWS's ``snapshot_restore_py``, dropping every token
and credential, marking pooled connections invalid; the init's one-time work in the snapshot.

The end-to-end story (real servers, a restore with new container credentials) is
``tests/integration/test_snapstart.py``.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import pool

import sqlalchemy_rds_iam
from sqlalchemy_rds_iam import snapshot
from sqlalchemy_rds_iam.tokens import TokenCache
from tests.fakes import EXAMPLE_ACCESS_KEY, EXAMPLE_SECRET_KEY

PG = "postgresql+psycopg2://iamuser@db.cluster-abc.us-east-1.rds.amazonaws.com/app"


def run(code: str, env: dict[str, str] | None = None) -> str:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent",
            "AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "s"}
    out = subprocess.run([sys.executable, "-c", code], env={**base, **(env or {})},
                         capture_output=True, text=True, check=False, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_hooks_are_registered_once_per_process_at_the_first_engine_of_a_snap_start_init(
) -> None:
    code = (
        "import sys, sqlalchemy as sa, sqlalchemy_rds_iam, snapshot_restore_py as rt\n"
        "assert not rt.get_before_snapshot(), 'registered at import'\n"
        f"engines = [sa.create_engine({PG!r} + '?plugin=rds_iam') for _ in range(3)]\n"
        "from sqlalchemy_rds_iam import snapshot\n"
        "print([f is snapshot.before_snapshot for f, a, k in rt.get_before_snapshot()],\n"
        "      [f is snapshot.after_restore for f, a, k in rt.get_after_restore()],\n"
        "      snapshot.hooks_registered(), len(snapshot._SERVED))\n"
    )
    assert run(code, {"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}) == "[True] [True] True 3"


@pytest.mark.parametrize("init", [None, "on-demand", "provisioned-concurrency"])
def test_where_no_snapshot_follows_the_module_is_not_loaded(init: str | None) -> None:
    """An on-demand init (or none: not Lambda) is never snapshotted: a plugin engine loads
    neither ``snapshot`` nor the runtime module, and registers nothing. The package's own
    ``before_snapshot()`` still reaches the engines made until then (the control: it drops
    their tokens)."""
    code = (
        "import sys, sqlalchemy as sa, sqlalchemy_rds_iam, snapshot_restore_py as rt\n"
        "del sys.modules['snapshot_restore_py']\n"
        f"engine = sa.create_engine({PG!r} + '?plugin=rds_iam')\n"
        "conn = sqlalchemy_rds_iam.connector(engine)\n"
        "conn.token()\n"
        "loaded = ['sqlalchemy_rds_iam.snapshot' in sys.modules, 'snapshot_restore_py' in\n"
        "          sys.modules, len(rt.get_before_snapshot())]\n"
        "cached = conn.cache.peek(conn.key()) is not None\n"
        "sqlalchemy_rds_iam.before_snapshot()\n"
        "print(loaded, cached, conn.cache.peek(conn.key()) is None)\n"
    )
    env = {"AWS_LAMBDA_INITIALIZATION_TYPE": init} if init else {}
    assert run(code, env) == "[False, False, 0] True True"


def test_the_plugin_and_the_module_name_the_same_init_type() -> None:
    from sqlalchemy_rds_iam import plugin

    assert (plugin._INIT_TYPE_VARIABLE, plugin._SNAP_START) == (
        snapshot.INIT_TYPE_VARIABLE, snapshot.SNAP_START)
    assert plugin._SNAPSHOT_MODULE == snapshot.__name__


def test_without_the_runtime_module_nothing_is_registered_and_nothing_fails() -> None:
    code = (
        "import sys; sys.modules['snapshot_restore_py'] = None  # not importable\n"
        "import sqlalchemy as sa, sqlalchemy_rds_iam\n"
        f"engine = sa.create_engine({PG!r} + '?plugin=rds_iam')\n"
        "from sqlalchemy_rds_iam import snapshot\n"
        "print(snapshot.hooks_registered(), bool(sqlalchemy_rds_iam.connector(engine).token()))\n"
    )
    assert run(code, {"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}) == "False True"


def test_importing_the_package_does_not_import_the_runtime_module() -> None:
    code = ("import sys, sqlalchemy_rds_iam, sqlalchemy_rds_iam.plugin\n"
            "print('snapshot_restore_py' in sys.modules)")
    assert run(code) == "False"


def test_before_snapshot_drops_tokens_and_credentials(aws_env: None) -> None:
    engine = sa.create_engine(PG + "?plugin=rds_iam")
    conn = sqlalchemy_rds_iam.connector(engine)
    own = TokenCache()  # a cache the user made: dropped too
    own.get("k", lambda: conn._sign())
    token = conn.token()
    assert conn.cache.peek(conn.key()) == token and conn.source.access_key_hint()
    assert own.peek("k") is not None
    sqlalchemy_rds_iam.before_snapshot()
    assert conn.cache.peek(conn.key()) is None and own.peek("k") is None
    assert conn.source.access_key_hint() is None  # credentials forgotten
    assert conn._last_signing is None  # when and with which key, kept for the refusal note
    assert conn.token() != ""  # and it works again afterwards


def test_after_restore_re_reads_the_environment_and_asks_a_provider_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDBEFORE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", EXAMPLE_SECRET_KEY)
    engine = sa.create_engine(PG + "?plugin=rds_iam")
    calls: list[int] = []

    def provider() -> tuple[str, str]:
        calls.append(1)
        return EXAMPLE_ACCESS_KEY, EXAMPLE_SECRET_KEY

    other = sa.create_engine(PG + "?plugin=rds_iam", credentials_provider=provider)
    assert "AKIDBEFORE" in sqlalchemy_rds_iam.connector(engine).token()
    sqlalchemy_rds_iam.connector(other).token()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDAFTER")
    assert "AKIDBEFORE" in sqlalchemy_rds_iam.connector(engine).token()  # read once, as botocore
    sqlalchemy_rds_iam.after_restore()
    assert "AKIDAFTER" in sqlalchemy_rds_iam.connector(engine).token()
    sqlalchemy_rds_iam.connector(other).token()
    assert len(calls) == 2


@pytest.mark.parametrize("pool_class", [pool.QueuePool, pool.NullPool, pool.StaticPool,
                                        pool.SingletonThreadPool, pool.AsyncAdaptedQueuePool])
def test_every_pool_keeps_the_invalidation_time_the_hooks_move(
    aws_env: None, pool_class: type[pool.Pool]
) -> None:
    """The hooks move ``Pool._invalidate_time`` (what SQLAlchemy compares with each
    connection's start at checkout): pinned here for every SQLAlchemy the suite runs on."""
    url = PG.replace("psycopg2", "asyncpg") if pool_class is pool.AsyncAdaptedQueuePool else PG
    engine = sa.create_engine(url + "?plugin=rds_iam", poolclass=pool_class)
    before = engine.pool._invalidate_time
    sqlalchemy_rds_iam.after_restore()
    assert engine.pool._invalidate_time > before


def test_after_restore_makes_a_pooled_connection_be_replaced_at_checkout(aws_env: None) -> None:
    """Offline, with SQLite's pool machinery standing in: a connection checked in before
    the hook is closed and a new one made at the next checkout; none without the hook."""
    engine = sa.create_engine("sqlite://", poolclass=pool.QueuePool)
    snapshot.serve(engine, _NoIam())  # SQLite has no IAM: put under the hooks by hand
    with engine.connect() as conn:
        first = conn.connection.dbapi_connection
    with engine.connect() as conn:
        assert conn.connection.dbapi_connection is first  # pooled, reused
    sqlalchemy_rds_iam.after_restore()
    with engine.connect() as conn:
        assert conn.connection.dbapi_connection is not first
    engine.dispose()


class _NoIam:
    source = None
    spec = None

    def forget(self) -> None:
        pass

    def key(self) -> None:
        return None


def test_engines_are_held_weakly(aws_env: None) -> None:
    engine = sa.create_engine(PG + "?plugin=rds_iam")
    assert engine in snapshot._SERVED
    ref = weakref.ref(engine)
    del engine
    gc.collect()
    assert ref() is None  # the hooks kept it alive otherwise


def test_snap_start_init_does_the_first_connects_one_time_work_at_engine_creation(
    tmp_path: Path,
) -> None:
    """Under ``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start`` the first token after creating
    the engine imports nothing: the signer, the container endpoint's HTTP client and, for
    async drivers, greenlet are already in (in the snapshot). On demand they come later."""
    code = (
        "import sys, sqlalchemy as sa, sqlalchemy_rds_iam\n"
        "engine = sa.create_engine(sys.argv[1])\n"
        "before = set(sys.modules)\n"
        "sqlalchemy_rds_iam.connector(engine).token()\n"
        "print(' '.join(sorted(set(sys.modules) - before)) or '-')\n"
    )
    for driver in ("psycopg2", "asyncpg", "pymysql"):
        url = PG.replace("postgresql+psycopg2", f"{'mysql' if driver == 'pymysql' else 'postgresql'}"
                         f"+{driver}") + "?plugin=rds_iam"
        out = subprocess.run(
            [sys.executable, "-c", code, url], capture_output=True, text=True, timeout=120,
            env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path),
                 "AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "s",
                 "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}, check=True)
        assert out.stdout.strip() == "-", (driver, out.stdout)
    on_demand = run(code.replace("sys.argv[1]", repr(PG + "?plugin=rds_iam")))
    assert "sqlalchemy_rds_iam.sigv4" in on_demand.split()  # the control: lazily otherwise


def test_snap_start_init_leaves_a_configuration_problem_to_the_connect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    engine = sa.create_engine("postgresql+psycopg2://iamuser@db.example.com/app?plugin=rds_iam")
    with pytest.raises(sqlalchemy_rds_iam.RegionError):  # no region: said at connect
        sqlalchemy_rds_iam.connector(engine).token()
