"""Reading feature matrices from users' files, with errors that name the file and line.

Formats: ``.npy``, ``.pt`` (a tensor, or a dict holding one), ``.csv`` (numeric, or with a first
column of labels or words), ``.txt``/``.vec`` word vectors (``word v1 v2 ...``, an optional
``N d`` header line), ``.parquet`` (numeric columns, optionally one text column of names).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bridgeeval.errors import BridgeEvalError

FORMATS = (".npy", ".pt", ".csv", ".txt", ".vec", ".parquet")


@dataclass
class Matrix:
    """Rows of a feature file: ``values[N, d]`` and, where the file has them, a name per row."""

    values: np.ndarray
    names: list[str] | None = None


def read_matrix(path: str | os.PathLike) -> Matrix:
    path = Path(path)
    if not path.is_file():
        raise BridgeEvalError(f"{path}: no such file")
    suffix = path.suffix.lower()
    readers = {
        ".npy": _read_npy,
        ".pt": _read_pt,
        ".csv": lambda p: read_delimited(p, ","),
        ".txt": lambda p: read_delimited(p, None, has_names=True),
        ".vec": lambda p: read_delimited(p, None, has_names=True),
        ".parquet": _read_parquet,
    }
    if suffix not in readers:
        raise BridgeEvalError(f"{path}: unknown format {suffix or '(no extension)'}; use one of {', '.join(FORMATS)}")
    matrix = readers[suffix](path)
    if matrix.values.ndim != 2 or matrix.values.shape[0] == 0 or matrix.values.shape[1] == 0:
        raise BridgeEvalError(f"{path}: expected a non-empty 2-D matrix, got shape {matrix.values.shape}")
    return matrix


def _read_npy(path: Path) -> Matrix:
    try:
        values = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise BridgeEvalError(f"{path}: not a readable .npy array ({err})") from None
    if not np.issubdtype(values.dtype, np.number):
        raise BridgeEvalError(f"{path}: array of dtype {values.dtype} is not numeric")
    return Matrix(np.asarray(values))


def _read_pt(path: Path) -> Matrix:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for bad files
        raise BridgeEvalError(f"{path}: not a readable torch file ({type(err).__name__})") from None
    if isinstance(obj, dict):
        tensors = [v for v in obj.values() if isinstance(v, torch.Tensor)]
        if len(tensors) != 1:
            raise BridgeEvalError(f"{path}: a dict must hold exactly one tensor, found {len(tensors)}")
        obj = tensors[0]
    if not isinstance(obj, torch.Tensor):
        raise BridgeEvalError(f"{path}: holds a {type(obj).__name__}, not a tensor")
    return Matrix(obj.detach().double().numpy() if obj.dtype == torch.bfloat16 else obj.detach().numpy())


def _read_parquet(path: Path) -> Matrix:
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises its own types
        raise BridgeEvalError(f"{path}: not a readable parquet file ({type(err).__name__})") from None
    text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    names = None
    if len(text) == 1 and frame[text[0]].map(lambda v: isinstance(v, (list, np.ndarray))).all():
        values = np.stack(frame[text[0]].to_numpy()).astype(np.float64)
        return Matrix(values)
    if len(text) > 1:
        raise BridgeEvalError(f"{path}: more than one non-numeric column ({', '.join(map(str, text))})")
    if text:
        names = frame[text[0]].astype(str).tolist()
        frame = frame.drop(columns=text)
    return Matrix(frame.to_numpy(dtype=np.float64), names)


def read_delimited(path: Path, sep: str | None, has_names: bool | None = None) -> Matrix:
    """Rows of numbers, optionally led by one name column; errors name the file and line.

    ``has_names=None`` decides from the first row: a non-numeric first field is a name.
    """
    rows, names = [], []
    width = None
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, start=1):
            fields = line.rstrip("\n\r").split(sep)
            if not line.strip():
                continue
            if sep is None and line_no == 1 and len(fields) == 2 and all(f.isdigit() for f in fields):
                continue  # word2vec text header "N d"
            if has_names is None:
                has_names = not _is_number(fields[0])
            name, numbers = (fields[0], fields[1:]) if has_names else (None, fields)
            if width is None:
                width = len(numbers)
            elif len(numbers) != width:
                raise BridgeEvalError(f"{path}, line {line_no}: {len(numbers)} values where earlier lines have {width}")
            try:
                rows.append(np.array(numbers, dtype=np.float64))
            except ValueError:
                bad = next(i for i, f in enumerate(numbers) if not _is_number(f))
                column = bad + 1 + bool(has_names)
                raise BridgeEvalError(
                    f"{path}, line {line_no}, column {column}: {numbers[bad]!r} is not a number"
                ) from None
            names.append(name)
    if not rows:
        raise BridgeEvalError(f"{path}: empty file")
    return Matrix(np.stack(rows), names if has_names else None)


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True
