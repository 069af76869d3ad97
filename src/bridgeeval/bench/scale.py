"""``bridgeeval bench --scale``: the exact search of one large set by 1, 2, ... processes.

Each process count runs in fresh processes (torch.multiprocessing, gloo) that memory-map the same
seeded float32 ``.npy``, warm up on a slice alone, meet at a barrier and then search together
(metrics.sharding; one process takes the single-process symmetric search). The cores are divided
among the processes. Per case: the wall time (the slowest rank), each rank's time, the speed-up
over one process, each rank's peak extra resident memory, and whether the lists equal one
process's (they must: the search is exact).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
import time
from pathlib import Path

import numpy as np


def run_scale(n: int, d: int, k: int, metric: str, processes: list[int]) -> list[dict]:
    import torch.multiprocessing as mp

    rows, first = [], None
    with tempfile.TemporaryDirectory(prefix="bridgeeval-scale-") as tmp:
        data = Path(tmp) / "x.npy"
        _write_set(data, n, d)
        for p in processes:
            out = Path(tmp) / f"p{p}"
            mp.spawn(_rank, args=(p, _free_port(), str(data), k, metric, str(out)), nprocs=p, join=True)
            ranks = [json.loads((out.with_suffix(f".{r}")).read_text()) for r in range(p)]
            wall = max(r["seconds"] for r in ranks)
            first = first or wall
            rows.append({"n": n, "d": d, "processes": p, "wall_s": wall, "rank_s": [r["seconds"] for r in ranks],
                         "speedup": first / wall, "peak_extra_gib": max(r["peak_extra"] for r in ranks) / 2**30,
                         "digest": ranks[0]["digest"]})
    for row in rows:  # every rank holds the gathered lists: rank 0's stand for them
        row["equal_to_first"] = row["digest"] == rows[0]["digest"]
    return rows


def _write_set(path: Path, n: int, d: int, chunk: int = 1 << 16) -> None:
    """A seeded standard-normal float32 set, written by chunks (never whole in memory)."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    rng = np.random.default_rng(n + d)
    for start in range(0, n, chunk):
        out[start : start + chunk] = rng.standard_normal((min(chunk, n - start), d), dtype=np.float32)
    out.flush()
    del out


def _rank(rank: int, world: int, port: int, data: str, k: int, metric: str, out: str) -> None:
    import torch
    import torch.distributed as dist

    from bridgeeval.bench import PeakRSS, warm_up
    from bridgeeval.metrics.neighbours import knn_indices
    from bridgeeval.metrics.sharding import sharded_search

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    x = np.load(data, mmap_mode="c")
    warm_up(np.ascontiguousarray(x[:6144]), k, metric, "cpu")  # alone: numba's load, the GEMM choice
    dist.barrier()
    with PeakRSS() as mem, sharded_search():
        start = time.perf_counter()
        lists = knn_indices(torch.from_numpy(x), k, metric)
        seconds = time.perf_counter() - start
    digest = hashlib.sha256(lists.numpy().tobytes()).hexdigest()
    Path(f"{out}.{rank}").write_text(json.dumps({"seconds": seconds, "peak_extra": mem.extra, "digest": digest}))
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def table(rows: list[dict]) -> list[str]:
    head = ["N x d", "processes", "wall (s)", "per rank (s)", "speed-up", "peak extra per rank (GiB)", "lists equal the first row's"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append(f"| {r['n']:,} x {r['d']:,} | {r['processes']} | {r['wall_s']:.3g} | "
                     f"{', '.join(f'{s:.3g}' for s in r['rank_s'])} | {r['speedup']:.2f} | "
                     f"{r['peak_extra_gib']:.2f} | {'yes' if r['equal_to_first'] else 'NO'} |")
    return lines
