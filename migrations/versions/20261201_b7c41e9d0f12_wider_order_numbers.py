"""wider order numbers: quantity and service id as BIGINT, currency up to 16 characters

The form accepts quantities of 18 digits and the panel ids beyond 2**31; PostgreSQL's INTEGER
refused them (SQLite's INTEGER is 64-bit already, so only the declared types change there).

Revision ID: b7c41e9d0f12
Revises: a5d2a50222ea
Create Date: 2026-12-01 21:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b7c41e9d0f12"
down_revision: str | None = "a5d2a50222ea"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.alter_column("quantity", type_=sa.BigInteger(), existing_type=sa.Integer())
        batch.alter_column(
            "service_id", type_=sa.BigInteger(), existing_type=sa.Integer(), nullable=False
        )
        batch.alter_column(
            "currency",
            type_=sa.String(length=16),
            existing_type=sa.String(length=8),
            nullable=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.alter_column("currency", type_=sa.String(length=8), nullable=False)
        batch.alter_column("service_id", type_=sa.Integer(), nullable=False)
        batch.alter_column("quantity", type_=sa.Integer())
