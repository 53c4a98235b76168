"""Every key of a per-user table starts with user_id, ready to shard by it (docs/operating.md: "More
than one PostgreSQL"): a distributed PostgreSQL such as Citus requires the distribution
column in every primary key and unique constraint.

tasks' primary key becomes (user_id, id). Ids stay unique on their own (random UUIDs); the new
key also serves every lookup of one task, which always names its user. Expired idempotency keys
are removed per user (by that user's next stored key), so their index leads with user_id too.

Revision ID: 2026_11_24_0005
Revises: 2026_11_24_0004
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "2026_11_24_0005"
down_revision: str | None = "2026_11_24_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("pk_tasks", "tasks", type_="primary")
    op.create_primary_key("pk_tasks", "tasks", ["user_id", "id"])
    op.drop_index("ix_idempotency_keys_expires_at", "idempotency_keys")
    op.create_index(
        "ix_idempotency_keys_user_id_expires_at", "idempotency_keys", ["user_id", "expires_at"]
    )


def downgrade() -> None:
    op.drop_constraint("pk_tasks", "tasks", type_="primary")
    op.create_primary_key("pk_tasks", "tasks", ["id"])
    op.drop_index("ix_idempotency_keys_user_id_expires_at", "idempotency_keys")
    op.create_index("ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"])
