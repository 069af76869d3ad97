"""Scoring your own embeddings: ``bridgeeval score X Y [MAPPED]``."""

from __future__ import annotations

import contextlib
import math
import os
import sys

from bridgeeval.cli.options import add_id_column_options, positive_int, torch_device
from bridgeeval.errors import BridgeEvalError
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
    p.add_argument(
        "--measures",
        default=None,
        metavar="LIST",
        help="alignment measures instead of the report, comma-separated (e.g. mnno,cka,cknna,rsa; 'all' for every "
        "one): JSON holds one key per measure for two files, one object per pair for three",
    )
    p.add_argument("--rbf-sigma", type=float, default=None, help="RBF kernel width of cka_rbf (default: each set's RMS distance)")
    p.add_argument("--cca-dim", type=positive_int, default=10, help="directions kept by svcca (default 10)")
    p.add_argument("--option", action="append", default=[], type=_measure_option, metavar="KEY=VALUE",
                   help="any other measure option, repeatable (e.g. rtd_trials=20, gs_gamma=0.05, rsa_seed=1; "
                   "the list: docs/measure.md)")
    p.add_argument("--isf-beta", type=float, default=None, metavar="BETA",
                   help="with three files, also retrieval by inverted softmax at this inverse temperature")
    p.add_argument("--null", type=positive_int, default=None, metavar="K",
                   help="a permutation null of K shuffles of each pair's second set: its mean, threshold tau, "
                   "add-one p-value and calibrated score (Groger et al. 2026), and mNNO's exact chance level")
    p.add_argument("--alpha", type=float, default=0.05, help="level of the null's threshold tau (default 0.05)")
    p.add_argument("--bootstrap", type=positive_int, default=None, metavar="B",
                   help="percentile intervals from B resamples of the items (k-NN measures: the items' values; "
                   "others: the paired rows)")
    p.add_argument("--level", type=float, default=0.95, help="coverage of the bootstrap intervals (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="seed of the null's shuffles and the resamples (default 0)")
    add_id_column_options(p)
    p.add_argument("--device", default="cpu", type=torch_device, help="torch device, e.g. cuda")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=_score)


def _measure_option(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE an integer, a number or null (checked against the options later)."""
    import argparse

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE, e.g. rtd_trials=20")
    raw = raw.strip()
    if raw.lower() in ("null", "none"):
        return key.strip(), None
    for parse in (int, float):
        try:
            return key.strip(), parse(raw)
        except ValueError:
            pass
    raise argparse.ArgumentTypeError(f"{text!r}: the value must be a number or null")


def _score(args) -> int:
    """One process, or one of the processes ``torchrun``/``srun`` launched: they share each exact
    neighbour search (metrics.sharding) and the first one prints."""
    import torch

    from bridgeeval.cli.progress_bar import LazyBar
    from bridgeeval.launch import launched_world
    from bridgeeval.metrics import progress, sharding

    if launched_world() < 2:
        with LazyBar() as bar, progress.reporting(bar):
            return _score_here(args)
    import torch.distributed as dist

    device = torch.device(args.device)
    if device.type == "cuda" and device.index is None:  # one GPU per process of the node
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0"))))
        args.device = str(device)
    rank = sharding.init_from_environment(device)
    if rank:  # the readers' notes once, from the first process
        import logging

        logging.getLogger("bridgeeval").setLevel(logging.ERROR)
    try:
        with LazyBar(enabled=rank == 0) as bar, progress.reporting(bar), sharding.sharded_search(), \
                _stdout_unless(rank == 0):
            return _score_here(args)
    except BridgeEvalError:
        if rank:  # every process reads the same files: the first one says it
            return 2
        raise
    finally:
        dist.destroy_process_group()


def _is_first_process() -> bool:
    from bridgeeval.metrics import sharding

    shards = sharding.active()
    return shards is None or shards.rank == 0


@contextlib.contextmanager
def _stdout_unless(keep: bool):
    """stdout as it is where ``keep``, else discarded (the other processes print the same result)."""
    if keep:
        yield
        return
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


def _score_here(args) -> int:
    import torch

    from bridgeeval.data.formats import read_matrix
    from bridgeeval.metrics import cross_modal_report, mnno, mnno_from_indices, mnno_sampled
    from bridgeeval.metrics.report import undefined_keys
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
    meta = {"n": int(values["input"].shape[0]), "k": args.k, "metric": args.metric, "include_self": args.include_self}
    if args.null is not None:
        from bridgeeval.metrics.null import check_null_options

        check_null_options(args.null, args.alpha)
        if args.sample is not None:
            raise BridgeEvalError("--null shuffles every row; leave out --sample")
    if args.bootstrap is not None:
        from bridgeeval.metrics.bootstrap import check_bootstrap_options

        check_bootstrap_options(args.bootstrap, args.level)
        if args.sample is not None:
            raise BridgeEvalError("--bootstrap resamples every row; leave out --sample")
    if args.isf_beta is not None and (not args.mapped or args.measures is not None):
        raise BridgeEvalError("--isf-beta ranks targets for mapped vectors in the report: give the third file, "
                              "f(X), and leave out --measures")
    if args.measures is not None:
        return _score_measures(args, values, meta)
    reasons = undefined_keys(values, args.metric)
    extras: dict[str, dict] = {}  # "null" and "interval": {report key: result}
    if args.null is not None or args.bootstrap is not None:  # the report's mNNOs from the same lists
        sets = _representations(args, values)
        lists = {name: rep.neighbours(args.k) for name, rep in sets.items()}
        if args.mapped:
            report = cross_modal_report(values["input"], values["target"], values["mapped"], **opts, neighbours=lists)
        else:
            report = {"mnno_input_target": mnno_from_indices(lists["input"], lists["target"])}
        extras = _extras(args, sets, ("mnno",), report)
    elif args.sample is not None:
        n = values["input"].shape[0]
        if args.sample > n:
            raise BridgeEvalError(f"--sample {args.sample}: more query rows than the {n} items; leave it out for all")
        report = {}
        pairs = [("input", "target")] + ([("input", "mapped"), ("target", "mapped")] if args.mapped else [])
        for a, b in pairs:
            key = f"mnno_{a}_{b}"
            report[key], report[f"{key}_stderr"] = mnno_sampled(values[a], values[b], n_queries=args.sample, **opts)
            if key in reasons:
                reasons[f"{key}_stderr"] = reasons[key]
    elif args.mapped:
        report = cross_modal_report(values["input"], values["target"], values["mapped"], **opts)
    else:
        report = {"mnno_input_target": mnno(values["input"], values["target"], **opts)}
    if args.mapped:  # retrieval of each row's target, plain and hubness-corrected
        from bridgeeval.metrics.hub_retrieval import hub_retrieval

        report.update(hub_retrieval(values["mapped"], values["target"], args.k, args.metric, args.isf_beta))
    report.update(dict.fromkeys(reasons, float("nan")))
    if args.json:
        out = {**meta, **report, **{kind: _as_json(results) for kind, results in extras.items()}}
        print(dumps(_with_reasons(out, reasons)))
    else:
        _print_table(f"bridgeeval score (N={meta['n']}, k={args.k}, {args.metric})", report)
        _print_extras(args, extras, {key: (key, report[key]) for key in next(iter(extras.values()), {})})
        _print_reasons(reasons)
    return 0


def _representations(args, values: dict) -> dict:
    from bridgeeval.metrics.representation import Representation

    return {name: Representation(t, metric=args.metric, include_self=args.include_self,
                                 name=f"{name} ({getattr(args, name)})") for name, t in values.items()}


def _extras(args, sets: dict, names, observed: dict, options: dict | None = None) -> dict[str, dict]:
    """``null`` (with --null) and ``interval`` (with --bootstrap): each {"{name}_{pair}": result}."""
    extras = {}
    if args.null is not None:
        extras["null"] = _nulls(args, sets, names, observed, options)
    if args.bootstrap is not None:
        extras["interval"] = _intervals(args, sets, names, options)
    return extras


def _print_extras(args, extras: dict[str, dict], rows: dict[str, tuple[str, float]]) -> None:
    """The null and interval tables; ``rows`` maps each key to its label and value."""
    printers = {"null": _print_null, "interval": _print_intervals}
    for kind, results in extras.items():
        printers[kind](args, {label: (value, results[key]) for key, (label, value) in rows.items()})


def _nulls(args, sets: dict, names, observed: dict, options: dict | None = None) -> dict:
    """The permutation null of each measure and pair, with a progress bar past a second's work."""
    from bridgeeval.cli.progress_bar import LazyBar
    from bridgeeval.metrics.null import permutation_nulls

    with LazyBar(after=1.0, enabled=_is_first_process()) as bar:
        return permutation_nulls(sets, names, args.k, options=options,
                                 permutations=args.null, alpha=args.alpha, seed=args.seed, observed=observed,
                                 on_step=lambda done, total: bar("permutation null", done, total))


def _intervals(args, sets: dict, names, options: dict | None = None) -> dict:
    from bridgeeval.metrics.bootstrap import bootstrap_intervals

    return bootstrap_intervals(sets, names, args.k, options=options, resamples=args.bootstrap, level=args.level,
                               seed=args.seed)


def _print_intervals(args, rows: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"bootstrap {args.level:.0%} intervals ({args.bootstrap} resamples, seed {args.seed})")
    for column in ("measure", "value", "low", "high", "resampled"):
        table.add_column(column, justify="left" if column in ("measure", "resampled") else "right", no_wrap=True)
    outside_any = False
    for label, (value, interval) in rows.items():
        if interval is None:
            table.add_row(label, f"{value:.4f}" if math.isfinite(value) else "undefined", "", "", "no interval")
        else:
            outside = not interval.low <= value <= interval.high
            outside_any = outside_any or outside
            table.add_row(label, f"{value:.4f}" + (" †" if outside else ""), f"{interval.low:.4f}",
                          f"{interval.high:.4f}", interval.method)
    Console().print(table)
    if outside_any:
        from bridgeeval.metrics.bootstrap import OUTSIDE_NOTE

        print(OUTSIDE_NOTE)


def _as_json(results: dict) -> dict:
    """Nulls or intervals by key, each as a plain object (None: undefined)."""
    return {key: None if r is None else r.as_dict() for key, r in results.items()}


def _print_null(args, rows: dict) -> None:
    """One row per value: the value, its chance level, the null's mean and tau, p, calibrated."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"permutation null ({args.null} shuffles of the second set, alpha {args.alpha}, "
                        f"seed {args.seed})")
    table.add_column("measure", no_wrap=True)
    for column in ("value", "chance", "null mean", "tau", "p", "calibrated"):
        table.add_column(column, justify="right")
    for label, (value, n) in rows.items():
        if n is None:  # undefined, or a one-set statistic (its value printed): the pairing does not enter
            shown = f"{value:.4f}" if math.isfinite(value) else "undefined"
            table.add_row(label, shown, *[""] * 4, "no null" if math.isfinite(value) else "")
            continue
        chance = "" if n.chance is None else f"{n.chance:.4f}"
        table.add_row(label, f"{value:.4f}", chance, f"{n.mean:.4f}", f"{n.tau:.4f}", f"{n.p_value:.4g}",
                      f"{n.calibrated:.4f}")
    Console().print(table)


def _with_reasons(out: dict, reasons: dict[str, str]) -> dict:
    """``undefined_reasons``: why each undefined value (null, listed in ``undefined_keys``) is so."""
    return {**out, "undefined_reasons": reasons} if reasons else out


def _print_reasons(reasons: dict[str, str]) -> None:
    for reason in dict.fromkeys(reasons.values()):  # each reason once, in order
        keys = ", ".join(k for k, r in reasons.items() if r == reason)
        print(f"undefined: {keys}: {reason}", file=sys.stderr)


def _score_measures(args, values: dict, meta: dict) -> int:
    """The named measures for each pair of the given sets, each set's neighbours searched once."""
    from bridgeeval.errors import BridgeEvalError
    from bridgeeval.metrics.measures import MEASURES, PAIRS, alignment_report, check_measure_options, check_measures

    if args.sample is not None:
        raise BridgeEvalError("--sample estimates mNNO alone; leave it out with --measures (rsa samples by itself)")
    every = args.measures.strip() == "all"
    wanted = list(MEASURES) if every else [m.strip() for m in args.measures.split(",") if m.strip()]
    if not wanted:
        raise BridgeEvalError("--measures: name at least one measure, e.g. --measures mnno,cka")
    names = check_measures(wanted)
    narrowest = min(int(t.shape[1]) for t in values.values())
    if every and narrowest < args.cca_dim:  # 'all' keeps what applies; a measure named alone is refused
        print(f"bridgeeval: svcca left out: it needs {args.cca_dim} dimensions (--cca-dim), the narrowest set has "
              f"{narrowest}", file=sys.stderr)
        names = tuple(n for n in names if n != "svcca")
    options = check_measure_options({"rbf_sigma": args.rbf_sigma, "cca_dim": args.cca_dim, **dict(args.option)})
    sets = _representations(args, values)
    reasons: dict[str, str] = {}
    report = alignment_report(sets, names, args.k, options=options, reasons=reasons)
    by_pair = {pair: {name: report[f"{name}_{pair}"] for name in names}
               for pair in PAIRS if f"{names[0]}_{pair}" in report}
    extras = _extras(args, sets, names, report, options)

    def layout(flat: dict, pair: str) -> dict:  # one pair's results by measure name
        return _as_json({name: flat[f"{name}_{pair}"] for name in names})

    if args.json:
        if len(by_pair) == 1:  # two files: one key per measure
            reasons = {key.removesuffix("_input_target"): why for key, why in reasons.items()}
            out = {**meta, **by_pair["input_target"],
                   **{kind: layout(flat, "input_target") for kind, flat in extras.items()}}
            print(dumps(_with_reasons(out, reasons)))
        else:
            out = {**meta, **by_pair,
                   **{kind: {pair: layout(flat, pair) for pair in by_pair} for kind, flat in extras.items()}}
            print(dumps(_with_reasons(out, _by_pair_keys(reasons, names))))
        return 0
    _print_measures(f"bridgeeval score (N={meta['n']}, k={args.k}, {args.metric})", by_pair,
                    {name: MEASURES[name].higher_is_better for name in names})
    labels = {"input_target": "(X, Y)", "input_mapped": "(X, f(X))", "target_mapped": "(Y, f(X))"}
    _print_extras(args, extras, {f"{name}_{pair}": (f"{name} {labels[pair]}", by_pair[pair][name])
                                 for pair in by_pair for name in names})
    _print_reasons(reasons)
    return 0


def _by_pair_keys(reasons: dict[str, str], names) -> dict[str, str]:
    """``cka_input_mapped`` -> ``input_mapped.cka``: the path of the value in the JSON by pair."""
    out = {}
    for key, why in reasons.items():
        name = next(n for n in sorted(names, key=len, reverse=True) if key.startswith(n + "_"))
        out[f"{key[len(name) + 1:]}.{name}"] = why
    return out


def _print_measures(title: str, by_pair: dict[str, dict[str, float]], higher: dict[str, bool]) -> None:
    from rich.console import Console
    from rich.table import Table

    labels = {"input_target": "(X, Y)", "input_mapped": "(X, f(X))", "target_mapped": "(Y, f(X))"}
    table = Table(title=title)
    table.add_column("measure")
    for pair in by_pair:
        table.add_column(labels[pair], justify="right")
    for name, up in higher.items():
        cells = [by_pair[p][name] for p in by_pair]
        table.add_row(name + ("" if up else " (lower: closer)"),
                      *[f"{v:.4f}" if math.isfinite(v) else "undefined" for v in cells])
    Console().print(table)


def _print_table(title: str, values: dict[str, float]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in values.items():
        table.add_row(key, f"{value:.4f}" if math.isfinite(value) else "undefined")
    Console().print(table)
