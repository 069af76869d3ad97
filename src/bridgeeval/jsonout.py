"""Strictly valid JSON for every file and ``--json`` output: undefined numbers are ``null``.

``json.dumps`` writes ``NaN``/``Infinity``, which strict parsers (JavaScript, jq, Go) reject;
here they become ``null`` and ``undefined_keys`` lists where that happened, so a reader can tell
an undefined value (e.g. R^2 of a constant target) from a missing one.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite_or_none(obj: Any, path: str = "", undefined: list[str] | None = None) -> Any:
    """``obj`` with every non-finite float replaced by ``None`` (numpy scalars become Python ones)."""
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        if undefined is not None:
            undefined.append(path or "(value)")
        return None
    if isinstance(obj, dict):
        return {k: finite_or_none(v, f"{path}.{k}" if path else str(k), undefined) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v, f"{path}[{i}]", undefined) for i, v in enumerate(obj)]
    return obj


def dumps(obj: Any, indent: int | None = 2) -> str:
    """Strict JSON text; a top-level mapping gains ``undefined_keys`` when values were not finite."""
    undefined: list[str] = []
    clean = finite_or_none(obj, undefined=undefined)
    if undefined and isinstance(clean, dict) and "undefined_keys" not in clean:
        clean["undefined_keys"] = undefined
    return json.dumps(clean, indent=indent, allow_nan=False)
