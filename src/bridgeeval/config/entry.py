"""What an entry point (``train.py``, ``untrained.py``) sets up before Hydra composes: the
resolvers, and Hydra's own errors as one line with exit code 2.

Hydra reports a bad override or composition (``mäpper=nn``, an override of a group removed with
``~trainer``, a 5,000-digit number) in 3-6 lines ending on "Set the environment variable
HYDRA_FULL_ERROR=1", exit code 1. These are the user's input errors, so they are reported as every
other one is: ``bridgeeval: error: ...`` on one line, exit 2. Errors raised by a job itself keep
Hydra's report; ``HYDRA_FULL_ERROR=1`` still gives the whole trace.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from bridgeeval.config.resolvers import register_resolvers


def prepare_entry_point() -> None:
    register_resolvers()
    _one_line_hydra_errors()


def _one_line_hydra_errors() -> None:
    import hydra._internal.utils as hydra_utils

    original = hydra_utils.run_and_report
    if getattr(original, "bridgeeval", False):
        return

    def run_and_report(func: Any) -> Any:
        try:
            return func()
        except Exception as ex:  # noqa: BLE001 - sorted below: the user's input, or Hydra's own report
            if os.environ.get("HYDRA_FULL_ERROR") == "1" or not _is_input_error(ex):
                return original(lambda: _reraise(ex))
            print(f"bridgeeval: error: {one_line(ex)}", file=sys.stderr)
            raise SystemExit(2) from None

    run_and_report.bridgeeval = True
    hydra_utils.run_and_report = run_and_report  # Hydra's _run_hydra calls it by this module name


def _reraise(ex: Exception):
    raise ex


def _is_input_error(ex: Exception) -> bool:
    """A composition or override error (Hydra's compact exceptions), or a value the override
    parser could not convert (it raises plain ValueError from its visitor)."""
    from hydra.errors import CompactHydraException

    if isinstance(ex, CompactHydraException):
        return True
    tb = ex.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__", "").startswith("hydra.core.override_parser"):
            return isinstance(ex, ValueError)
        tb = tb.tb_next
    return False


def one_line(ex: BaseException) -> str:
    """The exception's message and its cause's, on one line (Hydra's span several; a quoted
    override of 5,000 characters is cut)."""
    from hydra.errors import MissingConfigException, OverrideParseException

    if isinstance(ex, OverrideParseException):
        detail = [line for line in _lines(ex.message) if not line.startswith("Error parsing override")]
        text = f"cannot read the override {ex.override!r}: {detail[0] if detail else 'not the override grammar'}"
    elif isinstance(ex, MissingConfigException) and ex.options:
        group = (ex.missing_cfg_file or "").rsplit("/", 1)
        where = f"{group[0]}={group[1]}" if len(group) == 2 else repr(ex.missing_cfg_file)
        text = f"{where}: no such config; choose one of {', '.join(ex.options)}"
    else:
        lines = _lines(str(ex))
        if ex.__cause__ is not None:
            lines += [line for line in _lines(str(ex.__cause__))[:1] if line not in lines]
        text = " ".join(line if line.endswith((".", ":")) else line + ";" for line in lines).rstrip(";")
    return text if len(text) <= 400 else text[:400] + "..."


def _lines(text: str) -> list[str]:
    skip = ("See https://hydra.cc", "full_key:", "object_type=", "Config search path", "provider=")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith(skip)] or [""]
