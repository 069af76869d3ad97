"""A terminal progress bar that shows itself only for work that lasts: quick commands print nothing
extra, long ones (a search of 10^5 rows, a permutation null) get a bar with the time left."""

from __future__ import annotations

import time


class LazyBar:
    """A ``(what, done, total)`` hook (:mod:`bridgeeval.metrics.progress`) drawing one bar per
    ``what`` on stderr once that work has run ``after`` seconds; each ``what`` restarts when done."""

    def __init__(self, after: float = 2.0, enabled: bool = True):
        self.after, self.enabled = after, enabled
        self._progress = None
        self._tasks: dict[str, tuple[float, int | None]] = {}  # what -> (started, rich task id)

    def __call__(self, what: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        started, task = self._tasks.setdefault(what, (time.monotonic(), None))
        if task is None and done < total and time.monotonic() - started > self.after:
            bar = self._bar()
            if bar is None:  # stderr is a file (a Slurm log): no bar, and no stray line either
                self.enabled = False
                return
            task = bar.add_task(what, total=total)
            self._tasks[what] = (started, task)
        if task is not None:
            self._progress.update(task, completed=done)
        if done >= total:  # the next search of the same name starts its own clock
            if task is not None:
                self._progress.remove_task(task)
            del self._tasks[what]

    def _bar(self):
        if self._progress is None:
            from rich.console import Console
            from rich.progress import Progress, TimeRemainingColumn

            console = Console(stderr=True)
            if not console.is_terminal:
                return None
            self._progress = Progress(*Progress.get_default_columns()[:-1], TimeRemainingColumn(),
                                      console=console, transient=True)
            self._progress.start()
        return self._progress

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> LazyBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
