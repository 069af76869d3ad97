"""Whether W&B runs go online: ``logger.wandb.mode: auto | online | offline``.

``auto`` goes online when the user has credentials (``WANDB_API_KEY``, or a ``wandb login`` entry
for the server in ``~/.netrc`` / ``$NETRC``) and the server answers a connection within 2 seconds;
otherwise offline, with one line saying why and how to upload later. ``WANDB_MODE`` set by the user
wins over ``auto``. The same decision serves every entry point (train.py, untrained.py).
"""

from __future__ import annotations

import netrc
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

DEFAULT_SERVER = "https://api.wandb.ai"


def decide(mode: str | None = "auto", timeout: float = 2.0) -> tuple[bool, str]:
    """``(offline, reason)``."""
    mode = (mode or "auto").lower()
    if mode not in ("auto", "online", "offline"):
        from bridgeeval.errors import BridgeEvalError

        raise BridgeEvalError(f"logger.wandb.mode={mode!r}: choose auto, online or offline")
    if mode != "auto":
        return mode == "offline", f"logger.wandb.mode={mode}"
    env_mode = os.environ.get("WANDB_MODE", "").lower()
    if env_mode in ("offline", "dryrun", "disabled"):
        return True, f"WANDB_MODE={env_mode}"
    if env_mode == "online":
        return False, "WANDB_MODE=online"
    server = os.environ.get("WANDB_BASE_URL", DEFAULT_SERVER)
    host = urlparse(server).hostname or "api.wandb.ai"
    if not (os.environ.get("WANDB_API_KEY") or _netrc_has(host)):
        return True, f"no W&B credentials for {host} (run `wandb login` or set WANDB_API_KEY)"
    if not _reachable(server, timeout):
        return True, f"W&B credentials found, but {server} does not answer"
    return False, f"W&B credentials for {host} and the server answers"


def _netrc_has(host: str) -> bool:
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    try:
        entry = netrc.netrc(str(path)).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(entry and entry[2])


def _reachable(server: str, timeout: float) -> bool:
    parsed = urlparse(server)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False
