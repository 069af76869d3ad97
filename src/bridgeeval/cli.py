"""The ``bridgeeval`` command: thin over library calls; bad input is one line and a non-zero exit."""

from __future__ import annotations

import argparse
import json
import sys

from bridgeeval.errors import BridgeEvalError


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except BridgeEvalError as err:
        print(f"bridgeeval: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bridgeeval: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bridgeeval", description=__doc__)
    sub = parser.add_subparsers(title="commands")
    _add_score(sub)
    _add_bench(sub)
    _add_data(sub)
    _add_sweep(sub)
    _add_report(sub)
    _add_plot(sub)
    return parser


def _add_score(sub) -> None:
    p = sub.add_parser(
        "score",
        help="mNNO report for your own embeddings",
        description="Score paired embeddings X (input), Y (target) and, optionally, MAPPED = f(X). "
        "Files: .npy .pt .csv .txt/.vec (word vectors) .parquet; rows are paired by position.",
    )
    p.add_argument("input", help="X, the input set")
    p.add_argument("target", help="Y, the target set paired row by row with X")
    p.add_argument("mapped", nargs="?", help="f(X), the mapped set (same dimensions as Y)")
    p.add_argument("-k", type=int, default=10, help="neighbours per item (default 10, as in the paper)")
    p.add_argument("--metric", choices=["cosine", "euclidean"], default="cosine")
    p.add_argument(
        "--include-self", action="store_true", help="count each item as its own neighbour (the released code's rule)"
    )
    p.add_argument("--sample", type=int, default=None, metavar="M", help="estimate mNNO from M random query rows")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=_score)


def _score(args) -> int:
    import torch

    from bridgeeval.data.formats import read_matrix
    from bridgeeval.metrics import cross_modal_report, mnno, mnno_sampled
    from bridgeeval.metrics.validation import check_paired, check_points

    sets = {"input": args.input, "target": args.target}
    if args.mapped:
        sets["mapped"] = args.mapped
    values = {name: torch.from_numpy(read_matrix(path).values).to(args.device) for name, path in sets.items()}
    check_paired({f"{name} ({sets[name]})": t for name, t in values.items()})
    for name, t in values.items():
        check_points(t, f"{name} ({sets[name]})", args.metric)
    opts = {"k": args.k, "metric": args.metric, "include_self": args.include_self}
    if args.sample:
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
        print(json.dumps({**meta, **report}, indent=2))
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
        table.add_row(key, f"{value:.4f}")
    Console().print(table)


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="time exact kNN against scikit-learn and faiss-cpu")
    p.add_argument(
        "--sizes",
        default=None,
        help="comma-separated NxD cases, e.g. 2000x300,10000x2048 (default: N in 2k,10k,50k x d in 300,2048)",
    )
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--metric", choices=["cosine", "euclidean"], default="cosine")
    p.add_argument(
        "--methods",
        default="faiss,sklearn",
        help="comparisons to run: faiss, sklearn, torch (plain float32 products + topk, not exact)",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true")
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
    for n, d in _parse_sizes(args.sizes):
        row = run_case(n, d, args.k, args.metric, methods, args.device, flops)
        rows.append(row)
        if not args.json:
            print(
                " ".join(
                    f"{key}={value:.3f}" if isinstance(value, float) else f"{key}={value}" for key, value in row.items()
                ),
                flush=True,
            )
    if args.json:
        print(json.dumps({"gemm_gflops": flops / 1e9, "cases": rows}, indent=2))
    else:
        print(f"peak float32 GEMM: {flops / 1e9:.0f} GFLOP/s")
    return 0


def _add_data(sub) -> None:
    p = sub.add_parser("data", help="download, verify and register data sets (cache: $BRIDGEEVAL_DATA)")
    verbs = p.add_subparsers(title="data commands")
    v = verbs.add_parser("list", help="every data set, and whether it is cached and verified")
    v.set_defaults(handler=_data_list)
    v = verbs.add_parser("fetch", help="download data sets (verified; a second fetch is a no-op)")
    v.add_argument("names", nargs="+")
    v.add_argument("--mirror", default=None, help="base URL replacing the upstream hosts (file:// or http://)")
    v.set_defaults(handler=_data_fetch)
    v = verbs.add_parser("verify", help="check sizes and checksums of cached files")
    v.add_argument("names", nargs="*")
    v.set_defaults(handler=_data_verify)
    v = verbs.add_parser("path", help="print the cache folder of a data set")
    v.add_argument("name")
    v.set_defaults(handler=_data_path)
    v = verbs.add_parser("add", help="register files you downloaded by hand (format-checked)")
    v.add_argument("name")
    v.add_argument("--from", dest="source", required=True, help="folder holding the files")
    v.set_defaults(handler=_data_add)
    p.set_defaults(handler=lambda args: p.print_help() or 2)


def _data_list(args) -> int:
    from bridgeeval.data import download
    from bridgeeval.data.registry import ENTRIES

    print(f"cache: {download.cache_dir()}")
    for name, e in sorted(ENTRIES.items()):
        status = download.verify(name)
        state = "verified" if all(ok for ok, _ in status.values()) else "not cached"
        how = " (manual: data add)" if e.manual else (" (optional)" if e.optional else "")
        print(f"{name:14s} {state:11s} {e.kind:9s} {e.description}{how}")
    return 0


def _data_fetch(args) -> int:
    from bridgeeval.data import download
    from bridgeeval.data.registry import entry

    for name in args.names:
        entry(name)  # unknown names fail before any download
    for name in args.names:
        folder = download.fetch(name, mirror=args.mirror)
        print(f"{name}: {folder}")
    return 0


def _data_verify(args) -> int:
    from bridgeeval.data import download
    from bridgeeval.data.registry import ENTRIES

    names = args.names or sorted(ENTRIES)
    bad = 0
    for name in names:
        for file, (ok, reason) in download.verify(name).items():
            if not args.names and reason.startswith("missing"):
                continue  # `verify` alone checks what is cached
            print(f"{name}/{file}: {reason}")
            bad += not ok
    return 1 if bad else 0


def _data_path(args) -> int:
    from bridgeeval.data import download
    from bridgeeval.data.registry import entry

    print(download.entry_dir(entry(args.name)))
    return 0


def _data_add(args) -> int:
    from pathlib import Path

    from bridgeeval.data import download

    print(f"{args.name}: {download.add(args.name, Path(args.source))}")
    return 0


def _add_sweep(sub) -> None:
    p = sub.add_parser("sweep", help="inspect Optuna studies of `train.py hparams_search=...`")
    verbs = p.add_subparsers(title="sweep commands")
    for verb, helptext in (
        ("best", "the best configuration and its cross-validated metrics"),
        ("status", "trial counts by state and the best trial so far"),
    ):
        v = verbs.add_parser(verb, help=helptext)
        v.add_argument("study", help="study name (hydra.sweeper.study_name)")
        v.add_argument(
            "--storage",
            default=None,
            help="sqlite:///PATH, journal:///PATH or postgresql://... (default: sqlite:///outputs/optuna/STUDY.db)",
        )
        v.add_argument("--json", action="store_true")
        v.set_defaults(handler=_sweep_best)
    p.set_defaults(handler=lambda args: p.print_help() or 2)


def _sweep_best(args) -> int:
    from bridgeeval.sweeps.best import format_summary, load, summary

    info = summary(load(args.study, args.storage))
    print(json.dumps(info, indent=2) if args.json else format_summary(info))
    return 0


def _add_report(sub) -> None:
    p = sub.add_parser(
        "report",
        help="the paper's Table 1 from run and multirun folders",
        description="Collects metrics.json of every job under the folders (and the best trial of each "
        "--study) and prints mNNO(X,f(X)) vs mNNO(Y,f(X)) per setting and visual feature, with "
        "Bonferroni-adjusted rank-sum tests and the paper's figures where the setting matches.",
    )
    p.add_argument("paths", nargs="*", help="run or multirun folders (outputs/train/...)")
    p.add_argument("--study", action="append", default=[], help="an Optuna study whose best trial to include")
    p.add_argument("--storage", default=None, help="the studies' storage URL")
    p.add_argument("--format", choices=["markdown", "csv", "latex", "json"], default="markdown")
    p.add_argument("--out", default=None, help="write to this file (atomically) instead of the terminal")
    p.add_argument("--alpha", type=float, default=0.001, help="significance level after Bonferroni (paper: 0.001)")
    p.add_argument("--no-paper", action="store_true", help="leave out the paper's figures")
    p.add_argument("--figures", default=None, metavar="DIR", help="also write the learning-curve figures here")
    p.set_defaults(handler=_report)


def _report(args) -> int:
    from bridgeeval.reports.collect import collect_jobs
    from bridgeeval.reports.table1 import build_table1

    paths = list(args.paths) + [_best_trial_dir(name, args.storage) for name in args.study]
    if not paths:
        raise BridgeEvalError("report: give run folders or --study")
    jobs, problems = collect_jobs(paths)
    for problem in problems:
        print(f"bridgeeval: {problem}", file=sys.stderr)
    if not jobs:
        raise BridgeEvalError(f"no finished job (metrics.json) under {', '.join(map(str, paths))}")
    result = build_table1(jobs, alpha=args.alpha, with_paper=not args.no_paper)
    text = _render_report(result, args.format)
    if args.out:
        from bridgeeval.training.outputs import write_text_atomic

        write_text_atomic(args.out, text)
        print(f"wrote {args.out} ({len(jobs)} jobs)")
    elif args.format == "markdown" and sys.stdout.isatty():
        from rich.console import Console
        from rich.markdown import Markdown

        Console().print(Markdown(text))
    else:
        print(text, end="")
    if args.figures:
        for path in _report_figures(jobs, args.figures):
            print(f"wrote {path}")
    holds = "holds" if result.finding_holds() else "does NOT hold"
    print(f"mNNO(X,f(X)) > mNNO(Y,f(X)) {holds} in all {len(result.comparisons)} cells", file=sys.stderr)
    return 0


def _render_report(result, fmt: str) -> str:
    if fmt == "markdown":
        return result.table.markdown()
    if fmt == "latex":
        return result.table.latex()
    records = result.records()
    if fmt == "json":
        return json.dumps(records, indent=2) + "\n"
    import csv
    import io

    buffer = io.StringIO()
    columns = [k for k in records[0] if k != "jobs"]
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


def _report_figures(jobs, folder: str) -> list:
    from pathlib import Path

    from bridgeeval.reports.figures import job_label, plot_multirun

    plotted = [j.path for j in jobs if (j.path / "history.csv").is_file()]
    return plot_multirun(plotted, [job_label(p) for p in plotted], Path(folder) / "curves")


def _best_trial_dir(name: str, storage: str | None) -> str:
    from bridgeeval.sweeps.best import load

    study = load(name, storage)
    try:
        best = study.best_trial
    except ValueError:
        raise BridgeEvalError(f"study {name!r} has no completed trial") from None
    folder = best.user_attrs.get("output_dir")
    if not folder:
        raise BridgeEvalError(f"study {name!r}: the best trial has no recorded job folder")
    return folder


def _add_plot(sub) -> None:
    p = sub.add_parser(
        "plot",
        help="learning curves of a run or multirun (the paper's Fig. 2), or a sweep's history",
        description="A job folder gives mNNO(X,f(X)), mNNO(Y,f(X)) and the loss per epoch (train dashed "
        "when metrics.on_train=true); a multirun folder a grid of those; --study the objective over "
        "trials and the hyperparameters' importance. PNG and PDF.",
    )
    p.add_argument("path", nargs="?", help="a job folder or a multirun folder")
    p.add_argument("--study", default=None)
    p.add_argument("--storage", default=None)
    p.add_argument("--out", required=True, help="figure path (PNG; a PDF is written beside it)")
    p.set_defaults(handler=_plot)


def _plot(args) -> int:
    from pathlib import Path

    from bridgeeval.reports import figures

    if args.study:
        from bridgeeval.sweeps.best import load

        written = figures.plot_study(load(args.study, args.storage), Path(args.out))
    elif args.path and (Path(args.path) / "history.csv").is_file():
        written = figures.plot_run(Path(args.path), Path(args.out))
    elif args.path and Path(args.path).is_dir():
        from bridgeeval.reports.collect import collect_jobs

        jobs, problems = collect_jobs([args.path])
        for problem in problems:
            print(f"bridgeeval: {problem}", file=sys.stderr)
        dirs = [j.path for j in jobs if (j.path / "history.csv").is_file()]
        written = figures.plot_multirun(dirs, [figures.job_label(d) for d in dirs], Path(args.out))
    else:
        raise BridgeEvalError(f"plot: {args.path!r} is not a run folder (give a folder or --study)")
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
