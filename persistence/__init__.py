"""Everything that talks to PostgreSQL: engine, transactions, schema and all SQL."""
