"""Per-user task counts, one row per cell of the filters the API offers (completed x priority),
kept by the database in the same transaction as every write to tasks, so a list's `total` is a
sum of at most six rows however many tasks the user has.

Statement-level triggers keep them (a bulk import of 100,000 tasks is one change per cell, not
100,000): an insert adds to its cells, a delete takes away, an update that moves tasks to
another cell (completing one, changing its priority) does both, and an update that leaves every
cell alone (a new title) writes nothing. A statement's cells are changed by one upsert in key
order, so two moves in opposite directions cannot deadlock. Counts are exact under concurrent
writers: each change is an increment under the cell row's lock, committed or rolled back with
the task change itself.

The upgrade backfills the cells of existing users from the tasks (in the same transaction,
with tasks locked against writes until it commits); the downgrade drops them.

Revision ID: 2026_11_24_0007
Revises: 2026_11_24_0006
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "2026_11_24_0007"
down_revision: str | None = "2026_11_24_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One function for the three statement-level triggers below: each statement's rows, old and
# new (PostgreSQL's transition tables), become one change per cell, written in key order.
FOLLOW = """
CREATE FUNCTION task_counts_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO task_counts AS c (user_id, completed, priority, tasks)
        SELECT user_id, completed, priority, count(*) FROM new_rows
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (user_id, completed, priority) DO UPDATE SET tasks = c.tasks + excluded.tasks;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO task_counts AS c (user_id, completed, priority, tasks)
        SELECT user_id, completed, priority, -count(*) FROM old_rows
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (user_id, completed, priority) DO UPDATE SET tasks = c.tasks + excluded.tasks;
    ELSE
        INSERT INTO task_counts AS c (user_id, completed, priority, tasks)
        SELECT user_id, completed, priority, sum(delta) FROM (
            SELECT user_id, completed, priority, -1 AS delta FROM old_rows
            UNION ALL
            SELECT user_id, completed, priority, 1 FROM new_rows
        ) AS moved
        GROUP BY 1, 2, 3 HAVING sum(delta) <> 0 ORDER BY 1, 2, 3
        ON CONFLICT (user_id, completed, priority) DO UPDATE SET tasks = c.tasks + excluded.tasks;
    END IF;
    RETURN NULL;
END;
$$
"""
# trigger: (event, transition tables)
TRIGGERS = {
    "task_counts_inserted": ("INSERT", "NEW TABLE AS new_rows"),
    "task_counts_updated": ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    "task_counts_deleted": ("DELETE", "OLD TABLE AS old_rows"),
}


def upgrade() -> None:
    op.create_table(
        "task_counts",
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("completed", sa.Boolean(), nullable=False),
        sa.Column(
            "priority",
            postgresql.ENUM(name="task_priority", create_type=False),
            nullable=False,
        ),
        sa.Column("tasks", sa.BigInteger(), nullable=False),
        # No CHECK (tasks >= 0): PostgreSQL checks the row an upsert proposes before it finds
        # the conflict, and a decrement proposes a negative one.
        sa.PrimaryKeyConstraint("user_id", "completed", "priority", name="pk_task_counts"),
    )
    op.execute("LOCK TABLE tasks IN SHARE MODE")  # no writes between the backfill and trigger
    op.execute(
        "INSERT INTO task_counts (user_id, completed, priority, tasks)"
        " SELECT user_id, completed, priority, count(*) FROM tasks"
        " GROUP BY user_id, completed, priority"
    )
    op.execute(FOLLOW)
    for trigger, (event, tables) in TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {trigger} AFTER {event} ON tasks REFERENCING {tables}"
            " FOR EACH STATEMENT EXECUTE FUNCTION task_counts_follow()"
        )


def downgrade() -> None:
    for trigger in TRIGGERS:
        op.execute(f"DROP TRIGGER {trigger} ON tasks")
    op.execute("DROP FUNCTION task_counts_follow()")
    op.drop_table("task_counts")
