"""The validation metric under torch.distributed: two CPU processes (gloo) give the single-process
report exactly, on even and odd validation sets (a distributed sampler pads odd ones with repeats)."""

from __future__ import annotations

import json
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from bridgeeval.metrics import cross_modal_report, knn_indices
from bridgeeval.metrics.torchmetric import MeanNearestNeighborOverlap, first_of_each


def _sets(n: int):
    g = torch.Generator().manual_seed(n)
    x, y = torch.randn(n, 12, generator=g), torch.randn(n, 6, generator=g)
    return x, y, x[:, :6] * 0.7 + 0.3 * torch.randn(n, 6, generator=g)


def _rank(rank: int, port: int, n: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    x, y, f = _sets(n)
    metric = MeanNearestNeighborOverlap(k=10, metric="cosine")
    metric.cache_reference(knn_indices(x, 10, "cosine"), knn_indices(y, 10, "cosine"), y)  # as the hook does
    data = TensorDataset(x, y, f, torch.arange(n))
    sampler = DistributedSampler(data, num_replicas=2, rank=rank, shuffle=True, seed=3)  # pads odd sets
    for bx, by, bf, index in DataLoader(data, batch_size=32, sampler=sampler):
        metric.update(bx, by, bf, index)
    report = metric.compute()
    if rank == 0:
        with open(out, "w") as handle:
            json.dump(report, handle)
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("n", [320, 319])
def test_two_processes_give_the_single_process_report(tmp_path, n):
    out = tmp_path / "report.json"
    mp.spawn(_rank, args=(_free_port(), n, str(out)), nprocs=2, join=True)
    x, y, f = _sets(n)
    single = cross_modal_report(x, y, f, k=10, metric="cosine")
    gathered = json.loads(out.read_text())
    assert gathered.keys() == single.keys()
    for key, value in single.items():
        assert gathered[key] == pytest.approx(value, abs=1e-6), key


def test_padded_repeats_count_once_and_order_is_restored():
    index = torch.tensor([4, 0, 2, 4, 1, 3, 0])  # two processes' items, 0 and 4 repeated by padding
    order = first_of_each(index)
    assert index[order].tolist() == [0, 1, 2, 3, 4]
    assert order.tolist() == [1, 4, 2, 5, 0]  # the first occurrence of each repeated item


@pytest.mark.parametrize("batches", [
    [range(0, 32), range(32, 64), range(64, 101)],  # in item order: the batches serve as they are
    [range(64, 101), range(0, 32), [0, 5, 99], range(32, 64)],  # shuffled, items repeated
])
def test_one_process_report_in_any_batch_order_is_the_ordered_sets_report(batches):
    """One process: batches in item order are used without reordering (Y read from the cache),
    batches out of order or with repeated items are put in order first; both give the report of
    the ordered sets computed from scratch, every key exactly."""
    x, y, f = _sets(101)
    metric = MeanNearestNeighborOverlap(k=10, metric="cosine")
    metric.cache_reference(knn_indices(x, 10, "cosine"), knn_indices(y, 10, "cosine"), y, inputs=x)
    for rows in batches:
        rows = torch.tensor(list(rows))
        metric.update(x[rows], y[rows], f[rows], rows)
    assert metric.compute() == cross_modal_report(x, y, f, k=10, metric="cosine")


def _validate(tmp_path, name: str, n_items: int, *overrides: str) -> dict:
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / f"{name}.json"
    script = Path(__file__).with_name("ddp_validate.py")
    done = subprocess.run([sys.executable, str(script), str(out), str(n_items), *overrides],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.parametrize(("n_items", "loss"), [(640, "mse"), (638, "cosine")])
def test_trainer_ddp_on_two_cpu_processes_gives_the_single_process_metrics(tmp_path, n_items, loss):
    """`trainer=ddp` end to end through Lightning (2 CPU processes, gloo) on the same map: every
    validation metric, val/loss included, equals the single-process value, on an even (320) and an
    odd (319: the sampler pads one repeat) fold."""
    from ddp_validate import main as validate_in_process

    validate_in_process(str(tmp_path / "single.json"), n_items, [f"loss={loss}"])
    single = json.loads((tmp_path / "single.json").read_text())
    ddp = _validate(tmp_path, "ddp", n_items, f"loss={loss}", "trainer=ddp", "trainer.accelerator=cpu")
    assert (single["world_size"], ddp["world_size"]) == (1, 2)
    assert single["n_val"] == ddp["n_val"] == n_items // 2
    metrics = [k for k in single if k.startswith("val/")]
    assert len(metrics) == 9 and set(metrics) == {k for k in ddp if k.startswith("val/")}  # with mnno_chance
    for key in metrics:
        assert ddp[key] == pytest.approx(single[key], abs=1e-6), key
