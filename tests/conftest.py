"""Shared fixtures: the real data in ../shared/data (read in place), brute-force references."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BRIDGEEVAL_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_file(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"shared data file {path} is not available")
    return path


@pytest.fixture(scope="session")
def iapr_paths():
    return shared_file("iaprtc", "TS_lang_biGRU.csv"), shared_file("iaprtc", "TS_vis_vgg128.csv")


def brute_knn(x, k: int, metric: str = "cosine", include_self: bool = False) -> np.ndarray:
    """float64 full distance matrix, sorted by (distance, index): the reference for knn_indices."""
    x = np.asarray(x, dtype=np.float64)
    if metric == "cosine":
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        dist = 0.5 * ((xn[:, None, :] - xn[None, :, :]) ** 2).sum(-1)
    else:
        dist = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(dist, 0.0 if include_self else np.inf)
    order = np.arange(len(x))
    return np.stack([np.lexsort((order, row))[:k] for row in dist])
