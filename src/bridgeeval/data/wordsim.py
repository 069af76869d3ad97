"""Word-similarity benchmarks: ``word1<TAB>word2<TAB>score`` files, with errors naming file and line."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bridgeeval.errors import BridgeEvalError

# Benchmarks that ship inside the gensim package (read offline, no download).
GENSIM_FILES = {"ws353": "wordsim353.tsv", "simlex": "simlex999.txt"}


@dataclass
class Benchmark:
    name: str
    pairs: list[tuple[str, str]]
    scores: np.ndarray
    source: str


def read_benchmark(path: str | os.PathLike, name: str | None = None) -> Benchmark:
    """Pairs and human ratings; ``#`` lines and blank lines are skipped; words are lower-cased."""
    path = Path(path)
    if not path.is_file():
        raise BridgeEvalError(f"{path}: no such benchmark file")
    pairs, scores = [], []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            fields = text.split("\t") if "\t" in text else text.split()
            if len(fields) < 3:
                raise BridgeEvalError(f"{path}, line {line_no}: expected word1, word2 and a score, got {text!r}")
            try:
                score = float(fields[2])
            except ValueError:
                raise BridgeEvalError(f"{path}, line {line_no}: score {fields[2]!r} is not a number") from None
            pairs.append((fields[0].lower(), fields[1].lower()))
            scores.append(score)
    if not pairs:
        raise BridgeEvalError(f"{path}: no word pairs")
    return Benchmark(name or path.stem, pairs, np.array(scores), str(path))


def gensim_benchmark(name: str) -> Benchmark:
    from gensim.test.utils import datapath

    return read_benchmark(datapath(GENSIM_FILES[name]), name)
