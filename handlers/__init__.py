"""The operations (tasks.py, health.py: one function per operationId) and what they share; the
HTTP adapter in http/ and the MCP adapter in mcp/ both call them, and nothing here imports
either adapter."""
