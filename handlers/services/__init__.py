"""What the process runs on, whichever door: settings, bearer tokens, logs, metrics, JSON, and
the state the composition root hands every door. No framework, no door."""
