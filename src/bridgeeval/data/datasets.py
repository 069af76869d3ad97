"""From a ``dataset`` config to ``PairedFeatures``: the one list of data sets, and user files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from bridgeeval.data import builtin, real
from bridgeeval.data.download import sha256_of
from bridgeeval.data.formats import read_matrix
from bridgeeval.data.paired import Modalities, PairedFeatures, check_paired_features, labels_from_id_lists, orient
from bridgeeval.errors import BridgeEvalError

# name -> (loader, text features, image features); the first of each is the default.
DATASETS: dict[str, tuple[Callable[..., Modalities], tuple[str, ...], tuple[str, ...]]] = {
    "imagenet1k": (lambda cfg: builtin.load_imagenet1k(), ("glove50",), ("efficientnet_lite0",)),
    "iaprtc": (real.load_iaprtc, ("bigru",), ("vgg128",)),
    "wiki": (real.load_wiki, ("wiki_text100",), ("wiki_image128",)),
    "imagenet": (real.load_imagenet, real.IMAGENET_TEXT, real.IMAGENET_IMAGE),
}


def register(name: str, loader: Callable[..., Modalities], text: tuple[str, ...], image: tuple[str, ...]) -> None:
    DATASETS[name] = (loader, text, image)


def known_datasets() -> list[str]:
    return sorted([*DATASETS, "custom"])


def load_paired(dataset: dict, features: dict | None = None, direction: str = "text2image") -> PairedFeatures:
    """Loads the configured data set and orients it (X = input modality, Y = target)."""
    name = dataset.get("name")
    if name == "custom":
        return _limit(load_custom(dataset), dataset.get("limit"))
    if name not in DATASETS:
        raise BridgeEvalError(f"dataset: unknown {name!r}; known data sets: {', '.join(known_datasets())}")
    loader = DATASETS[name][0]
    text, image = chosen_features(name, features)
    data = loader({**dataset, "text_features": text, "image_features": image})
    return _limit(orient(data, direction), dataset.get("limit"))


def chosen_features(name: str, features: dict | None) -> tuple[str, str]:
    """The (text, image) features of a named data set: the configured ones, each checked against
    what the data set has, or its defaults."""
    _, texts, images = DATASETS[name]
    features = features or {}
    text = features.get("text") or texts[0]
    image = features.get("image") or images[0]
    for kind, chosen, available in (("text", text, texts), ("image", image, images)):
        if chosen not in available:
            raise BridgeEvalError(
                f"features.{kind}={chosen!r} is not available for dataset={name}; it has {', '.join(available)}"
            )
    return text, image


def load_custom(cfg: dict) -> PairedFeatures:
    """Any user's paired files: ``input_path``, ``target_path``, optional ``labels`` and ``test_path``."""
    paths = {key: cfg.get(key) for key in ("input_path", "target_path")}
    for key, path in paths.items():
        if not path:
            raise BridgeEvalError(f"dataset=custom needs dataset.{key}=FILE")
    ids = cfg.get("id_column")
    x, y = read_matrix(paths["input_path"], ids), read_matrix(paths["target_path"], ids)
    labels = _custom_labels(cfg.get("labels"), x)
    test_mask = _custom_test_mask(cfg.get("test_path"), len(x.values))
    data = PairedFeatures(
        name="custom",
        input=np.ascontiguousarray(x.values, dtype=np.float32),
        target=np.ascontiguousarray(y.values, dtype=np.float32),
        item_ids=x.names or [str(i) for i in range(len(x.values))],
        labels=labels,
        test_mask=test_mask,
        # Paths and content: a report never pools runs on different files (or one file changed).
        meta={
            "input_path": str(paths["input_path"]),
            "target_path": str(paths["target_path"]),
            "input_sha256": sha256_of(Path(paths["input_path"])),
            "target_sha256": sha256_of(Path(paths["target_path"])),
        },
    )
    check_paired_features(data)
    return data


def _custom_test_mask(path, n: int) -> np.ndarray | None:
    """A column of 0/1 per item (1 = test), with both kinds present."""
    if not path:
        return None
    column = read_matrix(path, id_column=False).values
    if column.shape[1] != 1:
        raise BridgeEvalError(f"dataset.test_path={path}: {column.shape[1]} columns; give one 0/1 column")
    values = column[:, 0]
    if len(values) != n:
        raise BridgeEvalError(f"dataset.test_path={path}: {len(values)} rows, but the input has {n}")
    if not np.isin(values, (0, 1)).all():
        bad = values[~np.isin(values, (0, 1))][0]
        raise BridgeEvalError(f"dataset.test_path={path}: holds {bad:g}; only 0 (train) and 1 (test) are allowed")
    if values.all() or not values.any():
        kind = "test" if values.all() else "train"
        raise BridgeEvalError(f"dataset.test_path={path}: every row is {kind}; a split needs both 0 and 1 rows")
    return values.astype(bool)


def _custom_labels(spec, x) -> np.ndarray | None:
    if not spec:
        return None
    if spec == "first_column":
        if x.names is None:
            raise BridgeEvalError("dataset.labels=first_column: the input file has no leading label column")
        return labels_from_id_lists(x.names, "dataset.labels")
    path = Path(spec)
    if not path.is_file():
        raise BridgeEvalError(f"dataset.labels: {path}: no such file")
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return labels_from_id_lists(lines, str(path))


def _limit(data: PairedFeatures, limit: int | None) -> PairedFeatures:
    """The first ``limit`` items only (quick trials and tests)."""
    if not limit:
        return data
    cut = slice(0, int(limit))
    return PairedFeatures(
        name=data.name,
        input=data.input[cut],
        target=data.target[cut],
        item_ids=data.item_ids[cut],
        labels=None if data.labels is None else data.labels[cut],
        test_mask=None if data.test_mask is None else data.test_mask[cut],
        meta={**data.meta, "limit": int(limit)},
    )
