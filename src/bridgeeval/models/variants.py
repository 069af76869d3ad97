"""What a ``mapper`` or ``loss`` config node names: its ``_target_``'s class and short name.

The class is the variant: bridgeeval's own (``mappers.MAPPERS``, ``losses.LOSSES``) carry a short
``name`` ("nn", "mse") and a ``check`` of their arguments; a user's own target is named by its last
dotted part and checked by whatever it does when built.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

from bridgeeval.errors import BridgeEvalError
from bridgeeval.models.losses import LOSSES
from bridgeeval.models.mappers import MAPPERS

# bridgeeval's own classes by the ``_target_`` that names them (what configs and checkpoints write).
BUILTIN_TARGETS: dict[str, type] = {f"{c.__module__}.{c.__qualname__}": c for c in (*MAPPERS.values(), *LOSSES.values())}
# Arguments the job fills in for every mapper (from the data and the shared ``depth`` key).
FILLED_IN = {"mapper": ("in_dim", "out_dim", "depth"), "loss": ()}


def target_of(node: Mapping) -> str:
    target = node.get("_target_") if isinstance(node, Mapping) else None
    return target if isinstance(target, str) else ""


def builtin_class(node: Mapping) -> type | None:
    """bridgeeval's own class that the node names, or None (a user's own target)."""
    return BUILTIN_TARGETS.get(target_of(node))


def variant_name(node: Mapping) -> str:
    """The short name of the variant a node names: ``nn``, ``lin``, ``mse``, ...; for a user's own
    target, its last dotted part; for a record of an earlier version, its ``kind`` or ``name``."""
    cls = builtin_class(node)
    if cls is not None:
        return cls.name
    legacy = node.get("kind") or node.get("name") if isinstance(node, Mapping) else None
    return str(legacy) if legacy else target_of(node).rsplit(".", 1)[-1]


def check_arguments(group: str, node: Mapping) -> None:
    """A built-in variant's settings checked by its own class, before anything is built: a key it
    does not take is named with the ones it does, a value it refuses is its one line."""
    cls = builtin_class(node)
    if cls is None:
        return
    settings = {k: v for k, v in node.items() if not str(k).startswith("_")}
    takes = [p for p in inspect.signature(cls.check).parameters if p not in FILLED_IN[group]]
    for key in settings:
        if key not in takes:
            allowed = ", ".join(takes) if takes else "none"
            raise BridgeEvalError(f"{group}.{key}: not a setting of {group}={cls.name} (settings: {allowed})")
    cls.check(**settings)
