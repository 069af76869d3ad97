"""Progress of long computations, reported to whoever listens (a terminal's bar) and to no one
otherwise: the metrics call :func:`step`; a command wraps them in :func:`reporting`."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

Hook = Callable[[str, int, int], None]  # (what, done, total)
_HOOK: contextvars.ContextVar[Hook | None] = contextvars.ContextVar("bridgeeval_progress", default=None)


def step(what: str, done: int, total: int) -> None:
    """``done`` of ``total`` units of ``what`` are finished (a no-op unless someone listens)."""
    hook = _HOOK.get()
    if hook is not None:
        hook(what, done, total)


@contextlib.contextmanager
def reporting(hook: Hook | None) -> Iterator[None]:
    """Within the block, :func:`step` calls reach ``hook``."""
    token = _HOOK.set(hook)
    try:
        yield
    finally:
        _HOOK.reset(token)
