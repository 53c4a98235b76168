"""${message}

(On a Citus cluster too: a trigger on a distributed table touches only the same user's rows; a
new per-user table has user_id first in its keys and DISTRIBUTED_BY in persistence/tables.py;
no INSERT ... SELECT from a transition table. docs/operating.md: "More than one PostgreSQL".)

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}

revision: str = ${repr(up_revision)}
down_revision: str | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
