"""``bridgeeval reproduce table1``: the paper's Table 1, hyperparameters selected by its grid."""

from __future__ import annotations

from bridgeeval.cli.options import positive_int
from bridgeeval.errors import BridgeEvalError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "reproduce",
        help="the paper's Table 1 end to end: grid selection by CV, evaluation, the table",
        description="For every cell (data set x direction x mapper, and --depths/--losses for the appendix "
        "layouts): the paper's grid by 5-fold CV loss on the training items (one resumable Optuna study per "
        "cell), the selected configuration evaluated under the released code's protocol, and Table 1 with "
        "the paper's values and item-level tests. A rerun skips what is done.",
    )
    p.add_argument("table", choices=["table1"], help="what to reproduce")
    p.add_argument("--datasets", default=None,
                   help="comma-separated (default: imagenet1k,iaprtc,wiki, those not fetched skipped with a note)")
    p.add_argument("--directions", default="text2image,image2text", help="comma-separated directions")
    p.add_argument("--mappers", default="lin,nn", help="comma-separated mappers")
    p.add_argument("--depths", default="1", help="hidden layers of nn, comma-separated (appendix: 1,3,5)")
    p.add_argument("--losses", default="mse", help="comma-separated losses (appendix: mse,cosine,max_margin)")
    p.add_argument("--quick", action="store_true",
                   help="2 grid points a cell, 3-fold selection, 3 seeds (the paper: 60 or 3 points, 5 folds, 5 seeds)")
    p.add_argument("--seeds", type=positive_int, default=None,
                   help="seeds per cell on data sets with an official split (default 5; 3 with --quick)")
    p.add_argument("--out", default="outputs/reproduce", help="output folder (default outputs/reproduce)")
    p.add_argument("--app", default=None, help="train.py to run (default: the checkout's)")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="a train.py override for every job, e.g. hydra/launcher=slurm (repeatable)")
    p.set_defaults(handler=_reproduce)


def _reproduce(args) -> int:
    from pathlib import Path

    from bridgeeval.cli.options import check_writable_target
    from bridgeeval.reports.reproduce import LOCAL_DATASETS, Reproduction, available, cells_of, find_app

    check_writable_target(Path(args.out) / "table1.md", "--out")
    app = find_app(args.app)
    names = [d for d in (args.datasets or ",".join(LOCAL_DATASETS)).split(",") if d]
    datasets = available(names, asked=args.datasets is not None)
    if not datasets:
        raise BridgeEvalError("reproduce: no data set available (bridgeeval data fetch iaprtc wiki)")
    try:
        depths = [int(d) for d in args.depths.split(",") if d]
    except ValueError:
        raise BridgeEvalError(f"--depths={args.depths!r}: comma-separated whole numbers, e.g. 1,3,5") from None
    split = lambda text: [x for x in text.split(",") if x]  # noqa: E731
    cells = cells_of(datasets, split(args.directions), split(args.mappers), depths, split(args.losses))
    Reproduction(Path(args.out), app, quick=args.quick, seeds=args.seeds, extra=args.overrides).run(cells)
    return 0
