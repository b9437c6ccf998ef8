"""The ``residency-router`` command line: one module per command group, each with ``register(subparsers)``.

:mod:`router.cli.main` builds the parser and runs a handler; the handlers import the concept they
drive inside themselves, so that ``--help`` stays fast.
"""

from router.cli.main import COMMAND_MODULES, build_parser, main

__all__ = ["COMMAND_MODULES", "build_parser", "main"]
