"""Exact searches shared by the processes of a torch.distributed group (metrics.sharding): two gloo
processes give one process's lists, measures and ``bridgeeval score`` JSON, each searching its share."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from bridgeeval.metrics import knn_indices, progress, selection
from bridgeeval.metrics.sharding import Shards, _first_node, sharded_search

KNN_MEASURES = "mnno,mutual_knn,cycle_knn,lcs_knn,edit_distance_knn,jaccard_knn,rank_similarity,second_order_cosine"


def _tied_set(n: int = 1500, d: int = 6) -> torch.Tensor:
    """Small integers: many exactly tied distances, and duplicated rows (one far from its twin)."""
    x = torch.randint(-3, 4, (n, d), generator=torch.Generator().manual_seed(5)).double()
    x[x.abs().sum(dim=1) == 0] = 1.0  # no zero rows (cosine)
    x[n - 100] = x[3]
    return x


CASES = [("cosine", False), ("cosine", True), ("euclidean", False), ("euclidean", True)]


def _rank(rank: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    x, seen = _tied_set(), []
    with sharded_search() as shards, progress.reporting(lambda what, done, total: seen.append(total)):
        lists = {f"{m}-{s}": knn_indices(x, 7, m, s, block_size=512).tolist() for m, s in CASES}
        # One block: each process's rows against the whole set
        lists.update({f"{m}-{s}-one-block": knn_indices(x, 7, m, s).tolist() for m, s in CASES})
        # The block pairs by torch.topk, as on a GPU (or without numba): rows a process's pairs
        # never reach are placeholders that the merge drops
        kernels, selection._kernels = selection._kernels, False
        lists.update({f"{m}-{s}-topk": knn_indices(x, 7, m, s, block_size=512).tolist() for m, s in CASES})
        selection._kernels = kernels
    with open(f"{out}.{rank}", "w") as handle:
        json.dump({"lists": lists, "share": shards.share(len(x)), "totals": sorted(set(seen))}, handle)
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_find_the_single_process_lists_each_searching_its_share(tmp_path):
    out = str(tmp_path / "lists")
    mp.spawn(_rank, args=(_free_port(), out), nprocs=2, join=True)
    x = _tied_set()
    ranks = [json.loads(open(f"{out}.{r}").read()) for r in range(2)]
    for metric, include_self in CASES:
        single = knn_indices(x, 7, metric, include_self, block_size=512).tolist()
        for r in ranks:  # each process ends with the whole result, both ways of sharing
            assert r["lists"][f"{metric}-{include_self}"] == single, (metric, include_self)
            assert r["lists"][f"{metric}-{include_self}-one-block"] == single, (metric, include_self)
            assert r["lists"][f"{metric}-{include_self}-topk"] == single, (metric, include_self)
    # Each did only its share: 3 of the 6 block tasks (3 diagonal blocks of 512 rows, 3 pairs; the
    # topk path counts its 3 row blocks), and with one block its 750 rows, never all 1,500.
    assert [r["share"] for r in ranks] == [[0, 750], [750, 1500]] and all(r["totals"] == [3, 750] for r in ranks)
    # The tie rule, against a brute-force float64 sort (stable: lower index first among equals).
    dist64 = torch.cdist(x, x).pow(2)
    dist64.fill_diagonal_(float("inf"))
    brute = torch.sort(dist64, dim=1, stable=True).indices[:, :7]
    assert ranks[1]["lists"]["euclidean-False"] == brute.tolist()


def test_shares_cover_every_row_once_for_any_group_size():
    for n in (1, 2, 7, 1000, 1001):
        for world in (1, 2, 3, 8):
            shares = [Shards(r, world).share(n) for r in range(world)]
            assert shares[0][0] == 0 and shares[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(shares, shares[1:], strict=False))
            assert max(b - a for a, b in shares) - min(b - a for a, b in shares) <= 1


def test_outside_a_group_the_search_is_the_process_own():
    with sharded_search() as shards:  # torch.distributed not initialised: a no-op
        assert shards is None
        x = _tied_set(200)
        assert torch.equal(knn_indices(x, 5), knn_indices(x, 5))


def test_slurm_node_lists_give_their_first_host():
    assert _first_node("gpu[12-15]") == "gpu12" and _first_node("a1,b2") == "a1" and _first_node("n[7,9]") == "n7"


def _write_sets(tmp_path) -> list[str]:
    g = np.random.default_rng(1)
    x = g.standard_normal((2600, 24)).astype(np.float32)
    y = (x[:, :16] + 0.8 * g.standard_normal((2600, 16))).astype(np.float16)  # float16 storage
    f = (x[:, :16] @ g.standard_normal((16, 16))).astype(np.float32)
    paths = []
    for name, values in (("x", x), ("y", y), ("f", f)):
        paths.append(str(tmp_path / f"{name}.npy"))
        np.save(paths[-1], values)
    return paths


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "bridgeeval.cli", *args], capture_output=True, text=True, timeout=300, env=env)


def _single(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridgeeval.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_score_under_torchrun_prints_one_json_equal_to_one_process(tmp_path):
    """The report (its mNNOs, retrieval and hubness keys); the k-NN measures under srun
    (test_slurm_sweeps), whose processes join the group the same way."""
    paths = _write_sets(tmp_path)
    one, two = _single("score", *paths, "--json"), _torchrun("score", *paths, "--json", "-k", "10")
    assert one.returncode == 0 == two.returncode, two.stderr[-3000:]
    assert two.stdout.count('"n": 2600') == 1  # printed once, by the first process
    assert json.loads(two.stdout) == json.loads(one.stdout)  # every key, exactly


@pytest.mark.slow
def test_a_bad_file_under_torchrun_is_one_error_line(tmp_path):
    paths = _write_sets(tmp_path)
    bad = tmp_path / "short.npy"
    np.save(bad, np.zeros((10, 16), dtype=np.float32))
    two = _torchrun("score", paths[0], str(bad), "--json")
    assert two.returncode != 0 and two.stdout == ""
    said = [ln for ln in two.stderr.splitlines() if ln.startswith("bridgeeval: error:")]
    assert len(said) == 1 and "short.npy" in said[0] and "Traceback (most recent call last)" not in two.stderr.split(
        "bridgeeval: error:")[0], two.stderr[-2000:]
    usage = _torchrun("score", paths[0], "-k", "0")  # argparse's refusal, before any group exists
    said = [ln for ln in usage.stderr.splitlines() if "error:" in ln and "bridgeeval" in ln]
    assert usage.returncode != 0 and len(said) == 1 and "-k" in said[0], usage.stderr[-2000:]


def test_npy_sets_are_mapped_not_read_and_the_file_never_changes(tmp_path):
    """A .npy larger than comfortable in memory is paged in by the search: read_matrix maps it
    (copy-on-write), so writing to the array leaves the file as it was."""
    from bridgeeval.data.formats import read_matrix

    path = tmp_path / "big.npy"
    np.save(path, np.arange(12, dtype=np.float32).reshape(4, 3))
    values = read_matrix(str(path)).values
    mapped = values if isinstance(values, np.memmap) else values.base
    assert isinstance(mapped, np.memmap) and str(mapped.filename) == str(path)
    values[0, 0] = 99.0
    assert np.load(path)[0, 0] == 0.0


def test_a_long_search_reports_its_progress_to_the_end():
    """What the terminal bar is fed: steps that rise to their total, for the symmetric search."""
    seen = []
    x = torch.randn(3000, 8, generator=torch.Generator().manual_seed(0))
    with progress.reporting(lambda what, done, total: seen.append((what, done, total))):
        knn_indices(x, 5, block_size=1000)
    dones = [done for _, done, _ in seen]
    assert seen and {what for what, _, _ in seen} == {"exact k-NN search"}
    assert dones == sorted(dones) and dones[-1] == seen[-1][2] == 6  # 3 diagonal blocks + 3 pairs


@pytest.mark.slow
def test_bench_scale_times_each_process_count_and_their_lists_agree():
    done = _single("bench", "--scale", "1,2", "--sizes", "3000x16", "-k", "5", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(done.stdout)["scale"]
    assert [r["processes"] for r in rows] == [1, 2] and [len(r["rank_s"]) for r in rows] == [1, 2]
    assert all(r["equal_to_first"] and r["wall_s"] == max(r["rank_s"]) > 0 for r in rows)
    assert rows[0]["speedup"] == 1.0 and "machine:" in done.stderr
    bad = _single("bench", "--scale", "0,2")
    assert bad.returncode == 2 and bad.stderr.strip().endswith("process counts must be at least 1, got '0,2'")


def test_the_progress_bar_draws_on_a_terminal_and_leaves_a_log_file_clean(tmp_path):
    import shlex
    import shutil

    code = ("import time\nfrom bridgeeval.cli.progress_bar import LazyBar\nwith LazyBar(after=0.0) as bar:\n"
            "    for i in range(5):\n        time.sleep(0.05)\n        bar('exact k-NN search', i, 4)\n")
    to_file = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert to_file.returncode == 0 and to_file.stderr == ""  # a Slurm log gets no bar and no stray line
    if shutil.which("script") is None:
        pytest.skip("util-linux 'script' (a pseudo-terminal) is not installed")
    typescript = tmp_path / "tty"
    subprocess.run(["script", "-qec", f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}", str(typescript)],
                   capture_output=True, timeout=60, check=True)
    assert "exact k-NN search" in typescript.read_text(errors="replace")


@pytest.mark.parametrize("running", [True, False], ids=["numba", "topk"])
def test_three_shares_of_the_block_pairs_merge_to_the_exact_lists(monkeypatch, running):
    """Three processes' shares of 2 blocks' 3 tasks, merged as Shards.exchange does: the third
    process meets block 0's rows in none of its pairs (placeholders only), the second sees them
    against block 1 alone; the merged candidates still refine to the exact lists."""
    from bridgeeval.metrics import neighbours as nb

    if not running:
        monkeypatch.setattr(selection, "_kernels", False)
    x = _tied_set(1000)
    for metric, include_self in CASES:
        single = knn_indices(x, 7, metric, include_self, block_size=512)
        space, c = nb._Space(x, metric), 7 + nb._margin(7)
        parts = [nb._symmetric_candidates(space, c, include_self, 512, Shards(r, 3)) for r in range(3)]
        assert all(p[0].shape == (1000, c) for p in parts)
        scores, indices = torch.cat([p[0] for p in parts], dim=1), torch.cat([p[1] for p in parts], dim=1)
        top, pos = torch.topk(scores, c, dim=1)
        found = [(top, indices.gather(1, pos))]
        merged = nb._refine(space, torch.arange(1000), found, 7, include_self, exhaustive=False)
        assert torch.equal(merged, single), (metric, include_self)
