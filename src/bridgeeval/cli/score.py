"""Scoring your own embeddings: ``bridgeeval score X Y [MAPPED]``."""

from __future__ import annotations

import math

from bridgeeval.cli.options import add_id_column_options, positive_int
from bridgeeval.jsonout import dumps


def add_parser(sub) -> None:
    p = sub.add_parser(
        "score",
        help="mNNO report for your own embeddings",
        description="Score paired embeddings X (input), Y (target) and, optionally, MAPPED = f(X). "
        "Files: .npy .pt .csv .txt/.vec (word vectors) .parquet; rows are paired by position.",
    )
    p.add_argument("input", help="X, the input set")
    p.add_argument("target", help="Y, the target set paired row by row with X")
    p.add_argument("mapped", nargs="?", help="f(X), the mapped set (same dimensions as Y)")
    p.add_argument("-k", type=positive_int, default=10, help="neighbours per item (default 10, as in the paper)")
    p.add_argument("--metric", choices=["cosine", "euclidean"], default="cosine", help="neighbour metric (default cosine)")
    p.add_argument(
        "--include-self", action="store_true", help="count each item as its own neighbour (the released code's rule)"
    )
    p.add_argument("--sample", type=positive_int, default=None, metavar="M", help="estimate mNNO from M random query rows")
    add_id_column_options(p)
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=_score)


def _score(args) -> int:
    import torch

    from bridgeeval.data.formats import read_matrix
    from bridgeeval.errors import BridgeEvalError
    from bridgeeval.metrics import cross_modal_report, mnno, mnno_sampled
    from bridgeeval.metrics.validation import check_paired, check_points

    sets = {"input": args.input, "target": args.target}
    if args.mapped:
        sets["mapped"] = args.mapped
    values = {
        name: torch.from_numpy(read_matrix(path, args.id_column).values).to(args.device) for name, path in sets.items()
    }
    check_paired({f"{name} ({sets[name]})": t for name, t in values.items()})
    for name, t in values.items():
        check_points(t, f"{name} ({sets[name]})", args.metric)
    opts = {"k": args.k, "metric": args.metric, "include_self": args.include_self}
    if args.sample is not None:
        n = values["input"].shape[0]
        if args.sample > n:
            raise BridgeEvalError(f"--sample {args.sample}: more query rows than the {n} items; leave it out for all")
        report = {}
        pairs = [("input", "target")] + ([("input", "mapped"), ("target", "mapped")] if args.mapped else [])
        for a, b in pairs:
            key = f"mnno_{a}_{b}"
            report[key], report[f"{key}_stderr"] = mnno_sampled(values[a], values[b], n_queries=args.sample, **opts)
    elif args.mapped:
        report = cross_modal_report(values["input"], values["target"], values["mapped"], **opts)
    else:
        report = {"mnno_input_target": mnno(values["input"], values["target"], **opts)}
    meta = {"n": int(values["input"].shape[0]), "k": args.k, "metric": args.metric, "include_self": args.include_self}
    if args.json:
        print(dumps({**meta, **report}))
    else:
        _print_table(f"bridgeeval score (N={meta['n']}, k={args.k}, {args.metric})", report)
    return 0


def _print_table(title: str, values: dict[str, float]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in values.items():
        table.add_row(key, f"{value:.4f}" if math.isfinite(value) else "undefined")
    Console().print(table)
