"""favourites: the services a user starred, for a "★ Favourites" row on /order

Revision ID: d9e2b7c4a6f1
Revises: c3f8a1d2e4b5
Create Date: 2026-12-01 23:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.db

revision: str = "d9e2b7c4a6f1"
down_revision: str | None = "c3f8a1d2e4b5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "favourites",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("service_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", storage.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "service_id"),
    )


def downgrade() -> None:
    op.drop_table("favourites")
