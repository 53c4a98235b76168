"""What the operations share, and all they know: their context, their answer, domain errors,
preconditions and idempotency keys. Nothing here imports a web framework or the MCP SDK: each
door (HTTP, MCP, the command line) builds a Context, calls an operation, and renders its Answer
or error in its own terms (tests/unit/test_imports.py holds that line)."""
