"""``bridgeeval data list|fetch|verify|path|add``: the data cache."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("data", help="download, verify and register data sets (cache: $BRIDGEEVAL_DATA)")
    verbs = p.add_subparsers(title="data commands")
    v = verbs.add_parser("list", help="every data set, and whether it is cached and verified")
    v.set_defaults(handler=_data_list)
    v = verbs.add_parser("fetch", help="download data sets (verified; a second fetch is a no-op)")
    v.add_argument("names", nargs="+", help="data set names, e.g. iaprtc wiki men (see `bridgeeval data list`)")
    v.add_argument("--mirror", default=None, help="base URL replacing the upstream hosts (file:// or http://)")
    v.set_defaults(handler=_data_fetch)
    v = verbs.add_parser("verify", help="check sizes and checksums of cached files")
    v.add_argument("names", nargs="*", help="data set names (default: every cached one)")
    v.set_defaults(handler=_data_verify)
    v = verbs.add_parser("path", help="print the cache folder of a data set")
    v.add_argument("name", help="a data set name, e.g. iaprtc")
    v.set_defaults(handler=_data_path)
    v = verbs.add_parser(
        "describe", help="a data set's size, classes and split, and each feature set's class-retrieval mAP"
    )
    v.add_argument("name", help="a data set name (dataset=...), e.g. iaprtc, wiki, imagenet1k")
    v.add_argument("--metric", choices=["cosine", "euclidean"], default="cosine", help="retrieval similarity (default cosine)")
    v.set_defaults(handler=_data_describe)
    v = verbs.add_parser("add", help="register files you downloaded by hand (format-checked)")
    v.add_argument("name", help="the data set the files belong to, e.g. iaprtc")
    v.add_argument("--from", dest="source", required=True, help="folder holding the files")
    v.set_defaults(handler=_data_add)
    p.set_defaults(handler=lambda args: p.print_help() or 2)


def _data_list(args) -> int:
    from bridgeeval.data import download
    from bridgeeval.data.registry import ENTRIES

    print(f"cache: {download.cache_dir()}")
    for name, e in sorted(ENTRIES.items()):
        state = download.state_of(name)
        how = " (manual: data add)" if e.manual else (" (optional)" if e.optional else "")
        print(f"{name:14s} {state:9s} {e.kind:9s} {e.description}{how}")
    return 0


def _data_fetch(args) -> int:
    from bridgeeval.data import download
    from bridgeeval.data.registry import entry
    from bridgeeval.errors import BridgeEvalError

    for name in args.names:
        entry(name)  # unknown names fail before any download
    for name in args.names:
        try:
            folder = download.fetch(name, mirror=args.mirror)
        except BridgeEvalError as err:
            if not str(err).startswith("cannot download") or args.mirror:
                raise
            raise BridgeEvalError(f"{err}; without a network, copy the files in with `bridgeeval data add {name} "
                                  "--from FOLDER`, or fetch from a copy with --mirror URL") from None
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


# The paper's Appendix B: class-based retrieval mAP of its feature sets (Collell & Moens 2018).
PAPER_RETRIEVAL_MAP = {("iaprtc", "bigru"): 0.77, ("iaprtc", "vgg128"): 0.46, ("wiki", "bigru"): 0.77,
                       ("wiki", "vgg128"): 0.21}


def _data_describe(args) -> int:
    """The feature check of the paper's Appendix B: how well each feature set alone retrieves
    items of the query's class (the paper's features: IAPR biGRU 0.77, VGG-128 0.46)."""
    import numpy as np

    from bridgeeval.data.datasets import load_paired
    from bridgeeval.metrics.retrieval import class_retrieval_map

    data = load_paired({"name": args.name}, None, "text2image")
    meta = data.meta
    print(f"{args.name}: {len(data)} pairs, text {data.input.shape[1]}-d ({meta.get('text_features')}), "
          f"image {data.target.shape[1]}-d ({meta.get('image_features')})")
    if data.test_mask is not None:
        print(f"official split: {int((~data.test_mask).sum())} train, {int(data.test_mask.sum())} test")
    if data.labels is None:
        print("no class labels: retrieval mAP needs them")
        return 0
    labels = np.asarray(data.labels)
    classes = labels.shape[1] if labels.ndim == 2 else len(np.unique(labels))
    print(f"classes: {classes}{' (multi-label)' if labels.ndim == 2 else ''}")
    for kind, values in (("text", data.input), ("image", data.target)):
        feature = meta.get(f"{kind}_features")
        value = class_retrieval_map(values, labels, metric=args.metric)
        paper = PAPER_RETRIEVAL_MAP.get((args.name, feature))
        note = f" (paper, Appendix B: {paper:.2f})" if paper is not None else ""
        print(f"class-retrieval mAP, {kind} {feature}: {value:.3f}{note}")
    return 0


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
