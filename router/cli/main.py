"""``residency-router`` command line.

Each concept contributes its subcommands through a module with ``register(subparsers)``; heavy
imports happen inside the handlers so that ``--help`` stays fast. A handler returns the process
exit code. :class:`router.errors.RouterError` is printed as one clear message (exit 2), never as
a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from router import __version__
from router.errors import RouterError

# Modules that contribute subcommands, in the order `--help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "router.cli.devcluster",
    "router.cli.simulate",
    "router.cli.keys",
    "router.cli.audit",
    "router.cli.quarantine",
    "router.cli.topics",
    "router.cli.acls",
    "router.cli.run",
    "router.cli.consume",
    "router.devtools.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="residency-router",
        description="Route CRM change events only to topics whose replicas sit in the data's jurisdiction.",
    )
    parser.add_argument("--version", action="version", version=f"residency-router {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except RouterError as err:
        print(f"residency-router: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
