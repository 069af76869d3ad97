"""One prepared GPU check: exactness on CUDA, a Lightning training on the GPU, and the benchmark.

Run on a machine with a CUDA GPU from the repository root (torch, pytorch-lightning, torchmetrics,
numpy and scikit-learn must be importable; the rest of bridgeeval's dependencies are not needed):

    PYTHONPATH=src python benchmarks/gpu_check.py --out gpu_check.json

Every step prints one JSON line as it finishes, so a run cut short still reports what it did.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch

from bridgeeval.bench import gemm_peak_flops, run_case
from bridgeeval.metrics import knn_indices

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: a dry run of the script itself


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def emit(record: dict, sink: list) -> None:
    sink.append(record)
    print(json.dumps(record), flush=True)


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
    from bridgeeval.models.mappers import build_mapper
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
    module = MappingModule(build_mapper("nn", 300, 2048, hidden_units=256, depth=1), loss="mse", k=10)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="gpu_check.json")
    parser.add_argument("--sizes", default="10000x2048,50000x2048,200000x2048,1000000x300,1000000x2048")
    parser.add_argument("--skip", default="", help="steps to skip: exact,train,bench")
    args = parser.parse_args()
    sink: list = []
    steps = {"exact": exactness, "train": training}
    try:
        for name, step in steps.items():
            if name not in args.skip:
                step(sink)
        if "bench" not in args.skip:
            bench(sink, [tuple(int(v) for v in c.split("x")) for c in args.sizes.split(",")])
    finally:
        with open(args.out, "w") as handle:
            json.dump(sink, handle, indent=1)


if __name__ == "__main__":
    main()
