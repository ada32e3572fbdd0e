"""orders: the customer's price and currency (reseller mode) and the submission attempt

Revision ID: f6b1c2d3e4a5
Revises: e4a7c9b1d3f5
Create Date: 2026-12-03 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.db

revision: str = "f6b1c2d3e4a5"
down_revision: str | None = "e4a7c9b1d3f5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch_op:
        batch_op.add_column(sa.Column("customer_price", storage.db.Money(), nullable=True))
        batch_op.add_column(sa.Column("customer_currency", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("attempt", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch_op:
        batch_op.drop_column("attempt")
        batch_op.drop_column("customer_currency")
        batch_op.drop_column("customer_price")
