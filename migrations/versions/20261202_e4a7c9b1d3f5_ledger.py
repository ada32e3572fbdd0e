"""ledger: append-only wallet entries, one balance per customer, and markups (reseller mode)

Revision ID: e4a7c9b1d3f5
Revises: d9e2b7c4a6f1
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.db

revision: str = "e4a7c9b1d3f5"
down_revision: str | None = "d9e2b7c4a6f1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", storage.db.Money(), nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("admin_id", sa.BigInteger(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", storage.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint("reference", name=op.f("uq_ledger_entries_reference")),
    )
    with op.batch_alter_table("ledger_entries") as batch_op:
        batch_op.create_index("ix_ledger_entries_user", ["user_id", "id"], unique=False)
        batch_op.create_index(
            "ix_ledger_entries_kind_created", ["kind", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_ledger_entries_order_id"), ["order_id"], unique=False)
    op.create_table(
        "wallets",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("balance", storage.db.Money(), nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("updated_at", storage.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_wallets")),
    )
    op.create_table(
        "markups",
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("percent", storage.db.Money(), nullable=False),
        sa.Column("updated_at", storage.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_markups")),
    )


def downgrade() -> None:
    op.drop_table("markups")
    op.drop_table("wallets")
    with op.batch_alter_table("ledger_entries") as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_entries_order_id"))
        batch_op.drop_index("ix_ledger_entries_kind_created")
        batch_op.drop_index("ix_ledger_entries_user")
    op.drop_table("ledger_entries")
