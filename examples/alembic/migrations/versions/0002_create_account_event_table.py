"""create account_event table

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 15:31:53.102911

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "account_event",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("account.id"), nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_account_event_account_id", "account_event", ["account_id"])


def downgrade() -> None:
    """Downgrade schema."""
    # Dropping the table drops its index: MySQL refuses to drop an index that a
    # foreign key uses, so no separate op.drop_index() here.
    op.drop_table("account_event")
