"""An index on rate_limits.window_start: every counted request removes a few windows older than
the current minute, and without it finding them (or finding none) reads the whole table, one
row per user and address of the last minutes.

Revision ID: 2026_11_24_0006
Revises: 2026_11_24_0005
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "2026_11_24_0006"
down_revision: str | None = "2026_11_24_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_rate_limits_window_start", "rate_limits", ["window_start"])


def downgrade() -> None:
    op.drop_index("ix_rate_limits_window_start", "rate_limits")
