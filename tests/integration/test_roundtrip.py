"""Each driver, as its extra installs it, carries real data through the plugin.

A driver combination that logs in can still be broken for data: aiomysql 0.3.2 with PyMySQL
1.2 fails on every bytes parameter, psycopg's async dialect needs greenlet. So every driver
writes and reads back, over its verified-TLS IAM connection to the emulator: binary data with
every byte value, Unicode text beyond the BMP, JSON, a time-zone-aware timestamp, an exact
decimal, and a 1 MiB value.
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from sqlalchemy_rds_iam.drivers import DRIVERS

if TYPE_CHECKING:
    from sqlalchemy_rds_iam.testing.info import EmulatorInfo

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("rds_iam_aws_env")]

MIB = 1 << 20
ROW = {
    "id": 1,
    "blob": bytes(range(256)) * 4,  # NUL, quotes, backslashes, invalid UTF-8
    "text": "Zürich 東京 🚀 O'Brien \\ \"quoted\" \u00a0 ñ",
    "doc": {"name": "Zoë", "list": [1, 2.5, None, True, "🚀"], "nested": {"k": "v"}},
    "at": datetime(2026, 12, 1, 13, 45, 30, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    "amount": Decimal("12345678901234.567890"),
    "big": random.Random(11).randbytes(MIB),  # noqa: S311 (test data, not a secret)
}


def _table(metadata: sa.MetaData) -> sa.Table:
    # MySQL has no time zone type, and its BLOB/DATETIME defaults are 64 KiB / whole seconds.
    return sa.Table(
        "rds_iam_roundtrip", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("blob", sa.LargeBinary),
        sa.Column("text", sa.UnicodeText),
        sa.Column("doc", sa.JSON),
        sa.Column("at", sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql")),
        sa.Column("amount", sa.Numeric(20, 6)),
        sa.Column("big", sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql")),
        prefixes=["TEMPORARY"],  # per connection: concurrent test sessions never collide
        mysql_charset="utf8mb4",
    )


def _expected(family: str) -> dict[str, Any]:
    if family == "mysql":  # DATETIME keeps the wall-clock time and drops the offset
        return {**ROW, "at": ROW["at"].replace(tzinfo=None)}
    return ROW


def _roundtrip(conn: sa.Connection) -> dict[str, Any]:
    metadata = sa.MetaData()
    table = _table(metadata)
    metadata.create_all(conn)
    conn.execute(table.insert(), ROW)
    row = conn.execute(sa.select(table)).mappings().one()
    return dict(row)


@pytest.mark.parametrize("driver", sorted(DRIVERS))
def test_data_roundtrip(rds_iam_emulator: EmulatorInfo, driver: str) -> None:
    spec = DRIVERS[driver]
    server = rds_iam_emulator.postgresql if spec.family == "postgresql" else rds_iam_emulator.mysql
    query = {"charset": "utf8mb4"} if spec.family == "mysql" else {}
    if driver == "mysqldb":  # libmysqlclient's "localhost" is the Unix socket: no TLS
        query["iam_host"] = "localhost"
    url = server.url(driver=driver, **query)
    if driver == "mysqldb":
        url = url.replace("@localhost:", "@127.0.0.1:", 1)

    if spec.is_async:
        async def run() -> dict[str, Any]:
            engine = create_async_engine(url, poolclass=NullPool)
            try:
                async with engine.connect() as conn:
                    return await conn.run_sync(_roundtrip)
            finally:
                await engine.dispose()

        got = asyncio.run(run())
    else:
        engine = sa.create_engine(url, poolclass=NullPool)
        with engine.connect() as conn:
            got = _roundtrip(conn)
        engine.dispose()

    expected = _expected(spec.family)
    for column, value in expected.items():
        assert got[column] == value, f"{driver}: {column} came back as {got[column]!r:.200}"
    assert type(got["big"]) is bytes and len(got["big"]) == MIB
