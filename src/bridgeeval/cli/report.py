"""``bridgeeval report`` (Table 1) and ``bridgeeval plot`` (learning curves, sweeps)."""

from __future__ import annotations

import sys

from bridgeeval.cli.options import check_not_an_input, check_writable_target, positive_int, probability
from bridgeeval.errors import BridgeEvalError
from bridgeeval.jsonout import dumps


def add_parser(sub) -> None:
    _add_report(sub)
    _add_plot(sub)


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
    p.add_argument("--format", choices=["markdown", "csv", "latex", "json"], default="markdown", help="table format (default markdown)")
    p.add_argument("--out", default=None, help="write to this file (atomically) instead of the terminal")
    p.add_argument("--alpha", type=probability, default=0.001, help="significance level after Bonferroni (paper: 0.001)")
    p.add_argument("--no-paper", action="store_true", help="leave out the paper's figures")
    p.add_argument(
        "--evaluation", choices=["auto", "fold", "pooled"], default="auto",
        help="fold: each validation fold's values; pooled: out-of-fold predictions evaluated over the whole set; "
        "auto (default): pooled when every job ran with cv.evaluate=pooled, else fold",
    )
    p.add_argument(
        "--each-trial", action="store_true", help="a sweep's every trial as its own row (default: each study's best)"
    )
    p.add_argument("--figures", default=None, metavar="DIR", help="also write the learning-curve figures here")
    p.add_argument(
        "--measures", default=None, metavar="LIST",
        help="alignment measures the jobs logged (metrics.measures), comma-separated, shown beside mNNO (e.g. cka,cknna)",
    )
    p.add_argument("--null", type=positive_int, default=None, metavar="K",
                   help="markdown: each job with mapped.npy also calibrated against a permutation null of K shuffles, "
                   "with retrieval plain and by CSLS")
    p.add_argument("--null-alpha", type=probability, default=0.05, help="level of the null's threshold (default 0.05)")
    p.add_argument("--bootstrap", type=positive_int, default=None, metavar="B",
                   help="markdown: each job with mapped.npy also gets bootstrap intervals over items (B resamples) "
                   "for mNNO and the --measures")
    p.add_argument("--level", type=probability, default=0.95, help="the --bootstrap intervals' level (default 0.95)")
    p.set_defaults(handler=_report)


def _collect(paths: list) -> list:
    """The finished jobs under ``paths``; each folder skipped is named on stderr."""
    from bridgeeval.reports.collect import collect_jobs

    jobs, problems = collect_jobs(paths)
    for problem in problems:
        print(f"bridgeeval: {problem}", file=sys.stderr)
    return jobs


def _say_best_trials_only(jobs) -> None:
    """A sweep's trials are shown as its best one: said, with how to see them all."""
    from bridgeeval.reports.collect import best_trials_only

    swept = [j for j in jobs if j.study]
    for best in best_trials_only(swept):
        n = sum(j.study == best.study for j in swept)
        if n > 1:
            print(f"bridgeeval: study {best.study}: {n} trials, shown as its best ({best.path}); "
                  "--each-trial shows every trial", file=sys.stderr)
        epoch, budget = best.record.values.get("best_epoch"), best.record.values.get("epoch_budget")
        if epoch and budget and epoch < budget:
            print(f"bridgeeval: study {best.study}: its trials ran to their {budget:.0f}-epoch budget, shown here; "
                  f"CV chose {epoch:.0f} epochs (`bridgeeval sweep best {best.study}` retrains there)",
                  file=sys.stderr)


def _report(args) -> int:
    from bridgeeval.reports.table1 import build_table1

    paths = list(args.paths) + [_best_trial_dir(name, args.storage) for name in args.study]
    if not paths:
        raise BridgeEvalError("report: give run folders or --study")
    from pathlib import Path

    if not any(Path(p).exists() for p in paths):
        raise BridgeEvalError(f"{', '.join(map(str, paths))}: no such file or folder")
    if args.out:
        check_not_an_input(args.out, "--out")
        check_writable_target(args.out, "--out")
    if args.figures:
        check_writable_target(args.figures, "--figures")
    jobs = _collect(paths)
    if not jobs:
        raise BridgeEvalError(f"no finished job (metrics.json) under {', '.join(map(str, paths))}")
    if args.evaluation == "auto":
        args.evaluation = "pooled" if all(j.record.evaluate == "pooled" for j in jobs) else "fold"
    if args.evaluation == "pooled":
        without = [j for j in jobs if not j.has_pooled()]
        for job in without:
            print(f"bridgeeval: {job.path}: no pooled evaluation (one fold only, or an older job), skipped",
                  file=sys.stderr)
        jobs = [j for j in jobs if j.has_pooled()]
        if not jobs:
            raise BridgeEvalError("--evaluation pooled: no job has a pooled evaluation (it needs every fold in one job)")
    measures = _measures(args.measures, jobs)
    if not args.each_trial:
        _say_best_trials_only(jobs)
    result = build_table1(jobs, alpha=args.alpha, with_paper=not args.no_paper, each_trial=args.each_trial,
                          evaluation=args.evaluation, measures=measures)
    text = _render_report(result, args.format)
    if args.format == "markdown":  # trained linear maps beside the closed form, where both ran
        from bridgeeval.reports.closed_form import closed_form_gaps, gaps_markdown

        gaps = closed_form_gaps(jobs, args.evaluation)
        text += "\n" + gaps_markdown(gaps) if gaps else ""
        text += _calibrated(jobs, args) + _intervals(jobs, args, measures)
    elif args.null is not None or args.bootstrap is not None:
        raise BridgeEvalError("--null and --bootstrap add markdown tables: leave out --format, or use "
                              "bridgeeval score --null/--bootstrap --json")
    if args.out:
        from bridgeeval.files import write_text_atomic

        write_text_atomic(args.out, text)
        print(f"wrote {args.out} ({len(jobs)} jobs)")
    elif args.format == "markdown" and sys.stdout.isatty():
        from rich.console import Console
        from rich.markdown import Markdown

        Console().print(Markdown(text))
    else:
        print(text, end="")
    if args.figures:
        from pathlib import Path

        from bridgeeval.reports.figures import plot_jobs

        for path in plot_jobs(jobs, Path(args.figures) / "curves"):
            print(f"wrote {path}")
    holds = "holds" if result.finding_holds() else "does NOT hold"
    n = len(result.comparisons)
    where = "in the one cell" if n == 1 else f"in all {n} cells"
    print(f"mNNO(X,f(X)) > mNNO(Y,f(X)) {holds} {where}", file=sys.stderr)
    return 0


def _calibrated(jobs: list, args) -> str:
    """The --null table, or a line saying why no job could have one."""
    if args.null is None:
        return ""
    from bridgeeval.reports.calibrated import calibrated_markdown, calibrated_rows

    rows = calibrated_rows(jobs, args.null, args.null_alpha)
    if not rows:
        print("bridgeeval: --null: no job kept its mapped vectors (mapped.npy: a pooled evaluation over all folds)",
              file=sys.stderr)
        return ""
    return "\n" + calibrated_markdown(rows)


def _intervals(jobs: list, args, measures: tuple[str, ...]) -> str:
    """The --bootstrap table, or a line saying why no job could have one."""
    if args.bootstrap is None:
        return ""
    from bridgeeval.metrics.bootstrap import check_bootstrap_options
    from bridgeeval.reports.calibrated import interval_rows, intervals_markdown

    check_bootstrap_options(args.bootstrap, args.level)
    rows = interval_rows(jobs, measures, args.bootstrap, args.level)
    if not rows:
        print("bridgeeval: --bootstrap: no job kept its mapped vectors (mapped.npy: a pooled evaluation over all "
              "folds)", file=sys.stderr)
        return ""
    return "\n" + intervals_markdown(rows, measures)


def _measures(text: str | None, jobs: list) -> tuple[str, ...]:
    """The --measures names, checked; one that no job logged is named on stderr (its cells show '-')."""
    if not text:
        return ()
    from bridgeeval.metrics.measures import check_measures

    names = check_measures(n.strip() for n in text.split(",") if n.strip())
    for name in names:
        if name != "mnno" and not any(f"val/{name}_input_mapped" in j.record.values for j in jobs):
            print(f"bridgeeval: no job logged {name} (train with metrics.measures=[mnno,{name}])", file=sys.stderr)
    return names


def _render_report(result, fmt: str) -> str:
    if fmt == "markdown":
        return result.table.markdown()
    if fmt == "latex":
        return result.table.latex()
    records = result.records()
    if fmt == "json":
        return dumps(records) + "\n"
    import csv
    import io

    buffer = io.StringIO()
    columns = [k for k in records[0] if k != "jobs"]
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


def _best_trial_dir(name: str, storage: str | None) -> str:
    from bridgeeval.sweeps.best import load

    study = load(name, storage)
    if len(study.directions) > 1:
        raise BridgeEvalError(f"study {name!r} has {len(study.directions)} objectives and no single best trial; "
                              f"`bridgeeval sweep best {name}` lists its Pareto front, whose job folders report takes")
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
        "finished trials with the best so far, and the importance of the hyperparameters that varied, in "
        "one figure. Each figure is written at --out as PNG, with a PDF of the same name beside it.",
    )
    p.add_argument("path", nargs="?", help="a job folder or a multirun folder")
    p.add_argument("--study", default=None, help="an Optuna study name (instead of a folder)")
    p.add_argument("--storage", default=None, help="the study's storage URL (default: the sweeps' own, as `sweep best`)")
    p.add_argument("--out", required=True, help="figure path (PNG; a PDF is written beside it)")
    p.set_defaults(handler=_plot)


def _plot(args) -> int:
    from pathlib import Path

    from bridgeeval.reports import figures

    check_not_an_input(args.out, "--out")
    check_writable_target(args.out, "--out")
    if args.study:
        from bridgeeval.sweeps.best import load

        written = figures.plot_study(load(args.study, args.storage), Path(args.out))
    elif args.path and (Path(args.path) / "history.csv").is_file():
        written = figures.plot_run(Path(args.path), Path(args.out))
    elif args.path and Path(args.path).is_dir():
        written = figures.plot_jobs(_collect([args.path]), Path(args.out))
    else:
        raise BridgeEvalError(f"plot: {args.path!r} is not a run folder (give a folder or --study)")
    for path in written:
        print(f"wrote {path}")
    return 0
