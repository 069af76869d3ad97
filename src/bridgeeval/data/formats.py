"""Reading feature matrices from users' files, with errors that name the file and line.

Formats: ``.npy``, ``.pt`` (a tensor, or a dict holding one), ``.csv`` (numeric, or with a first
column of labels or words), ``.txt``/``.vec`` word vectors (``word v1 v2 ...``, an optional
``N d`` header line), ``.parquet`` (numeric columns, optionally one text column of names).
"""

from __future__ import annotations

import codecs
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bridgeeval.errors import BridgeEvalError

log = logging.getLogger(__name__)

FORMATS = (".npy", ".pt", ".csv", ".txt", ".vec", ".parquet")


@dataclass
class Matrix:
    """Rows of a feature file: ``values[N, d]`` and, where the file has them, a name per row."""

    values: np.ndarray
    names: list[str] | None = None


# Header names that mark a first column of row ids or names rather than a feature.
ID_NAMES = frozenset({"", "id", "ids", "name", "names", "word", "words", "label", "labels", "item", "key", "index"})
_BINARY_PROBE = 8192


def read_matrix(path: str | os.PathLike, id_column: bool | None = None) -> Matrix:
    """A feature file as ``Matrix``; ``id_column``: ``None`` applies the rule in :func:`read_delimited`,
    ``True``/``False`` say whether the first column holds row ids or names."""
    path = Path(path)
    if path.is_dir():
        raise BridgeEvalError(f"{path}: is a folder, not a file")
    if not path.is_file():
        raise BridgeEvalError(f"{path}: no such file")
    suffix = path.suffix.lower()
    readers = {
        ".npy": _read_npy,
        ".pt": _read_pt,
        ".csv": lambda p: read_delimited(p, ",", has_names=id_column),
        ".txt": lambda p: read_delimited(p, None, has_names=True if id_column is None else id_column),
        ".vec": lambda p: read_delimited(p, None, has_names=True if id_column is None else id_column),
        ".parquet": lambda p: _read_parquet(p, id_column),
    }
    if suffix not in readers:
        raise BridgeEvalError(f"{path}: unknown format {suffix or '(no extension)'}; use one of {', '.join(FORMATS)}")
    matrix = readers[suffix](path)
    matrix.values = _as_features(path, matrix.values)
    if matrix.values.ndim != 2 or matrix.values.shape[0] == 0 or matrix.values.shape[1] == 0:
        raise BridgeEvalError(f"{path}: expected a non-empty 2-D matrix, got shape {matrix.values.shape}")
    return matrix


def _check_dtype(path: Path, dtype) -> None:
    if np.issubdtype(dtype, np.complexfloating):
        raise BridgeEvalError(f"{path}: complex values (dtype {dtype}); give real-valued features")
    if not np.issubdtype(dtype, np.number):
        raise BridgeEvalError(f"{path}: array of dtype {dtype} is not numeric")


def _as_features(path: Path, values: np.ndarray) -> np.ndarray:
    """Numbers in the machine's byte order: integers of any width as float64 (uint16 and uint64
    counts are ordinary data), big-endian arrays swapped; non-numeric arrays refused in one line."""
    values = np.asarray(values)
    _check_dtype(path, values.dtype)
    if not values.dtype.isnative:
        values = values.astype(values.dtype.newbyteorder("="))
    if np.issubdtype(values.dtype, np.integer):
        values = values.astype(np.float64)
    return values


_NPY_MAGIC = b"\x93NUMPY"


def _read_npy(path: Path) -> Matrix:
    with open(path, "rb") as handle:
        head = handle.read(len(_NPY_MAGIC))
    if not head:
        raise BridgeEvalError(f"{path}: empty file (0 bytes)")
    if head != _NPY_MAGIC:  # numpy would call a text or zip file "pickled (object) data"
        raise BridgeEvalError(f"{path}: not a .npy file (no NumPy header; write it with numpy.save)")
    try:
        # Mapped, not read: a set larger than comfortable in memory is paged in block by block by
        # the search (copy-on-write: the arrays stay writable and the file is never changed).
        values = np.load(path, allow_pickle=False, mmap_mode="c")
    except (ValueError, OSError, EOFError) as err:
        raise BridgeEvalError(f"{path}: not a readable .npy array ({err})") from None
    _check_dtype(path, values.dtype)
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
    if obj.is_complex():
        raise BridgeEvalError(f"{path}: complex values (dtype {obj.dtype}); give real-valued features")
    obj = obj.detach()
    if obj.layout != torch.strided:  # a sparse matrix of features is ordinary data
        obj = obj.to_dense()
    if obj.dtype == torch.bool:
        raise BridgeEvalError(f"{path}: a tensor of dtype {obj.dtype} is not numeric")
    if obj.is_floating_point() and obj.dtype not in (torch.float16, torch.float32, torch.float64):
        obj = obj.double()  # bfloat16 and the float8 types have no NumPy dtype: exact in float64
    return Matrix(obj.numpy())


def _read_parquet(path: Path, id_column: bool | None = None) -> Matrix:
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises its own types
        raise BridgeEvalError(f"{path}: not a readable parquet file ({type(err).__name__})") from None
    for column in frame.columns:
        if pd.api.types.is_complex_dtype(frame[column]):
            raise BridgeEvalError(f"{path}: column {column!r} holds complex values; give real-valued features")
    names = None
    named_ids = [c for c in frame.columns if str(c).lower() in ID_NAMES | {"__index_level_0__"}]
    first = frame.columns[0] if len(frame.columns) > 1 else None
    id_col = (named_ids[0] if named_ids else None) if id_column is None else (first if id_column else None)
    if id_col is not None:  # a column named id/name/word/... (or --id-column): row names, not a feature
        names = frame[id_col].astype(str).tolist()
        frame = frame.drop(columns=[id_col])
    text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if len(text) == 1 and frame[text[0]].map(lambda v: isinstance(v, (list, np.ndarray))).all():
        return Matrix(_list_column(path, frame[text[0]]), names)
    if len(text) > 1:
        raise BridgeEvalError(f"{path}: more than one non-numeric column ({', '.join(map(str, text))})")
    if text and names is None:
        names = frame[text[0]].astype(str).tolist()
        frame = frame.drop(columns=text)
    elif text:
        raise BridgeEvalError(f"{path}: non-numeric column {text[0]!r} besides the id column {id_col!r}")
    return Matrix(frame.to_numpy(dtype=np.float64), names)


def _list_column(path: Path, column) -> np.ndarray:
    """A column of vectors (one list per row) as a matrix; rows of unequal length named."""
    lengths = column.map(len).to_numpy()
    if len(lengths) and (lengths != lengths[0]).any():
        row = int(np.flatnonzero(lengths != lengths[0])[0])
        raise BridgeEvalError(f"{path}: column {column.name!r}: row {row} has {lengths[row]} values, row 0 has "
                              f"{lengths[0]}; every row needs the same number")
    try:
        return np.stack(column.to_numpy()).astype(np.float64)
    except (TypeError, ValueError) as err:
        raise BridgeEvalError(f"{path}: column {column.name!r} holds non-numeric vectors ({err})") from None


def read_delimited(path: Path, sep: str | None, has_names: bool | None = None) -> Matrix:
    """Rows of numbers, optionally led by one id or name column; errors name the file and line.

    Text is UTF-8 (a byte-order mark is skipped) or UTF-16/32 with a byte-order mark; other bytes
    are refused with the line they are on. A ``.csv`` (``sep=","``) takes its delimiter from its
    first line: ``,``, ``;``, tab or ``|``. A first line whose later fields are not all numbers, or
    that numbers the columns after an id name or a blank (pandas' ``,0,1,2``), is a header.

    The id rule (``has_names=None``): the first column holds row ids or names, not a feature, when
    the header names it (id, name, word, label, item, key, index, or blank); or, without a header,
    when its first field is not a number; or when it counts the rows (0..N-1 or 1..N, N >= 3).
    ``has_names=True``/``False`` (``--id-column``/``--no-id-column``) overrides the rule.
    """
    rows, names = [], []
    width = None
    auto = has_names is None
    line_no = 0
    with _open_text(path) as handle:
        try:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                if not rows and sep == ",":
                    sep = _delimiter(path, line)
                fields = [f.strip() for f in line.rstrip("\n\r").split(sep)]
                if sep is None and line_no == 1 and len(fields) == 2 and all(f.isdigit() for f in fields):
                    continue  # word2vec text header "N d"
                if not rows and sep is not None and width is None and _is_header(fields):
                    width = len(fields) - 1 if (fields[0].lower() in ID_NAMES and has_names is not False) else len(fields)
                    if auto:
                        has_names = fields[0].lower() in ID_NAMES
                    continue
                if has_names is None:
                    has_names = not _is_number(fields[0])
                name, numbers = (fields[0], fields[1:]) if has_names else (None, fields)
                if width is None:
                    width = len(numbers)
                elif len(numbers) != width:
                    raise BridgeEvalError(
                        f"{path}, line {line_no}: {len(numbers)} values where earlier lines have {width}"
                    )
                try:
                    rows.append(np.array(numbers, dtype=np.float64))
                except ValueError:
                    bad = next(i for i, f in enumerate(numbers) if not _is_number(f))
                    column = bad + 1 + bool(has_names)
                    raise BridgeEvalError(
                        f"{path}, line {line_no}, column {column}: {numbers[bad]!r} is not a number"
                    ) from None
                names.append(name)
        except UnicodeDecodeError:
            raise BridgeEvalError(f"{path}, line {_first_bad_line(path)}: not UTF-8 text; save the file as UTF-8") from None
    if not rows:
        raise BridgeEvalError(f"{path}: empty file")
    values = np.stack(rows)
    if auto and not has_names and _counts_rows(values):
        log.warning("%s: the first column counts the rows, read as row ids (--no-id-column keeps it)", path)
        return Matrix(np.ascontiguousarray(values[:, 1:]), [str(int(v)) for v in values[:, 0]])
    return Matrix(values, names if has_names else None)


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _open_text(path: Path):
    """The file as text in the encoding its byte-order mark names (else UTF-8); binary refused."""
    with open(path, "rb") as raw:
        head = raw.read(_BINARY_PROBE)
    encoding = next((name for bom, name in _BOMS if head.startswith(bom)), None)
    if encoding is None:
        if b"\0" in head:
            raise BridgeEvalError(f"{path}: a binary file, not text ({path.suffix} files are read as text)")
        encoding = "utf-8"
    return open(path, encoding=encoding, errors="strict")


def _first_bad_line(path: Path) -> int:
    with open(path, "rb") as raw:
        for line_no, line in enumerate(raw, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return line_no
    return 1


_DELIMITERS = (",", ";", "\t", "|")


def _delimiter(path: Path, line: str) -> str:
    found = [d for d in _DELIMITERS if d in line]
    if len(found) > 1:
        shown = " and ".join(repr(d) for d in found)
        raise BridgeEvalError(
            f"{path}, line 1: both {shown} appear (decimal commas?); use one delimiter and '.' for decimals"
        )
    return found[0] if found else ","


def _is_header(fields: list[str]) -> bool:
    later = fields[1:]
    # pandas writes integer column names: ",0,1,2" (with its index) or "id,0,1,2" (a named id column)
    numbered = later in ([str(i) for i in range(len(later))], [str(i + 1) for i in range(len(later))])
    named_ids = fields[0].lower() in ID_NAMES and numbered
    return len(fields) > 1 and (named_ids or not all(_is_number(f) for f in later))


def _counts_rows(values: np.ndarray) -> bool:
    if values.shape[0] < 3 or values.shape[1] < 2:
        return False
    first = values[:, 0]
    n = len(first)
    return bool(np.array_equal(first, np.arange(n)) or np.array_equal(first, np.arange(1, n + 1)))


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True
