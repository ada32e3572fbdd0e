"""access requests: when a person last asked the admins for access (one request a day)

Revision ID: c3f8a1d2e4b5
Revises: b7c41e9d0f12
Create Date: 2026-12-01 23:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.db

revision: str = "c3f8a1d2e4b5"
down_revision: str | None = "b7c41e9d0f12"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("access_requested_at", storage.db.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("access_requested_at")
