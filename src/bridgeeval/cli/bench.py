"""``bridgeeval bench``: exact kNN timed against scikit-learn and faiss."""

from __future__ import annotations

from bridgeeval.jsonout import dumps

from bridgeeval.cli.options import positive_int
from bridgeeval.errors import BridgeEvalError


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
    p.add_argument("--device", default="cpu", help="torch device for ours, e.g. cuda (default cpu)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.set_defaults(handler=_bench)


def _parse_sizes(text: str | None):
    from bridgeeval.bench import DEFAULT_SIZES

    if not text:
        return DEFAULT_SIZES
    try:
        return tuple(tuple(int(v) for v in case.lower().split("x")) for case in text.split(","))
    except ValueError:
        raise BridgeEvalError(f"--sizes: expected cases like 2000x300,10000x2048, got {text!r}") from None


def _bench(args) -> int:
    from bridgeeval.bench import gemm_peak_flops, run_case

    methods = [m for m in args.methods.split(",") if m]
    for method in methods:
        if method not in ("faiss", "sklearn", "torch"):
            raise BridgeEvalError(f"--methods: unknown method {method!r} (faiss, sklearn, torch)")
        try:
            __import__({"faiss": "faiss", "sklearn": "sklearn", "torch": "torch"}[method])
        except ImportError:
            raise BridgeEvalError(f"{method} is not installed: pip install 'bridgeeval[bench]'") from None
    flops = gemm_peak_flops(args.device)
    rows = []
    if not args.json:
        print(f"exact {args.metric} kNN, k = {args.k}, on {args.device}; peak float32 GEMM {flops / 1e9:.0f} GFLOP/s\n")
        for line in table_head(methods):
            print(line, flush=True)
    for n, d in _parse_sizes(args.sizes):
        row = run_case(n, d, args.k, args.metric, methods, args.device, flops)
        rows.append(row)
        if not args.json:
            print(table_row(row, methods), flush=True)  # each case as it finishes
    if args.json:
        print(dumps({"gemm_gflops": flops / 1e9, "cases": rows}))
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
