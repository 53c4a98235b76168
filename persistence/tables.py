"""Table definitions for statements; the schema itself is created only by Alembic migrations."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Enum,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    Uuid,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Each table's info names the column it is sharded by on a distributed PostgreSQL (Citus), or
# None for a table that stays whole: every key of a sharded table includes the column, and every
# statement on it filters by it (tests/unit/test_sharding.py).
DISTRIBUTED_BY = "distributed_by"

# A PostgreSQL enum sorts in declaration order, so ORDER BY priority means low < medium < high.
task_priority = Enum("low", "medium", "high", name="task_priority")

tasks = Table(
    "tasks",
    metadata,
    Column("id", Uuid, nullable=False, server_default=text("gen_random_uuid()")),
    Column("user_id", String(128), nullable=False),
    Column("title", String(200), nullable=False),
    Column("description", String(4000), nullable=True),
    Column("completed", Boolean, nullable=False, server_default=false()),
    Column("priority", task_priority, nullable=False, server_default="medium"),
    Column("due_date", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # The task's ETag: 1 when created, one more on every change.
    Column("version", BigInteger, nullable=False, server_default=text("1")),
    PrimaryKeyConstraint("user_id", "id"),
    Index("ix_tasks_user_id_created_at_id", "user_id", text("created_at DESC"), "id"),
    CheckConstraint("isfinite(due_date)", name="due_date_finite"),
    info={DISTRIBUTED_BY: "user_id"},
)

# How many tasks each user has in each cell of the filters the API offers (completed x priority),
# kept by a trigger on tasks in the same transaction as every write (migration 0007), so a list's
# total is a sum of at most six rows whatever the user's size.
task_counts = Table(
    "task_counts",
    metadata,
    Column("user_id", String(128), nullable=False),
    Column("completed", Boolean, nullable=False),
    Column("priority", task_priority, nullable=False),
    Column("tasks", BigInteger, nullable=False),
    PrimaryKeyConstraint("user_id", "completed", "priority"),
    info={DISTRIBUTED_BY: "user_id"},
)

# The first answer to each idempotency key, per user, until it expires (handlers/idempotency.py).
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_id", String(128), nullable=False),
    Column("key", String(255), nullable=False),
    Column("fingerprint", LargeBinary, nullable=False),  # SHA-256 of method, path and body
    Column("status", SmallInteger, nullable=False),
    Column("body", Text, nullable=False),  # the JSON as first sent
    Column("headers", JSONB, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("user_id", "key"),
    Index("ix_idempotency_keys_user_id_expires_at", "user_id", "expires_at"),
    info={DISTRIBUTED_BY: "user_id"},
)

# Requests per bucket (a user, or an address that failed authentication) and minute, shared by
# every worker and host (handlers/http/limits.py). UNLOGGED: counters need no crash safety.
# Not per user (addresses have no user), so not sharded: on Citus it stays a table of the
# coordinator, which every request passes through anyway.
rate_limits = Table(
    "rate_limits",
    metadata,
    Column("bucket", String(200), nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("hits", Integer, nullable=False),
    PrimaryKeyConstraint("bucket", "window_start"),
    Index("ix_rate_limits_window_start", "window_start"),  # finds stale windows to remove
    prefixes=["UNLOGGED"],
    info={DISTRIBUTED_BY: None},
)
