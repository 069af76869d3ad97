"""``bridgeeval sweep best|status``: Optuna studies of ``train.py hparams_search=...``."""

from __future__ import annotations

from bridgeeval.jsonout import dumps
from bridgeeval.sweeps.settings import FORMS, default_storage


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="inspect Optuna studies of `train.py hparams_search=...`")
    verbs = p.add_subparsers(title="sweep commands")
    for verb, helptext in (
        ("best", "the best trial: its params, cross-validated metrics and a command that retrains it once"),
        ("status", "progress: counts by state, trials in flight with worker and heartbeat, failures, time left"),
    ):
        v = verbs.add_parser(verb, help=helptext)
        v.add_argument("study", help="study name (hydra.sweeper.study_name)")
        v.add_argument(
            "--storage",
            default=None,
            help=f"{FORMS} (default: {default_storage('STUDY')}, where the sweeps in sweeps/ keep their studies)",
        )
        v.add_argument("--json", action="store_true", help="print JSON")
        v.set_defaults(handler=_sweep_best if verb == "best" else _sweep_status)
    p.set_defaults(handler=lambda args: p.print_help() or 2)


def _sweep_best(args) -> int:
    from bridgeeval.sweeps.best import format_summary, load, summary

    info = summary(load(args.study, args.storage))
    print(dumps(info) if args.json else format_summary(info))
    return 0


def _sweep_status(args) -> int:
    from bridgeeval.sweeps.best import format_status, load, status

    info = status(load(args.study, args.storage))
    print(dumps(info) if args.json else format_status(info))
    return 0
