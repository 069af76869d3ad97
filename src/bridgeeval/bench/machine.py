"""What a benchmark ran on, and whether the machine was idle: ratios measured on a busy CPU drift
far from an idle one's, so ``bridgeeval bench`` says so instead of printing them as if idle."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

BUSY_CORES = 0.25  # other processes' use of the CPU above which a run is not an idle machine's


def other_load(seconds: float = 0.5) -> float | None:
    """Cores' worth of CPU time that other processes used over ``seconds`` while this one slept
    (from ``/proc/stat``); None where there is no ``/proc/stat``.

    Example:
        >>> load = other_load(0.05)
        >>> load is None or load >= 0.0
        True
    """
    stat = Path("/proc/stat")
    if not stat.is_file():
        return None
    own = time.process_time()
    busy0, wall0 = _busy_ticks(stat), time.monotonic()
    time.sleep(seconds)
    busy1, wall1 = _busy_ticks(stat), time.monotonic()
    used = (busy1 - busy0) / os.sysconf("SC_CLK_TCK") - (time.process_time() - own)
    return max(0.0, used / (wall1 - wall0))


def _busy_ticks(stat: Path) -> int:
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in stat.read_text().split()[1:9])
    return user + nice + system + irq + softirq + steal


def busy_warning(load: float | None) -> str | None:
    """One line for a run on a busy CPU, else None."""
    if load is None or load <= BUSY_CORES:
        return None
    return (f"bridgeeval: warning: the CPU is busy: other processes use {load:.1f} of {os.cpu_count()} cores; "
            "ratios measured now can be far from an idle machine's (docs/benchmarks.md)")


def describe() -> str:
    """The machine in one line: CPU model, cores, and the GPU where torch sees one."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")]
        model = names[0] if names else model
    text = f"{model}, {os.cpu_count()} cores"
    import torch

    if torch.cuda.is_available():
        text += f"; {torch.cuda.get_device_name(0)}"
    return text
