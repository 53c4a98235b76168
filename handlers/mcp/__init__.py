"""MCP: the contract's operations as tools for AI agents, over Streamable HTTP and stdio."""
