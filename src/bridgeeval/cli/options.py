"""Typed command-line options: argparse refuses a bad value with one line naming the option."""

from __future__ import annotations

import argparse
import math


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return value


def probability(text: str) -> float:
    """A significance level: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and 0 < value < 1):
        raise argparse.ArgumentTypeError(f"{text} must be between 0 and 1 (exclusive)")
    return value


def torch_device(text: str) -> str:
    """The name of a torch device that exists here and holds values (``cpu``, ``cuda``, ``cuda:1``)."""
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if device.type == "meta":
        raise argparse.ArgumentTypeError("meta tensors hold no values; use cpu or a GPU")
    try:
        torch.zeros(1, device=device)
    except (RuntimeError, AssertionError, AttributeError) as err:  # no such device on this machine
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise argparse.ArgumentTypeError(f"{text} is not available here ({reason})") from None
    return text


def check_writable_target(path, option: str) -> None:
    """Fails now, with one line, when ``path`` (a file or folder to write later) cannot be written:
    before any work is done and before any other output is written."""
    from pathlib import Path

    from bridgeeval.errors import BridgeEvalError
    from bridgeeval.files import writable_folder_error

    target = Path(path)
    folder = target if option.endswith(("figures", "dir")) else target.parent
    if target.is_dir() and folder is not target:
        raise BridgeEvalError(f"{option} {target}: is a folder; give a file path")
    err = writable_folder_error(folder, keep=False)  # a refused call leaves no empty folder
    if err is not None:
        raise BridgeEvalError(f"{option} {target}: cannot write there ({err.strerror or err})")


def add_id_column_options(parser, files: str = "CSV/text/parquet files") -> None:
    """``--id-column`` / ``--no-id-column``: override the README's id-column rule for every reader."""
    ids = parser.add_mutually_exclusive_group()
    ids.add_argument(
        "--id-column", dest="id_column", action="store_true", default=None,
        help=f"the first column of {files} holds row ids or names (default: the README's rule)",
    )
    ids.add_argument("--no-id-column", dest="id_column", action="store_false", help="every column is a feature")


# The files a job folder's readers rely on: never a command's output.
RECORD_NAMES = ("metrics.json", "items.npz", "history.csv", "error.json", "untrained.json")


def check_not_an_input(out, option: str, inputs=()) -> None:
    """One line where ``out`` would replace one of the command's own inputs, or a job's record
    (``report RUN --out RUN/metrics.json`` would destroy what it reports)."""
    from pathlib import Path

    from bridgeeval.errors import BridgeEvalError

    target = Path(out).resolve()
    for given in inputs:
        if given is not None and Path(given).resolve() == target:
            raise BridgeEvalError(f"{option} {out}: is an input of this command; write elsewhere")
    if target.name in RECORD_NAMES or ".hydra" in target.parts:
        raise BridgeEvalError(f"{option} {out}: a job's record has that name; write elsewhere")
