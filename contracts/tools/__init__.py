"""Command-line tools over the contract: lint, diff (breaking changes) and handler stubs."""
