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
    p.add_argument("--mappers", default="lin,nn,lstsq",
                   help="comma-separated mappers (lstsq: the closed-form linear map trained lin is read against)")
    p.add_argument("--depths", default="1", help="hidden layers of nn, comma-separated (appendix: 1,3,5)")
    p.add_argument("--losses", default="mse", help="comma-separated losses (appendix: mse,cosine,max_margin)")
    p.add_argument("--quick", action="store_true",
                   help="2 grid points a cell, 3-fold selection, 3 seeds (the paper: 60 or 3 points, 5 folds, 5 seeds)")
    p.add_argument("--seeds", type=positive_int, default=None,
                   help="seeds per cell on data sets with an official split (default 5; 3 with --quick)")
    p.add_argument("--null", type=int, default=None, metavar="K",
                   help="permutations of each cell's null for the calibrated table (default 1000; 100 with --quick; "
                   "0: none)")
    p.add_argument("--out", default="outputs/reproduce", help="output folder (default outputs/reproduce)")
    p.add_argument("--app", default=None, help="train.py to run (default: the checkout's)")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="a train.py override for every job, e.g. hydra/launcher=slurm (repeatable)")
    p.set_defaults(handler=_reproduce)


def _reproduce(args) -> int:
    from pathlib import Path

    from bridgeeval.cli.options import check_writable_target
    from bridgeeval.data.paired import DIRECTIONS
    from bridgeeval.models.losses import LOSSES
    from bridgeeval.models.mappers import MAPPERS, depth_problem
    from bridgeeval.reports.reproduce import LOCAL_DATASETS, Reproduction, available, cells_of, find_app

    # Every argument checked before a folder is made or a train.py process started.
    directions = _choices("--directions", args.directions, DIRECTIONS)
    mappers = _choices("--mappers", args.mappers, MAPPERS)
    losses = _choices("--losses", args.losses, LOSSES)
    depths = _depths(args.depths)
    app = find_app(args.app)
    check_writable_target(Path(args.out) / "table1.md", "--out")
    names = _choices("--datasets", args.datasets, None) if args.datasets is not None else list(LOCAL_DATASETS)
    datasets = available(names, asked=args.datasets is not None)
    if not datasets:
        raise BridgeEvalError("reproduce: no data set available (bridgeeval data fetch iaprtc wiki)")
    cells = cells_of(datasets, directions, mappers, depths, losses)
    if not cells:
        raise BridgeEvalError(f"--mappers {args.mappers} with --depths {args.depths}: "
                              f"{depth_problem(mappers[0], depths[0])}; add 1 to --depths or nn to --mappers")
    if args.null is not None and args.null < 0:
        raise BridgeEvalError(f"--null {args.null}: give a number of permutations, or 0 for none")
    Reproduction(Path(args.out), app, quick=args.quick, seeds=args.seeds, extra=args.overrides,
                 null=args.null).run(cells)
    return 0


def _choices(option: str, text: str, allowed) -> list[str]:
    """A comma-separated list: at least one name, each one of ``allowed`` (any, where None)."""
    names = list(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
    if not names:
        raise BridgeEvalError(f"{option}={text!r}: name at least one" + (f" of {', '.join(allowed)}" if allowed else ""))
    unknown = [n for n in names if allowed is not None and n not in allowed]
    if unknown:
        raise BridgeEvalError(f"{option}: unknown {unknown[0]!r}; choose from {', '.join(allowed)}")
    return names


def _depths(text: str) -> list[int]:
    try:
        depths = [int(d) for d in _choices("--depths", text, None)]
    except ValueError:
        depths = []
    if not depths or min(depths) < 1:
        raise BridgeEvalError(f"--depths={text!r}: comma-separated whole numbers of hidden layers, 1 or more, e.g. 1,3,5")
    return depths
