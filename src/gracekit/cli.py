"""The ``gracekit`` command line: one subcommand per module, each registering itself.

A command module has ``register(commands)``, which adds its parser to the subparsers and sets
``handler`` (a function of the parsed arguments returning the exit status) as a default. Its
imports stay inside the handler, so ``gracekit --help`` needs none of the optional extras.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

__all__ = ["main"]

#: The modules whose ``register()`` adds a subcommand, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "gracekit.server._command",
    "gracekit.kubernetes.command",
    "gracekit.rollout.command",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gracekit", description="Zero-downtime deploys.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    status: int = args.handler(args)
    return status
