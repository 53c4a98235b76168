"""The count trigger writes each cell with its own single-row upsert, so it runs on Citus too.

Migration 0007's function wrote a statement's cells with one `INSERT ... SELECT ... FROM
new_rows`. On a distributed PostgreSQL (Citus) the trigger runs inside each shard of tasks on a
worker, where task_counts is itself a distributed table: Citus plans that INSERT ... SELECT and
loses the transition table ("could not find named tuplestore"), so every write to tasks failed.
This function reads the same grouped transition rows and writes each cell by a single-row
upsert, which Citus routes to the co-located shard of the same user on the same worker, and
plain PostgreSQL runs as before: still one change per cell per statement (a bulk import is one
upsert per cell, not per task), in key order (two moves in opposite directions cannot
deadlock), under the cell row's lock, committed or rolled back with the task change.

The downgrade keeps this function: it counts exactly as 0007's did, and 0007's would break
every write on Citus again. Downgrading past 0007 drops it with the triggers.

Revision ID: 2026_12_01_0008
Revises: 2026_11_24_0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "2026_12_01_0008"
down_revision: str | None = "2026_11_24_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOLLOW = """
CREATE OR REPLACE FUNCTION task_counts_follow() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    cells refcursor;
    cell record;
BEGIN
    IF TG_OP = 'INSERT' THEN
        OPEN cells FOR SELECT user_id, completed, priority, count(*) AS delta FROM new_rows
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
    ELSIF TG_OP = 'DELETE' THEN
        OPEN cells FOR SELECT user_id, completed, priority, -count(*) AS delta FROM old_rows
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
    ELSE
        OPEN cells FOR SELECT user_id, completed, priority, sum(delta) AS delta FROM (
            SELECT user_id, completed, priority, -1 AS delta FROM old_rows
            UNION ALL
            SELECT user_id, completed, priority, 1 FROM new_rows
        ) AS moved
        GROUP BY 1, 2, 3 HAVING sum(delta) <> 0 ORDER BY 1, 2, 3;
    END IF;
    LOOP
        FETCH cells INTO cell;
        EXIT WHEN NOT FOUND;
        INSERT INTO task_counts AS c (user_id, completed, priority, tasks)
        VALUES (cell.user_id, cell.completed, cell.priority, cell.delta)
        ON CONFLICT (user_id, completed, priority) DO UPDATE SET tasks = c.tasks + excluded.tasks;
    END LOOP;
    CLOSE cells;
    RETURN NULL;
END;
$$
"""


def upgrade() -> None:
    op.execute(FOLLOW)


def downgrade() -> None:
    pass  # see the module's note
