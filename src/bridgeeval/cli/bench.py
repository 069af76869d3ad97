"""``bridgeeval bench``: exact kNN timed against scikit-learn and faiss."""

from __future__ import annotations

from bridgeeval.cli.options import positive_int, torch_device
from bridgeeval.errors import BridgeEvalError
from bridgeeval.jsonout import dumps


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="time exact kNN against scikit-learn and faiss-cpu")
    p.add_argument(
        "--sizes",
        default=None,
        help="comma-separated NxD cases, e.g. 2000x300,10000x2048 (default: N in 2k,10k,50k x d in 300,2048)",
    )
    p.add_argument("-k", type=positive_int, default=10, help="neighbours per item (default 10)")
    p.add_argument("--metric", choices=["cosine", "euclidean"], default="cosine", help="neighbour metric (default cosine)")
    p.add_argument(
        "--methods",
        default="faiss,sklearn",
        help="comparisons to run: faiss, sklearn, torch (plain float32 products + topk, not exact)",
    )
    p.add_argument("--device", default="cpu", type=torch_device, help="torch device for ours, e.g. cuda (default cpu)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument(
        "--hook",
        action="store_true",
        help="time the validation hook instead: train.py on the built-in set and on an IAPR-sized random set, "
        "and the hook's median share of an epoch (time/metrics_fraction)",
    )
    p.add_argument("--epochs", type=positive_int, default=10, help="epochs per --hook run (default 10)")
    p.add_argument(
        "--measures",
        nargs="?",
        const="all",
        default=None,
        metavar="LIST",
        help="time the alignment measures instead (all, or e.g. cka,cknna): ours against the dense form "
        "platonic-rep computes, or scipy (default sizes 10000x2048 and 50000x2048; the dense forms up to N = 20,000)",
    )
    p.add_argument("--no-reference", action="store_true", help="with --measures: time ours only")
    p.add_argument("--null", type=positive_int, default=None, metavar="K",
                   help="with --measures: time each measure's permutation null of K shuffles against one value "
                   "of it (default sizes 10000x2048)")
    p.add_argument("--scale", nargs="?", const="1,2", default=None, metavar="P",
                   help="time the search of one large set by these process counts (default 1,2; torch.distributed, "
                   "gloo; default size 100000x64), each rank's time and memory")
    p.set_defaults(handler=_bench)


def _say_machine(as_json: bool) -> None:
    """The machine, and a warning first where the CPU is busy (on stderr, so --json stays JSON)."""
    import sys

    from bridgeeval.bench.machine import busy_warning, describe, other_load

    warning = busy_warning(other_load())
    if warning:
        print(warning, file=sys.stderr, flush=True)
    print(f"machine: {describe()}", file=sys.stderr if as_json else sys.stdout, flush=True)


def _parse_sizes(text: str | None, default=None):
    from bridgeeval.bench import DEFAULT_SIZES

    if not text:
        return default or DEFAULT_SIZES
    try:
        return tuple(tuple(int(v) for v in case.lower().split("x")) for case in text.split(","))
    except ValueError:
        raise BridgeEvalError(f"--sizes: expected cases like 2000x300,10000x2048, got {text!r}") from None


def _bench(args) -> int:
    if args.scale is not None:
        return _bench_scale(args)
    if args.hook:
        return _bench_hook(args)
    if args.null is not None:
        if args.measures is None:
            raise BridgeEvalError("--null times measures' nulls: give --measures too (e.g. --measures mnno,cka)")
        return _bench_null(args)
    if args.measures is not None:
        return _bench_measures(args)
    from bridgeeval.bench import gemm_peak_flops, run_case

    methods = [m for m in args.methods.split(",") if m]
    for method in methods:
        if method not in ("faiss", "sklearn", "torch"):
            raise BridgeEvalError(f"--methods: unknown method {method!r} (faiss, sklearn, torch)")
        try:
            __import__({"faiss": "faiss", "sklearn": "sklearn", "torch": "torch"}[method])
        except ImportError:
            raise BridgeEvalError(f"{method} is not installed: pip install 'bridgeeval[bench]'") from None
    sizes = _parse_sizes(args.sizes)
    _say_machine(args.json)  # once every argument is known good: a bad one stays one line
    flops = gemm_peak_flops(args.device)
    rows = []
    if not args.json:
        print(f"exact {args.metric} kNN, k = {args.k}, on {args.device}; peak float32 GEMM {flops / 1e9:.0f} GFLOP/s\n")
        for line in table_head(methods):
            print(line, flush=True)
    for n, d in sizes:
        row = run_case(n, d, args.k, args.metric, methods, args.device, flops)
        rows.append(row)
        if not args.json:
            print(table_row(row, methods), flush=True)  # each case as it finishes
    if args.json:
        print(dumps({"gemm_gflops": flops / 1e9, "cases": rows}))
    return 0


def _bench_scale(args) -> int:
    from bridgeeval.bench.scale import run_scale, table

    try:
        processes = [int(p) for p in args.scale.split(",")]
    except ValueError:
        raise BridgeEvalError(f"--scale: expected process counts like 1,2,4, got {args.scale!r}") from None
    if not processes or min(processes) < 1:
        raise BridgeEvalError(f"--scale: process counts must be at least 1, got {args.scale!r}")
    sizes = _parse_sizes(args.sizes, default=((100000, 64),))
    _say_machine(args.json)
    rows = []
    if not args.json:
        print(f"exact {args.metric} kNN, k = {args.k}, shared by processes (gloo), cores divided among them\n")
        for line in table([])[:2]:
            print(line, flush=True)
    for n, d in sizes:
        case = run_scale(n, d, args.k, args.metric, processes)
        rows += case
        if not args.json:
            for line in table(case)[2:]:
                print(line, flush=True)
    if args.json:
        print(dumps({"scale": rows}))
    return 0


def table_head(methods: list[str]) -> list[str]:
    """The README's benchmark table: seconds, ratios, the matmul floor, memory, agreement."""
    names = {"faiss": "faiss-cpu", "sklearn": "scikit-learn", "torch": "torch topk"}
    columns = ["N x d", "ours (s)", *[f"{names[m]} (s)" for m in methods], *[f"ours/{m}" for m in methods],
               "ours/floor", "ours peak extra (GiB)", *[f"{m} agrees" for m in methods]]
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def table_row(row: dict, methods: list[str]) -> str:
    cells = [f"{row['n']:,} x {row['d']:,}", _seconds(row["ours_s"])]
    cells += [_seconds(row[f"{m}_s"]) for m in methods]
    cells += [f"{row[f'ours_over_{m}']:.2f}" for m in methods]
    cells += [f"{row['ours_over_floor']:.2f}", f"{row['ours_mem_gib']:.2f}"]
    cells += [f"{row[f'{m}_set_agreement']:.1%}" for m in methods]
    return "| " + " | ".join(cells) + " |"


def _seconds(value: float) -> str:
    return f"{value:.3g}"


# (name, overrides): the built-in set, and random data shaped like IAPR TC-12 (1,962 pairs, biGRU
# texts 64-d, VGG-128 images) so that no download is needed; one fold, as a job's every fold.
HOOK_CASES = (
    ("built-in (639 x 50 -> 1280, fold of 128)", ["dataset=imagenet1k"]),
    ("IAPR-sized (1,962 x 64 -> 128, fold of 393)",
     ["dataset=custom", "dataset.input_path={tmp}/x.npy", "dataset.target_path={tmp}/y.npy"]),
)


def _bench_hook(args) -> int:
    """One ``train.py`` job per case, as a user runs it; the hook's cost per epoch from its history."""
    import csv
    import statistics
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    import numpy as np

    from bridgeeval.reports.reproduce import find_app

    app = find_app()
    _say_machine(args.json)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bridgeeval-hook-") as tmp:
        rng = np.random.default_rng(0)
        np.save(Path(tmp) / "x.npy", rng.standard_normal((1962, 64), dtype=np.float32))
        np.save(Path(tmp) / "y.npy", rng.standard_normal((1962, 128), dtype=np.float32))
        if not args.json:
            print(f"validation hook, {args.epochs} epochs, one fold, on {args.device}\n")
            print("| set | epoch (ms) | hook (ms) | hook share of an epoch |\n|---|---|---|---|")
        for name, overrides in HOOK_CASES:
            out = Path(tmp) / str(len(rows))
            command = [sys.executable, str(app), *(o.format(tmp=tmp) for o in overrides), "cv.fold=0",
                       f"trainer.max_epochs={args.epochs}", "trainer.enable_progress_bar=false", "logger=csv", f"paths.log_dir={out}", f"trainer.accelerator={_accelerator(args.device)}"]
            done = subprocess.run(command, capture_output=True, text=True, cwd=app.parent)
            if done.returncode != 0:
                raise BridgeEvalError(f"--hook: train.py failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
            (history,) = out.rglob("history.csv")
            epochs = [r for r in csv.DictReader(history.open()) if r.get("time/metrics_s")]
            epochs = epochs[1:] or epochs  # the first is a warm-up, where there are more
            row = {
                "set": name,
                "epoch_ms": 1e3 * statistics.median(float(r["time/epoch_s"]) for r in epochs),
                "hook_ms": 1e3 * statistics.median(float(r["time/metrics_s"]) for r in epochs),
                "hook_fraction": statistics.median(float(r["time/metrics_fraction"]) for r in epochs),
            }
            rows.append(row)
            if not args.json:
                print(f"| {name} | {row['epoch_ms']:.1f} | {row['hook_ms']:.2f} | {row['hook_fraction']:.1%} |", flush=True)
    if args.json:
        print(dumps({"hook": rows}))
    return 0


def _accelerator(device: str) -> str:
    return "gpu" if device.startswith("cuda") else "cpu"


def _bench_null(args) -> int:
    """Each measure's null of K shuffles against one value of it, a table row as each ends."""
    from bridgeeval.bench import warm_up
    from bridgeeval.bench.measures import bench_data, measure_names, null_table_head, null_table_row, run_null

    if args.device != "cpu":
        raise BridgeEvalError("--null runs on the CPU only here")
    names = measure_names(args.measures)
    sizes = _parse_sizes(args.sizes, ((10000, 2048),))
    _say_machine(args.json)
    warm_x, warm_y = bench_data(300, 64)
    for name in names:  # one-off costs out of the timings
        run_null(name, warm_x, warm_y, args.k, 2)
    rows = []
    if not args.json:
        print(f"permutation nulls, k = {args.k}, {args.null} shuffles\n")
        for line in null_table_head():
            print(line, flush=True)
    for n, d in sizes:
        x, y = bench_data(n, d)
        warm_up(x, args.k, "cosine", "cpu")
        for name in names:
            rows.append(run_null(name, x, y, args.k, args.null))
            if not args.json:
                print(null_table_row(rows[-1]), flush=True)
    if args.json:
        print(dumps({"nulls": rows}))
    return 0


def _bench_measures(args) -> int:
    """Each measure at each size: ours, then the reference's dense form, a table row as each ends."""
    import torch

    from bridgeeval.bench import warm_up
    from bridgeeval.bench.measures import (DEFAULT_MEASURE_SIZES, REFERENCE_MAX_N, bench_data, measure_names,
                                           run_knn_family, run_measure, table_head, table_row)

    if args.device != "cpu":
        raise BridgeEvalError("--measures runs on the CPU only (the dense references are CPU code here)")
    names = measure_names(args.measures)
    sizes = _parse_sizes(args.sizes, DEFAULT_MEASURE_SIZES)
    _say_machine(args.json)
    warm_x, warm_y = bench_data(300, 64)
    for name in names:  # one-off costs (kernel choice, first calls) out of the timings
        run_measure(name, warm_x, warm_y, args.k, with_reference=False)
    rows = []
    if not args.json:
        print(f"alignment measures, k = {args.k}, {torch.get_num_threads()} threads; reference: platonic-rep's "
              "dense form (bridgeeval.reference.platonic) or scipy\n")
        for line in table_head():
            print(line, flush=True)
    for n, d in sizes:
        x, y = bench_data(n, d)
        warm_up(x, args.k, "cosine", "cpu")  # numba's kernels and the GEMM choice, once a process
        size_rows = []
        for name in names:
            for row in run_measure(name, x, y, args.k, with_reference=not args.no_reference and n <= REFERENCE_MAX_N):
                size_rows.append(row)
                if not args.json:
                    print(table_row(row), flush=True)
        family = run_knn_family(names, x, y, args.k, size_rows)
        if family is not None:
            size_rows.append(family)
            if not args.json:
                print(table_row(family), flush=True)
        rows += size_rows
    if args.json:
        print(dumps({"measures": rows}))
    return 0
