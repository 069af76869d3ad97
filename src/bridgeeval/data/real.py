"""Loaders of the downloadable real data sets (from the verified cache of ``bridgeeval data``)."""

from __future__ import annotations

import numpy as np

from bridgeeval.data.download import cached_path, verify
from bridgeeval.data.formats import read_delimited
from bridgeeval.data.paired import Modalities, labels_from_id_lists
from bridgeeval.errors import BridgeEvalError


def _iapr_split(prefix: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    folder = cached_path("iaprtc" if prefix == "TS" else "iaprtc_train")  # verifies the entry once
    image = read_delimited(folder / f"{prefix}_vis_vgg128.csv", ",", has_names=True)
    text = read_delimited(folder / f"{prefix}_lang_biGRU.csv", ",", has_names=True)
    if image.names != text.names or len(image.values) != len(text.values):
        raise BridgeEvalError(f"IAPR TC-12 {prefix}: image and text files are not aligned row by row")
    return text.values, image.values, image.names


def load_iaprtc(cfg: dict) -> Modalities:
    """Test split (1,962 pairs) and, where cached, the training split: then train/test as in the paper."""
    text, image, names = _iapr_split("TS")
    test_mask, note = None, "test split only: k-fold cross-validation on it"
    if all(ok for ok, _ in verify("iaprtc_train").values()):
        tr_text, tr_image, tr_names = _iapr_split("TR")
        text, image, names = np.vstack([tr_text, text]), np.vstack([tr_image, image]), tr_names + names
        test_mask = np.r_[np.zeros(len(tr_names), bool), np.ones(len(text) - len(tr_names), bool)]
        note = "official train/test split"
    labels = labels_from_id_lists(names, "IAPR TC-12 label column")
    return Modalities(
        "iaprtc",
        text,
        image,
        [f"iapr{i}" for i in range(len(names))],
        labels,
        test_mask,
        {"text_features": "bigru", "image_features": "vgg128", "protocol_note": note},
    )


def load_wiki(cfg: dict) -> Modalities:
    """wiki.mat: X1 image (128 x N), X2 text (100 x N), Y one-hot classes, split (1-based indices)."""
    import scipy.io

    path = cached_path("wiki", "wiki.mat")
    try:
        data = scipy.io.loadmat(path)["data"][0, 0]
        image, text, onehot = data["X1"].T, data["X2"].T, data["Y"].T
        split = data["split"][0, 0]
        test_idx = np.asarray(split["ind_test"]).ravel().astype(int) - 1
    except (KeyError, IndexError, ValueError) as err:
        raise BridgeEvalError(f"{path}: not the expected Wikipedia data layout ({err})") from None
    test_mask = np.zeros(len(image), bool)
    test_mask[test_idx] = True
    return Modalities(
        "wiki",
        text,
        image,
        [f"wiki{i}" for i in range(len(image))],
        onehot.argmax(axis=1),
        test_mask,
        {"text_features": "wiki_text100", "image_features": "wiki_image128"},
    )


IMAGENET_TEXT = ("glove", "word2vec")
IMAGENET_IMAGE = ("vgg128", "resnet")


def load_imagenet(cfg: dict) -> Modalities:
    """The authors' concept features added by hand: one CSV per feature (``word,v1,v2,...``), the
    file named after the feature (e.g. ``glove.csv``, ``vgg128.csv``); items paired by word."""
    folder = cached_path("imagenet")
    files = {p.stem.lower(): p for p in folder.glob("*.csv")}

    def pick(kind: str):
        match = [p for stem, p in files.items() if kind in stem]
        if not match:
            raise BridgeEvalError(f"imagenet: no {kind} CSV among the added files ({', '.join(files) or 'none'})")
        return read_delimited(match[0], ",", has_names=True)

    text, image = pick(cfg["text_features"]), pick(cfg["image_features"])
    where = {w: i for i, w in enumerate(image.names)}
    words = [w for w in text.names if w in where]
    if not words:
        raise BridgeEvalError("imagenet: the text and image files share no words")
    t_rows = {w: i for i, w in enumerate(text.names)}
    return Modalities(
        "imagenet",
        text.values[[t_rows[w] for w in words]],
        image.values[[where[w] for w in words]],
        words,
        None,
        None,
        {"text_features": cfg["text_features"], "image_features": cfg["image_features"]},
    )
