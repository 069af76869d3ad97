"""``PairedFeatures``: the one shape every data set takes before training or scoring."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bridgeeval.errors import BridgeEvalError

DIRECTIONS = ("text2image", "image2text")


@dataclass
class Modalities:
    """A data set as loaded: text and image features of the same items, in the same order."""

    name: str
    text: np.ndarray
    image: np.ndarray
    item_ids: list[str]
    labels: np.ndarray | None = None  # int [N] (one class) or bool [N, C] (multi-label)
    test_mask: np.ndarray | None = None  # bool [N]: the official test split, where one exists
    meta: dict = field(default_factory=dict)


@dataclass
class PairedFeatures:
    """Input X and target Y paired by row, with the items' classes and split."""

    name: str
    input: np.ndarray
    target: np.ndarray
    item_ids: list[str]
    labels: np.ndarray | None
    test_mask: np.ndarray | None
    meta: dict

    def __len__(self) -> int:
        return len(self.input)


def orient(data: Modalities, direction: str) -> PairedFeatures:
    """Applies the direction: ``text2image`` maps text (X) to images (Y); ``image2text`` the reverse."""
    if direction not in DIRECTIONS:
        raise BridgeEvalError(f"direction: unknown {direction!r}; choose one of {', '.join(DIRECTIONS)}")
    x, y = (data.text, data.image) if direction == "text2image" else (data.image, data.text)
    paired = PairedFeatures(
        name=data.name,
        input=np.ascontiguousarray(x, dtype=np.float32),
        target=np.ascontiguousarray(y, dtype=np.float32),
        item_ids=list(data.item_ids),
        labels=data.labels,
        test_mask=data.test_mask,
        meta={**data.meta, "direction": direction},
    )
    check_paired_features(paired)
    return paired


def check_paired_features(data: PairedFeatures) -> None:
    """Rejects mismatched row counts and non-finite values before any training starts."""
    n = {"input": len(data.input), "target": len(data.target), "item ids": len(data.item_ids)}
    if data.labels is not None:
        n["labels"] = len(data.labels)
    if len(set(n.values())) != 1:
        listing = ", ".join(f"{k} {v}" for k, v in n.items())
        raise BridgeEvalError(f"data set {data.name!r}: row counts differ ({listing})")
    for name in ("input", "target"):
        values = getattr(data, name)
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            raise BridgeEvalError(
                f"data set {data.name!r}: {name} row {int(np.argmax(bad))} has NaN or infinite values"
            )


def labels_from_id_lists(names: list[str], source: str) -> np.ndarray:
    """Multi-hot labels from space-separated class ids (the IAPR TC-12 files' first column)."""
    try:
        ids = [[int(tok) for tok in name.split()] for name in names]
    except ValueError:
        raise BridgeEvalError(f"{source}: first column must hold space-separated integer label ids") from None
    width = max((max(row) for row in ids if row), default=-1) + 1
    labels = np.zeros((len(ids), max(width, 1)), dtype=bool)
    for row, classes in enumerate(ids):
        labels[row, classes] = True
    return labels
