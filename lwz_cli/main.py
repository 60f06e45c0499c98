"""``lwz``: parse the global options, let each package add its commands, run one.

The CLI is the top floor: it imports the packages, and no package imports it. Each module named
in ``COMMAND_MODULES`` adds its commands with ``register(subparsers)``. Those modules import only
argparse at the top, so ``lwz --help`` stays instant; handlers import what they need.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMAND_MODULES = ("lwz_cli.core", "lwz_cli.generate", "lwz_cli.serve", "lwz_cli.battles", "lwz_cli.evaluate", "lwz_cli.train")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lwz",
        description="LongWriter Studio: write, vote, rate and retrain think-then-write models.",
    )
    parser.add_argument(
        "--db",
        default=None,
        metavar="URL",
        help="database URL (default: $LWZ_DATABASE_URL or sqlite:///lwz.db in the working directory)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from core.errors import UserError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args) or 0
    except UserError as exc:
        print(f"lwz: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lwz: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _reader_left()
    except Exception as exc:
        reason = _database_failure(exc)
        if reason is None:
            raise
        print(f"lwz: error: database failed: {reason}", file=sys.stderr)
        return 2


def _reader_left() -> int:
    """The reader of stdout went away (``lwz prompts list | head``): stop quietly, as a pipe tool does.

    stdout is pointed at /dev/null so that the interpreter's final flush does not fail again.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141  # 128 + SIGPIPE, what the shell reports for a C tool stopped the same way


def _database_failure(exc: BaseException) -> str | None:
    """The first line of a database outage or refusal (server gone, read-only file), else None.

    Such failures are the user's environment, not a bug, so they get one line like a UserError.
    sqlalchemy is imported here, only once something failed, to keep ``--help`` instant.
    """
    from sqlalchemy.exc import InterfaceError, OperationalError
    from storage.engine import refused_value

    refused = refused_value(exc)
    if refused is not None:
        return refused
    if not isinstance(exc, (OperationalError, InterfaceError)):
        return None
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
