"""Unicode through the ORM on the emulator as a user writes it: a mapped class, a Session,
no charset options anywhere. The emulator's MariaDB was latin1 (``1366 Incorrect string
value`` for '✓'), so such code failed only against the emulator."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from sqlalchemy_rds_iam.testing.info import EmulatorInfo

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("rds_iam_aws_env")]

TEXTS = ["✓", "🐍 emoji beyond the BMP 🚀", "Zürich 東京 ñ O'Brien"]
# What each server reports as the database's character set.
CHARSET_SQL = {
    "postgresql": "SELECT pg_encoding_to_char(encoding) FROM pg_database "
    "WHERE datname = current_database()",
    "mysql": "SELECT @@character_set_database, @@character_set_server, @@collation_database",
}
EXPECTED_CHARSET = {
    "postgresql": ("UTF8",),
    "mysql": ("utf8mb4", "utf8mb4", "utf8mb4_unicode_ci"),
}


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "rds_iam_unicode_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(sa.String(100))


@pytest.mark.parametrize("server", ["postgresql", "mysql"])
def test_unicode_round_trip_through_a_mapped_class(
    rds_iam_emulator: EmulatorInfo, server: str
) -> None:
    info = rds_iam_emulator.servers[server]
    # users[1]: tests that count refused logins watch the first user
    engine = sa.create_engine(info.url(info.users[1]), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            assert tuple(connection.exec_driver_sql(CHARSET_SQL[server]).one()) == (
                EXPECTED_CHARSET[server]
            )
        Base.metadata.drop_all(engine)
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add_all([Note(id=n, text=t) for n, t in enumerate(TEXTS, 1)])
            session.commit()
        with Session(engine) as session:
            stored = session.scalars(sa.select(Note.text).order_by(Note.id)).all()
            found = session.scalar(sa.select(Note.id).where(Note.text == "✓"))
        assert stored == TEXTS
        assert found == 1
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()
