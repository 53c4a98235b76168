"""The API contract (openapi.yaml) and the tools that check, diff and implement it."""
