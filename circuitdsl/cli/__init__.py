"""`circ`, the command line: ``app`` holds the boundary, the command modules register on it."""

from circuitdsl.cli.app import app, main
from circuitdsl.cli import bridge, explain, language, runtime  # noqa: F401,E402 - importing them registers the commands

__all__ = ["app", "main"]
