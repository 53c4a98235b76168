"""Row versions for ETags, and due dates that are always real instants.

A task's `version` starts at 1 and goes up by one on every change; it is the task's ETag, so a
conditional write compares it in the same statement that changes the row.

asyncpg wrote the first and last instants Python can hold as -infinity and infinity; those rows
get back the instant the client sent, and a CHECK keeps infinities out from now on.

Revision ID: 2026_11_24_0002
Revises: 2026_11_23_0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2026_11_24_0002"
down_revision: str | None = "2026_11_23_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "tasks", sa.Column("version", sa.BigInteger(), server_default=sa.text("1"), nullable=False)
    )
    op.execute(
        "UPDATE tasks SET due_date = CASE WHEN due_date = 'infinity'"
        " THEN timestamptz '9999-12-31 23:59:59.999999+00'"
        " ELSE timestamptz '0001-01-01 00:00:00+00' END"
        " WHERE NOT isfinite(due_date)"
    )
    op.create_check_constraint("due_date_finite", "tasks", "isfinite(due_date)")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_tasks_due_date_finite"), "tasks", type_="check")
    op.drop_column("tasks", "version")
