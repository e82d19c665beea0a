"""The ``snnsim`` command (also ``python -m snnsim``).

Subcommands: ``demo``, ``train``, ``export``, ``info``, ``run``, ``report``, ``verify``,
``bench``; ``snnsim COMMAND --help`` describes each. Errors are printed as one line (no traceback
unless ``--debug``) and the exit code tells what happened (see :data:`EXIT_CODES`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from ..errors import SnnsimError

#: Exit codes of the ``snnsim`` command.
EXIT_OK = 0
EXIT_CHECK_FAILED = 1  # verify: engine and integer reference differ (or --min-agreement not met)
EXIT_USAGE = 2  # bad command-line arguments (argparse)
EXIT_BAD_INPUT = 3  # an invalid model file, input data or argument value
EXIT_NOT_FOUND = 4  # a file or directory that does not exist or cannot be read
EXIT_MISSING_DEPENDENCY = 5  # an optional package (or the native engine) is not installed
EXIT_INTERRUPTED = 130  # Ctrl-C

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_CHECK_FAILED: "a check failed (verify: engine != integer reference; bench/verify limits)",
    EXIT_USAGE: "bad command-line usage",
    EXIT_BAD_INPUT: "invalid model file, data or argument value",
    EXIT_NOT_FOUND: "file or directory not found or unreadable",
    EXIT_MISSING_DEPENDENCY: "a required package or the native engine is missing",
    EXIT_INTERRUPTED: "interrupted",
}

_EPILOG = (
    "exit codes: " + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items()) + ". "
    "Add --debug to see the traceback of an error. Documentation: docs/cli.md."
)


def _parser() -> argparse.ArgumentParser:
    from . import commands, demo

    p = argparse.ArgumentParser(
        prog="snnsim",
        description=(
            "Train spiking networks (DSR, Dspike) in torch, export them to a model file and run "
            "them in snnsim's event-driven engine with exact counts and energy."
        ),
        epilog=_EPILOG,
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    p.add_argument("--version", action="version", version=f"snnsim {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    demo.add_parser(sub)
    commands.add_parsers(sub)
    return p


def _version() -> str:
    from .. import __version__

    return __version__


def _error(msg: str) -> None:
    print(f"snnsim: error: {msg}", file=sys.stderr)


def _handled(exc: BaseException) -> int | None:
    """The exit code for an expected error (its message printed), None for a bug."""
    if isinstance(exc, KeyboardInterrupt):
        _error("interrupted")
        return EXIT_INTERRUPTED
    if isinstance(exc, OSError):  # not found, unreadable, a directory where a file belongs
        _error(str(exc))
        return EXIT_NOT_FOUND
    if isinstance(exc, ImportError):
        _error(f"{exc} (install the missing package, e.g. pip install 'snnsim[data,plot]')")
        return EXIT_MISSING_DEPENDENCY
    if isinstance(exc, (SnnsimError, ValueError, TypeError, KeyError)):
        text = str(exc) if not isinstance(exc, KeyError) else f"missing key {exc}"
        _error(text.splitlines()[0] if text else type(exc).__name__)
        return EXIT_BAD_INPUT
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the ``snnsim`` command with ``argv`` (default ``sys.argv[1:]``); return the exit
    code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list  # accepted before or after the command
    args_list = [a for a in args_list if a != "--debug"]
    parser = _parser()
    if args_list[:1] == ["train"]:  # everything after it belongs to python -m snnsim.train
        args = argparse.Namespace(command="train", args=args_list[1:], debug=debug)
        from .commands import cmd_train

        args.func = cmd_train
    else:
        args = parser.parse_args(args_list)
        args.debug = debug
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    fn: Callable[[argparse.Namespace], int] = args.func
    try:
        return int(fn(args) or 0)
    except BaseException as exc:  # every error becomes one line and an exit code
        if isinstance(exc, SystemExit):
            raise
        if args.debug:
            raise
        code = _handled(exc)
        if code is None:
            _error(f"{type(exc).__name__}: {exc} (a bug? rerun with --debug and report it)")
            return EXIT_BAD_INPUT
        return code
