"""The ``bridgeeval`` command: thin over library calls; bad input is one line and a non-zero exit.

One module per command group (score, bench, data, sweep, report/plot), each with ``add_parser``.
"""

from __future__ import annotations

import argparse
import sys

from bridgeeval.cli import apply, bench, data, report, reproduce, score, sweep
from bridgeeval.errors import BridgeEvalError
from bridgeeval.launch import launched_rank


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _notes_to_stderr()
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        code = args.handler(args) or 0
        sys.stdout.flush()  # here, where a closed pipe is caught, not at the interpreter's exit
        return code
    except BridgeEvalError as err:
        print(f"bridgeeval: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `bridgeeval ... | head`: the reader has what it wanted
        _quiet_closed_stdout()
        return 0
    except OSError as err:  # a full disk, a vanished folder, a permission: one line, never a traceback
        where = f"{err.filename}: " if err.filename else ""
        print(f"bridgeeval: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bridgeeval: interrupted", file=sys.stderr)
        return 130


def _quiet_closed_stdout() -> None:
    """Point stdout at /dev/null: Python's exit-time flush of a closed pipe would print
    'Exception ignored ... BrokenPipeError' otherwise."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _notes_to_stderr() -> None:
    """The library's warnings (e.g. a reader's id-column rule) as ``bridgeeval: ...`` lines."""
    import logging

    logger = logging.getLogger("bridgeeval")
    logger.handlers = [h for h in logger.handlers if not getattr(h, "bridgeeval_cli", False)]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("bridgeeval: %(message)s"))
    handler.setLevel(logging.WARNING)
    handler.bridgeeval_cli = True
    logger.addHandler(handler)


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line (argparse prints the whole usage block first)."""

    def error(self, message: str):
        if launched_rank() > 0:  # every process torchrun or srun started parsed the same words
            self.exit(2)
        self.exit(2, f"{self.prog}: error: {message} (--help for usage)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="bridgeeval",
        description="Do cross-modal mappings bridge modalities? Exact mNNO scores, data sets, sweeps and reports.",
    )
    from bridgeeval import __version__

    parser.add_argument("--version", action="version", version=f"bridgeeval {__version__}")
    sub = parser.add_subparsers(title="commands")
    for command in (score, apply, bench, data, sweep, report, reproduce):
        command.add_parser(sub)
    return parser
