"""How a task entry point (``train.py``, ``untrained.py``) ends when its job fails.

The job folder keeps the reason: ``error.json`` (and a line in the job's log file), never a
``metrics.json``. A user error is one line on stderr and exit 2 when the job runs in the
foreground; under a sweeper or a remote launcher it is raised, so the sweeper records it.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from bridgeeval.errors import BridgeEvalError
from bridgeeval.files import write_json_atomic

log = logging.getLogger("bridgeeval")

_IN_PROCESS = ("hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
               "hydra._internal.core_plugins.basic_launcher.BasicLauncher")


def run_task(task: Callable[[Any], Any], cfg, passthrough: tuple[type[Exception], ...] = ()) -> Any:
    """``task(cfg)``; exceptions in ``passthrough`` (not failures, e.g. a skipped job) go up as they are."""
    try:
        return task(cfg)
    except passthrough:
        raise
    except BridgeEvalError as err:
        record_failure(err)
        if raise_to_sweeper():
            raise
        print(f"bridgeeval: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as err:
        record_failure(err)
        raise


def record_failure(err: BaseException) -> None:
    """``error.json`` in the job folder, and the message in the job's log file (not the terminal)."""
    folder = _job_folder()
    if folder is None or not folder.is_dir():
        return
    message = str(err) or type(err).__name__
    try:
        write_json_atomic(
            folder / "error.json",
            {
                "status": "failed",
                "error": message,
                "type": type(err).__name__,
                "user_error": isinstance(err, BridgeEvalError),
                "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            },
        )
    except OSError:
        pass  # the folder went away or the disk is full: the terminal still gets the message
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "job failed: %s", (message,), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def _job_folder() -> Path | None:
    if not HydraConfig.initialized():
        return None
    return Path(HydraConfig.get().runtime.output_dir)


def raise_to_sweeper() -> bool:
    """A multirun whose jobs are not plain in-process calls records failures itself."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return False
    plugins = (hydra_cfg.sweeper.get("_target_"), hydra_cfg.launcher.get("_target_"))
    return plugins != _IN_PROCESS
