"""A refused login is explained (a note and a WARNING) and, for a cached token, retried once.

Against the emulator, whose verifier refuses tokens signed by credentials it does not know:
"retired" credentials stand in for rotated keys or an ended session.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import sqlalchemy_rds_iam
from sqlalchemy_rds_iam.credentials import FrozenCredentials
from sqlalchemy_rds_iam.drivers import DRIVERS
from sqlalchemy_rds_iam.refusals import login_refused
from tests.fakes import signed_tokens

if TYPE_CHECKING:
    from sqlalchemy_rds_iam.testing.info import EmulatorInfo, ServerInfo

pytestmark = pytest.mark.integration

RETIRED_KEY = "AKIARETIREDEXAMPLE01"


class SwitchableSource:
    """The emulator's primary identity, or retired credentials while ``retired`` is set."""

    def __init__(self, info: EmulatorInfo) -> None:
        self.identity = info.identities["primary"]
        self.region_name = info.region
        self.retired = False
        self._retired_secret = secrets.token_urlsafe(30)

    def frozen(self) -> FrozenCredentials:
        if self.retired:
            return FrozenCredentials(RETIRED_KEY, self._retired_secret, None, None)
        return FrozenCredentials(self.identity.access_key_id, self.identity.secret_access_key,
                                 self.identity.session_token, None)

    def region(self) -> str | None:
        return self.region_name

    def describe(self) -> str:
        return "switchable test source"


def _server(info: EmulatorInfo, driver: str) -> ServerInfo:
    return info.postgresql if DRIVERS[driver].family == "postgresql" else info.mysql


def _engine(info: EmulatorInfo, driver: str) -> tuple[Any, SwitchableSource]:
    url = _server(info, driver).url(driver=driver)
    engine: Any = (create_async_engine(url, poolclass=NullPool) if DRIVERS[driver].is_async
                   else sa.create_engine(url, poolclass=NullPool))
    source = SwitchableSource(info)
    sqlalchemy_rds_iam.connector(engine).source = source
    return engine, source


def _select_one(engine: Any) -> int:
    if isinstance(engine, sa.Engine):
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT 1")).scalar_one())

    async def run() -> int:
        try:
            async with engine.connect() as conn:
                return int((await conn.execute(sa.text("SELECT 1"))).scalar_one())
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _attempts(server: ServerInfo, since: int, tokens: set[str]) -> list[bool]:
    return [v.ok for t in tokens for v in server.verifications(since, token=t)]


@pytest.mark.parametrize("driver", ["psycopg2", "asyncpg", "pymysql"])
def test_a_refused_cached_token_is_replaced_once(rds_iam_emulator: EmulatorInfo,
                                                 driver: str) -> None:
    engine, source = _engine(rds_iam_emulator, driver)
    connector = sqlalchemy_rds_iam.connector(engine)
    server = _server(rds_iam_emulator, driver)
    source.retired = True
    stale = connector.token()  # cached, signed by credentials the server no longer knows
    source.retired = False
    since = server.log_offset()
    assert _select_one(engine) == 1
    fresh = connector.cache.peek(connector.key())
    assert fresh and fresh != stale
    assert _attempts(server, since, {stale}) == [False]
    assert set(_attempts(server, since, {fresh})) == {True}  # (the pool may log in twice)


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg", "pg8000", "asyncpg", "pymysql",
                                    "mysqlconnector", "aiomysql"])
def test_a_second_refusal_surfaces_with_a_note(rds_iam_emulator: EmulatorInfo, driver: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sqlalchemy_rds_iam")
    engine, source = _engine(rds_iam_emulator, driver)
    connector = sqlalchemy_rds_iam.connector(engine)
    server = _server(rds_iam_emulator, driver)
    source.retired = True
    signed = signed_tokens(connector)
    first = connector.token()
    since = server.log_offset()
    # SQLAlchemy's wrapper; on SQLAlchemy 2.0, asyncpg's connect errors come unwrapped.
    with pytest.raises(Exception) as info:
        _select_one(engine)
    assert login_refused(getattr(info.value, "orig", info.value), DRIVERS[driver].family)
    notes = getattr(info.value, "__notes__", [])
    assert len(notes) == 1, notes
    note = notes[0]
    for part in (f"user 'iamuser' at {server.host}:{server.port}", f"region {server.region}",
                 f"access key {RETIRED_KEY}", "token age", "switchable test source",
                 "retried once", "sqlalchemy-rds-iam doctor '"):
        assert part in note, (part, note)
    signature = first.rsplit("X-Amz-Signature=", 1)[1]
    assert signature not in note and "X-Amz" not in note
    refusals = [r for r in caplog.records if "refused the IAM token" in r.getMessage()]
    assert len(refusals) == 1
    # Exactly two logins: the cached token, then one fresh signing; no loop.
    assert len(signed) == 2, "the cached token, then one fresh signing"
    assert len(_attempts(server, since, set(signed))) == 2


def test_a_fresh_token_refused_is_not_retried(rds_iam_emulator: EmulatorInfo) -> None:
    engine, source = _engine(rds_iam_emulator, "psycopg2")
    server = _server(rds_iam_emulator, "psycopg2")
    source.retired = True
    signed = signed_tokens(sqlalchemy_rds_iam.connector(engine))
    since = server.log_offset()
    with pytest.raises(sa.exc.OperationalError) as info:
        _select_one(engine)
    (note,) = info.value.__notes__
    assert "retried" not in note
    (token,) = signed
    assert _attempts(server, since, {token}) == [False]


def test_the_doctor_command_has_no_secrets(rds_iam_emulator: EmulatorInfo) -> None:
    engine, _ = _engine(rds_iam_emulator, "psycopg2")
    line = sqlalchemy_rds_iam.connector(engine).doctor_command()
    server = rds_iam_emulator.postgresql
    assert line.startswith("sqlalchemy-rds-iam doctor 'postgresql+psycopg2://iamuser@")
    assert "plugin=rds_iam" in line and f"aws_region={server.region}" in line
    assert "Signature" not in line and "password" not in line
