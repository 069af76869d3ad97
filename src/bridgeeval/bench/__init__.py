"""``bridgeeval bench``: exact kNN of one set, ours against scikit-learn and faiss, same data and process.

Prints seconds, peak extra memory, the ratios ours/faiss and ours/scikit-learn, and our time over
the matmul floor (2 N^2 d FLOPs at this machine's measured peak GEMM rate).
"""

from __future__ import annotations

import gc
import os
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch

from bridgeeval.metrics.neighbours import knn_indices

DEFAULT_SIZES = ((500, 300), (500, 2048), (2000, 300), (2000, 2048), (10000, 300), (10000, 2048), (50000, 300),
                 (50000, 2048))
_MIN_TIMED = 0.5  # seconds: short cases are repeated until then and the median taken


@dataclass
class Timing:
    seconds: float
    peak_extra_bytes: int
    agree: float | None = None


def malloc_trim():
    """glibc's ``malloc_trim``, or None where the C library has none (not glibc)."""
    import ctypes

    try:
        return getattr(ctypes.CDLL("libc.so.6"), "malloc_trim", None)
    except OSError:
        return None


def release_free_memory() -> None:
    """Collects garbage and hands the C heap's free pages back to the kernel (glibc ``malloc_trim``),
    so that a peak measured from here counts every page a call touches. Without it the memory that
    earlier calls freed stays resident (glibc raises its mmap threshold up to 32 MiB after freeing
    large blocks, and keeps freed heap pages): a later call reusing it showed 0.00 GiB extra."""
    gc.collect()
    trim = malloc_trim()
    if trim is not None:  # elsewhere the peak may undercount reused memory
        trim(0)


class PeakRSS:
    """Samples this process's resident memory in a thread; peak above the level at start."""

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self):
        release_free_memory()
        self.base = self.rss()
        self.peak = self.base
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def extra(self) -> int:
        return self.peak - self.base


def _timed(fn) -> tuple[float, int, object]:
    """Seconds (the median of repeats where one call is short: a call of a few milliseconds varies
    by its own length between calls), peak extra memory of the first call, and its result."""
    with PeakRSS() as mem:
        start = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - start
    times, spent = [seconds], seconds
    while spent < _MIN_TIMED and len(times) < 200:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return float(np.median(times)), mem.extra, out


def ours(x: np.ndarray, k: int, metric: str, device: str) -> np.ndarray:
    t = torch.from_numpy(x).to(device)
    out = knn_indices(t, k, metric)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return out.cpu().numpy()


_WARM_ROWS = 6144  # three 2,048-row blocks: at least six products above the GEMM choice's threshold


def warm_up(x: np.ndarray, k: int, metric: str, device: str) -> None:
    """A process's one-off costs out of the timings, by searches of the case's own data: numba's
    import and the cached kernels' load (about 0.6 s; a search of more than one block uses them, so
    256 rows in blocks of 64), and the GEMM kernel choice (``metrics.gemm`` times the first six
    large products; up to 6,144 rows of the case, which make them at d = 300 and 2,048)."""
    small = torch.from_numpy(x[: min(len(x), 256)]).to(device)
    if len(small) > 64 and k < len(small):  # more than one block of 64, as the timed searches are
        knn_indices(small, k, metric, block_size=64)
    part = x[: min(len(x), _WARM_ROWS)]
    if k < len(part):
        knn_indices(torch.from_numpy(part).to(device), k, metric)


def sklearn_knn(x: np.ndarray, k: int, metric: str) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    # The released code's method: fit on the set, query the set (self comes back; dropped here).
    nn = NearestNeighbors(n_neighbors=k + 1, metric=metric, algorithm="brute").fit(x)
    return nn.kneighbors(x, return_distance=False)


def faiss_knn(x: np.ndarray, k: int, metric: str) -> np.ndarray:
    import faiss

    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        index = faiss.IndexFlatIP(x.shape[1])
    else:
        index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    _, idx = index.search(x, k + 1)
    return idx


def torch_topk_knn(x: np.ndarray, k: int, metric: str, device: str, block: int = 4096) -> np.ndarray:
    """What a user writes first: float32 products of row blocks and ``topk`` (not exact)."""
    t = torch.from_numpy(x).to(device)
    sq = t.pow(2).sum(1)
    if metric == "cosine":
        t = torch.nn.functional.normalize(t, dim=1)

    def score(q: torch.Tensor) -> torch.Tensor:
        return q @ t.T if metric == "cosine" else 2.0 * (q @ t.T) - sq

    out = torch.cat([torch.topk(score(t[s : s + block]), k + 1, dim=1).indices for s in range(0, len(t), block)])
    if t.is_cuda:
        torch.cuda.synchronize()
    return out.cpu().numpy()


def drop_self(idx: np.ndarray) -> np.ndarray:
    """Lists of k+1 that include each query; its own entry removed (or the last, if absent)."""
    n = len(idx)
    own = idx == np.arange(n)[:, None]
    own[~own.any(axis=1), -1] = True
    return idx[~own].reshape(n, -1)


def gemm_peak_flops(device: str) -> float:
    """Peak float32 GEMM rate of this machine (numpy on CPU, torch on GPU), FLOP/s."""
    size = 4096
    a = np.random.default_rng(0).standard_normal((size, 2048), dtype=np.float32)
    if device.startswith("cuda"):
        t = torch.from_numpy(a).to(device)
        (t @ t.T).sum().item()
        start = time.perf_counter()
        for _ in range(5):
            (t @ t.T)
        torch.cuda.synchronize()
        seconds = (time.perf_counter() - start) / 5
    else:
        a @ a.T
        start = time.perf_counter()
        a @ a.T
        seconds = time.perf_counter() - start
    return 2.0 * size * size * 2048 / seconds


def run_case(n: int, d: int, k: int, metric: str, methods: list[str], device: str, flops: float) -> dict:
    x = np.random.default_rng(n + d).standard_normal((n, d), dtype=np.float32)
    row: dict = {"n": n, "d": d}
    warm = x[: min(n, 1500)]  # every method warms up (thread pools, kernels) on a slice first
    ours(warm, k, metric, device)
    warm_up(x, k, metric, device)
    sec, mem, ref = _timed(lambda: ours(x, k, metric, device))
    row["ours_s"], row["ours_mem_gib"] = sec, mem / 2**30
    row["floor_s"] = 2.0 * n * n * d / flops
    row["ours_over_floor"] = sec / row["floor_s"]
    baselines = {
        "faiss": faiss_knn,
        "sklearn": sklearn_knn,
        "torch": lambda x, k, metric: torch_topk_knn(x, k, metric, device),
    }
    for name, fn in baselines.items():
        if name not in methods:
            continue
        fn(warm, k, metric)
        sec, mem, idx = _timed(lambda fn=fn: fn(x, k, metric))
        row[f"{name}_s"], row[f"{name}_mem_gib"] = sec, mem / 2**30
        row[f"ours_over_{name}"] = row["ours_s"] / sec
        # Sets agree up to float32 boundary flips in the other method (ours is exact).
        other = drop_self(idx)
        row[f"{name}_set_agreement"] = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ref, other)]))
    return row
