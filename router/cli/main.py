"""``residency-router`` command line.

Each concept contributes its subcommands through a module with ``register(subparsers)``; heavy
imports happen inside the handlers so that ``--help`` stays fast. A handler returns the process
exit code. :class:`router.errors.RouterError` is printed as one clear message (exit 2), never as
a traceback.

``--log-format json`` (before the command) makes every command's log lines JSON objects on stderr
(:mod:`router.telemetry.logs`), and the error line too; ``run`` also takes it after the command.
"""

from __future__ import annotations

import argparse
import importlib
import logging
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
    "router.cli.report",
    "router.cli.quarantine",
    "router.cli.status",
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
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="log lines on stderr as key=value text or one JSON object per line (default: %(default)s)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    json_logs = getattr(args, "log_format", "text") == "json"
    if json_logs:
        from router.telemetry.logs import configure_logging  # noqa: PLC0415 (keep --help fast)

        configure_logging("WARNING", "json")  # `run` sets its own level
    try:
        code: int = args.handler(args)
    except RouterError as err:
        if json_logs:
            logging.getLogger("router.cli").error("residency-router: error: %s", err)
        else:
            print(f"residency-router: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
