"""topups: the Stars top-ups customers pressed (reseller mode)

Revision ID: a1c3e5f7b9d2
Revises: f6b1c2d3e4a5
Create Date: 2026-12-03 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.db

revision: str = "a1c3e5f7b9d2"
down_revision: str | None = "f6b1c2d3e4a5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "topups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", storage.db.Money(), nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("stars", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("return_order", sa.Integer(), nullable=True),
        sa.Column("created_at", storage.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topups")),
    )
    with op.batch_alter_table("topups") as batch_op:
        batch_op.create_index(batch_op.f("ix_topups_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("topups") as batch_op:
        batch_op.drop_index(batch_op.f("ix_topups_user_id"))
    op.drop_table("topups")
