"""One prepared GPU check: the million-row search against plain fp32 GEMM + topk, exactness on
CUDA, a Lightning training on the GPU, the benchmark, and the CPU search shared by processes.

Run on a machine with a CUDA GPU from the repository root (torch, pytorch-lightning, torchmetrics,
numpy and scikit-learn must be importable; the rest of bridgeeval's dependencies are not needed):

    PYTHONPATH=src python benchmarks/gpu_check.py --out gpu_check.json

Every step prints one JSON line as it finishes and the file is rewritten after each, so a run cut
short still reports what it did.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np
import torch

from bridgeeval.bench import gemm_peak_flops, run_case
from bridgeeval.metrics import knn_indices

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: a dry run of the script itself


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


OUT_PATH = "gpu_check.json"


def emit(record: dict, sink: list) -> None:
    sink.append(record)
    print(json.dumps(record), flush=True)
    with open(OUT_PATH + ".tmp", "w") as handle:
        json.dump(sink, handle, indent=1)
    os.replace(OUT_PATH + ".tmp", OUT_PATH)


def million(sink: list, n: int, d: int, k: int = 10, sample: int = 512) -> None:
    """Our exact search of n x d (cosine) against what a user writes first, fp32 products of 4,096
    row blocks and ``topk`` (not exact), one after the other on the same data; our lists checked
    on ``sample`` rows (planted duplicates among them) against float64 distances from differences."""
    gen = torch.Generator(device=DEVICE).manual_seed(1)
    x = torch.randn(n, d, device=DEVICE, generator=gen)
    twins = [10, n // 2, n - 1]
    x[twins] = x[3].clone()  # exact ties: lower index first
    knn_indices(x[:20000], k, "cosine")  # warm-up: kernels, allocator
    sync()
    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    ours = knn_indices(x, k, "cosine")
    sync()
    ours_s = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if DEVICE == "cuda" else None
    plain_s, plain = plain_topk(x, k)
    rows = torch.cat([torch.tensor([3] + twins, device=DEVICE),
                      torch.randint(0, n, (sample - 4,), device=DEVICE, generator=gen)])
    ref = reference_rows(x, rows, k)
    flops = gemm_peak_flops(DEVICE)
    agree = float((plain[rows].unsqueeze(2) == ref.unsqueeze(1)).any(dim=1).float().mean())
    emit({"step": "million", "device": torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu",
          "torch": torch.__version__, "n": n, "d": d, "k": k, "ours_s": ours_s, "plain_fp32_topk_s": plain_s,
          "ours_over_plain": ours_s / plain_s, "full_gemm_floor_s": 2.0 * n * n * d / flops,
          "gemm_tflops": flops / 1e12, "ours_gpu_peak_gib": peak, "sample_rows": len(rows),
          "ours_equal_reference": bool(torch.equal(ours[rows], ref)),
          "ours_rows_differing": int((ours[rows] != ref).any(dim=1).sum()),
          "plain_set_agreement": agree}, sink)


def plain_topk(x: torch.Tensor, k: int, block: int = 4096) -> tuple[float, torch.Tensor]:
    unit = torch.nn.functional.normalize(x, dim=1)
    sync()
    start = time.perf_counter()
    out = torch.empty(len(x), k, dtype=torch.long, device=x.device)
    for s in range(0, len(x), block):
        scores = unit[s : s + block] @ unit.T
        scores[torch.arange(len(scores), device=x.device), torch.arange(s, s + len(scores), device=x.device)] = -2.0
        out[s : s + block] = torch.topk(scores, k, dim=1).indices
    sync()
    return time.perf_counter() - start, out


def reference_rows(x: torch.Tensor, rows: torch.Tensor, k: int, pool: int = 64) -> torch.Tensor:
    """Exact cosine lists of ``rows``: float64 products pick ``pool`` candidates, then float64
    distances from differences of unit vectors, sorted by (distance, index)."""
    unit = x.double()
    unit /= unit.norm(dim=1, keepdim=True)
    out = []
    for part in rows.split(128):
        dist = 1.0 - unit[part] @ unit.T
        dist[torch.arange(len(part), device=x.device), part] = math.inf
        cand = torch.topk(dist, pool, dim=1, largest=False).indices
        exact = 0.5 * (unit[part].unsqueeze(1) - unit[cand]).pow(2).sum(-1)
        cand, pos = torch.sort(cand, dim=1)
        exact = exact.gather(1, pos)
        order = torch.sort(exact, dim=1, stable=True).indices
        out.append(cand.gather(1, order)[:, :k])
    return torch.cat(out)


def brute_knn_gpu(x: torch.Tensor, k: int, metric: str, include_self: bool, rows_per_block: int) -> torch.Tensor:
    """float64 distances from explicit differences, sorted by (distance, index): the reference."""
    x = x.double()
    if metric == "cosine":
        x = x / x.norm(dim=1, keepdim=True)
    out = []
    for s in range(0, len(x), rows_per_block):
        q = x[s : s + rows_per_block]
        dist = (q.unsqueeze(1) - x.unsqueeze(0)).pow_(2).sum(-1)
        own = torch.arange(s, s + len(q), device=x.device)
        dist[torch.arange(len(q)), own] = 0.0 if include_self else math.inf
        out.append(torch.sort(dist, dim=1, stable=True).indices[:, :k])  # stable: lower index first
    return torch.cat(out)


def exactness(sink: list) -> None:
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    cases = [(3000, 128, 64), (10000, 2048, 4)] if DEVICE == "cuda" else [(1500, 32, 100)]
    for precision in ("highest", "high"):  # "high" lets cuBLAS round operands to TF32
        torch.set_float32_matmul_precision(precision)
        for n, d, rows_per_block in cases:
            x = torch.randn(n, d, device=DEVICE, generator=gen)
            x[[10, 500, 999]] = x[3].clone()  # duplicates: ties by index
            for metric in ("cosine", "euclidean"):
                for include_self in (False, True):
                    start = time.perf_counter()
                    got = knn_indices(x, 10, metric, include_self)
                    sync()
                    seconds = time.perf_counter() - start
                    ref = brute_knn_gpu(x, 10, metric, include_self, rows_per_block)
                    emit(
                        {
                            "step": "exact",
                            "precision": precision,
                            "n": n,
                            "d": d,
                            "metric": metric,
                            "include_self": include_self,
                            "equal": bool(torch.equal(got, ref)),
                            "rows_differing": int((got != ref).any(dim=1).sum()),
                            "seconds": seconds,
                        },
                        sink,
                    )
        ints = torch.randint(0, 3, (2000, 3), device=DEVICE, generator=gen).float()  # exact ties
        got = knn_indices(ints, 10, "euclidean")
        emit(
            {
                "step": "exact_ties",
                "precision": precision,
                "equal": bool(torch.equal(got, brute_knn_gpu(ints, 10, "euclidean", False, 500))),
            },
            sink,
        )
    torch.set_float32_matmul_precision("highest")


def training(sink: list) -> None:
    import pytorch_lightning as pl

    from bridgeeval.data.datamodule import CrossModalDataModule
    from bridgeeval.data.paired import Modalities, orient
    from bridgeeval.data.splits import kfold
    from bridgeeval.models.losses import MSELoss
    from bridgeeval.models.mappers import MLP
    from bridgeeval.models.module import MappingModule
    from bridgeeval.training.callbacks import EpochHistory

    rng = np.random.default_rng(0)
    x = rng.standard_normal((6000, 300)).astype(np.float32)
    y = np.tanh(x @ rng.standard_normal((300, 2048)).astype(np.float32) / 17) + 0.1 * rng.standard_normal(
        (6000, 2048)
    ).astype(np.float32)
    data = orient(Modalities("synthetic", x, y.astype(np.float32), [str(i) for i in range(len(x))]), "text2image")
    split = kfold(len(data), 5, seed=0)[0]

    class Where(pl.Callback):
        def on_validation_epoch_end(self, trainer, module):
            self.device = str(module.device)

    where, history = Where(), EpochHistory(split.name)
    mapper = MLP(300, 2048, depth=1, hidden_units=256, activation="relu", dropout=0.25)  # conf/mapper/nn.yaml
    module = MappingModule(mapper, MSELoss(), k=10, neighbour_metrics=["cosine"], include_self=False,
                           optimizer=lambda params: torch.optim.Adam(params, lr=1e-3))
    trainer = pl.Trainer(
        accelerator="gpu" if DEVICE == "cuda" else "cpu",
        devices=1,
        max_epochs=5,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        callbacks=[where, history],
        num_sanity_val_steps=0,
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=CrossModalDataModule(data, split, batch_size=64, seed=0))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    fractions = [r.get("time/metrics_fraction") for r in history.rows if r.get("time/metrics_fraction") is not None]
    emit(
        {
            "step": "train_gpu",
            "module_device": where.device,
            "seconds": time.perf_counter() - start,
            "val/mnno_input_mapped": metrics.get("val/mnno_input_mapped"),
            "val/mnno_target_mapped": metrics.get("val/mnno_target_mapped"),
            "val/mnno_input_target": metrics.get("val/mnno_input_target"),
            "val/loss": metrics.get("val/loss"),
            "metrics_fraction_median": float(np.median(fractions)) if fractions else None,
        },
        sink,
    )


def bench(sink: list, sizes: list[tuple[int, int]]) -> None:
    flops = gemm_peak_flops(DEVICE)
    name = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu"
    emit({"step": "gemm_peak", "gflops": flops / 1e9, "device": name}, sink)
    for n, d in sizes:
        methods = ["torch"] + (["sklearn"] if n <= 10000 else [])
        row = run_case(n, d, 10, "cosine", methods if n <= 200000 else [], DEVICE, flops)
        if DEVICE == "cuda":
            row["gpu_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
            torch.cuda.reset_peak_memory_stats()
        emit({"step": "bench", **row}, sink)


def scale(sink: list, n: int, d: int, processes: list[int]) -> None:
    """The CPU search of n x d shared by 1, 2, ... gloo processes on this machine's cores."""
    from bridgeeval.bench.scale import run_scale

    for row in run_scale(n, d, 10, "cosine", processes):
        emit({"step": "scale", "cpus": os.cpu_count(), **row}, sink)


def size(text: str) -> tuple[int, int]:
    n, d = text.split("x")
    return int(n), int(d)


def main() -> None:
    global OUT_PATH
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=OUT_PATH)
    parser.add_argument("--million", default="1000000x1024", type=size, help="N x d of the million-row step")
    parser.add_argument("--sizes", default="10000x2048,50000x2048,200000x2048")
    parser.add_argument("--scale", default="200000x64", type=size, help="N x d of the CPU processes step")
    parser.add_argument("--processes", default="1,2,4,8")
    parser.add_argument("--skip", default="", help="steps to skip: million,exact,train,bench,scale")
    args = parser.parse_args()
    OUT_PATH = args.out
    sink: list = []
    steps = {
        "million": lambda: million(sink, *args.million),
        "exact": lambda: exactness(sink),
        "train": lambda: training(sink),
        "bench": lambda: bench(sink, [size(c) for c in args.sizes.split(",")]),
        "scale": lambda: scale(sink, *args.scale, [int(p) for p in args.processes.split(",")]),
    }
    for name, step in steps.items():
        if name not in args.skip.split(","):
            step()


if __name__ == "__main__":
    main()
