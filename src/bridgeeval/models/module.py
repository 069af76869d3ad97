"""``MappingModule``: a mapper, a loss and an optimiser, with mNNO logged every epoch on the module's device."""

from __future__ import annotations

import contextvars
import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from torch import nn

from bridgeeval.errors import BridgeEvalError
from bridgeeval.metrics import NEIGHBOUR_KEYS, CrossModalReport, knn_indices
from bridgeeval.metrics.measures import MappedAlignment
from bridgeeval.metrics.sharding import sharded_search
from bridgeeval.metrics.torchmetric import ItemMean
from bridgeeval.models.losses import LOSSES
from bridgeeval.models.mappers import MAPPERS
from bridgeeval.models.variants import BUILTIN_TARGETS

# Unsuffixed keys are the first neighbour metric's; further metrics log NEIGHBOUR_KEYS with a
# suffix (e.g. _euclidean). Each key is logged once: Lightning's self.log is costly per call.


class MappingModule(pl.LightningModule):
    """A mapper, its loss and optimiser, and the neighbourhood metrics of every validation epoch.

    ``mapper`` and ``loss`` are modules, or ``_target_`` configs (the composed ``mapper`` and
    ``loss`` groups; the mapper's with ``in_dim``, ``out_dim`` and ``depth`` filled in) that are
    instantiated here. Built from configs, the module saves them as hyperparameters, so that
    ``MappingModule.load_from_checkpoint(path)`` rebuilds the trained map on its own (the optimiser
    factory is not saved: a reloaded map is for applying, ``bridgeeval map``).
    """

    def __init__(
        self,
        mapper: nn.Module | Mapping,
        loss: nn.Module | Mapping,
        *,
        k: int,
        neighbour_metrics: Sequence[str],
        include_self: bool,
        on_train: bool = False,
        retrieval: bool = False,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        measures: Sequence[str] = ("mnno",),
        measure_options: Mapping | None = None,
    ):
        super().__init__()
        if isinstance(mapper, Mapping) or isinstance(loss, Mapping):
            self.save_hyperparameters(ignore=["optimizer"] + [n for n, v in (("mapper", mapper), ("loss", loss))
                                                              if isinstance(v, nn.Module)])
        self.mapper = _instantiated(mapper)
        self.loss = _instantiated(loss)
        # A closed-form map is fitted once (on_fit_start); its training epoch only logs the loss.
        self.automatic_optimization = not self.closed_form
        self.optimizer_factory = optimizer
        self.k, self.include_self, self.on_train = k, include_self, on_train
        self.neighbour_metrics = tuple(neighbour_metrics)
        self.val_loss = ItemMean()
        # The alignment measures go with the first neighbour metric (the unsuffixed keys) only.
        first = self.neighbour_metrics[0]
        self.val_metrics = nn.ModuleDict(
            {m: CrossModalReport(k=k, metric=m, include_self=include_self,
                                 measures=measures if m == first else (), measure_options=measure_options,
                                 retrieval=retrieval and m == first)
             for m in self.neighbour_metrics}
        )
        self.train_alignment = MappedAlignment(measures, k, first, include_self, measure_options)
        self._train_neighbours: dict[str, dict[str, torch.Tensor]] = {}
        self.metric_seconds = 0.0  # time spent on the neighbourhood metrics this epoch

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, *args, weights_only: bool = True, **kwargs):
        """Lightning's loader, reading the file as data: tensors and plain values only
        (``weights_only``), and the saved mapper and loss built only from bridgeeval's own builders
        (``LOADABLE_TARGETS``), so that nothing a file names runs."""
        token = _FROM_FILE.set(True)
        try:
            return super().load_from_checkpoint(checkpoint_path, *args, weights_only=weights_only, **kwargs)
        finally:
            _FROM_FILE.reset(token)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mapper(x)

    def training_step(self, batch, batch_idx):
        x, y, classes, _ = batch
        loss = self.loss(self(x), y, classes)
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(x))
        return loss

    @property
    def closed_form(self) -> bool:
        """Whether the mapper is solved in one step on the training items (``mapper=lstsq``)."""
        return bool(getattr(self.mapper, "closed_form", False))

    def on_fit_start(self) -> None:
        dm = self.trainer.datamodule
        if self.closed_form:
            self.mapper.fit(*(t.to(self.device) for t in dm.arrays("train")))
        # Neighbours of X and Y never change during training: computed once, on this device.
        stages = ["val"] + (["train"] if self.on_train else [])
        with sharded_search():  # every process holds the same sets (under DDP): the searches are shared
            self._reference_neighbours(dm, stages)

    def _reference_neighbours(self, dm, stages: list[str]) -> None:
        for stage in stages:
            x, y = (t.to(self.device) for t in dm.arrays(stage))
            lists = {
                m: {
                    "input": knn_indices(x, self.k, m, self.include_self),
                    "target": knn_indices(y, self.k, m, self.include_self),
                }
                for m in self.neighbour_metrics
            }
            if stage == "val":
                for m, refs in lists.items():
                    self.val_metrics[m].cache_reference(refs["input"], refs["target"], y, inputs=x)
            else:
                self._train_neighbours = lists

    def validation_step(self, batch, batch_idx):
        x, y, classes, index = batch
        mapped = self(x)
        self.val_loss.update(self.loss.per_item(mapped, y, classes), index)
        start = time.perf_counter()
        for metric in self.val_metrics.values():
            metric.update(x, y, mapped, index)
        self.metric_seconds += time.perf_counter() - start

    def on_validation_epoch_start(self) -> None:
        self.metric_seconds = 0.0

    def on_validation_epoch_end(self) -> None:
        # Every rank holds the whole gathered epoch (padded repeats dropped), so the ranks' values are
        # equal and, under DDP, sync_dist's mean returns them exactly (and Lightning does not warn);
        # in one process it is skipped, since it costs more than the metrics themselves.
        self.log("val/loss", self.val_loss.compute().float(), on_step=False, on_epoch=True, sync_dist=self._distributed)
        self.val_loss.reset()
        start = time.perf_counter()
        for i, (name, metric) in enumerate(self.val_metrics.items()):
            self._log_report("val", name, metric.compute(), primary=i == 0)
            metric.reset()
        if self.on_train and not self.trainer.sanity_checking:
            with sharded_search():  # the whole training set on every process
                self._log_train_report()
        self.metric_seconds += time.perf_counter() - start

    @torch.no_grad()
    def _log_train_report(self) -> None:
        """The paper's Fig. 2 train curves: the whole training set mapped in eval mode."""
        from bridgeeval.metrics import cross_modal_report

        x, y = (t.to(self.device) for t in self.trainer.datamodule.arrays("train"))
        mapped = self(x)
        for i, name in enumerate(self.neighbour_metrics):
            lists = dict(self._train_neighbours[name])
            if i == 0 and self.train_alignment:
                lists["mapped"] = knn_indices(mapped, self.k, name, self.include_self, name="mapped")
            report = cross_modal_report(
                x, y, mapped, k=self.k, metric=name, include_self=self.include_self, neighbours=lists
            )
            if i == 0:
                report.update(self.train_alignment(x, y, mapped, lists))
            self._log_report("train", name, report, primary=i == 0)

    def _log_report(self, stage: str, metric_name: str, report: dict[str, float], primary: bool) -> None:
        if primary:  # the report and the alignment measures (metrics.measures)
            values = {f"{stage}/{key}": value for key, value in report.items()}
        else:
            values = {f"{stage}/{key}_{metric_name}": report[key] for key in NEIGHBOUR_KEYS}
        # Every rank computed the report of the whole gathered set: equal values, an exact mean.
        self.log_dict(values, on_step=False, on_epoch=True, sync_dist=self._distributed)

    @property
    def _distributed(self) -> bool:
        return self._trainer is not None and self.trainer.world_size > 1

    def configure_optimizers(self):
        if self.optimizer_factory is None:
            raise BridgeEvalError("this map was reloaded for applying, not training: it has no optimizer")
        return self.optimizer_factory(self.parameters())


# Set while a module is rebuilt from a file: its saved specs may name only LOADABLE_TARGETS.
_FROM_FILE: contextvars.ContextVar[bool] = contextvars.ContextVar("bridgeeval_from_file", default=False)
# What a checkpoint's mapper and loss specs may name. A file is data: a spec naming anything else
# (os.system, a user's class) is refused, never imported or called.
def _legacy_mapper(kind: str, in_dim: int, out_dim: int, depth: int = 1, **settings) -> nn.Module:
    """A mapper spec of checkpoints saved before each mapper was its own class (``kind`` named it)."""
    if kind not in MAPPERS:
        raise BridgeEvalError(f"mapper: unknown {kind!r}; choose one of {', '.join(MAPPERS)}")
    return MAPPERS[kind](in_dim, out_dim, depth, **{k: v for k, v in settings.items() if v is not None})


def _legacy_loss(name: str, margin: float | None = None) -> nn.Module:
    """A loss spec of checkpoints saved before each loss was its own class."""
    if name not in LOSSES:
        raise BridgeEvalError(f"loss: unknown {name!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[name](margin) if margin is not None else LOSSES[name]()


LOADABLE_TARGETS: dict[str, Callable[..., nn.Module]] = {
    **BUILTIN_TARGETS,
    "bridgeeval.models.mappers.build_mapper": _legacy_mapper,  # checkpoints of earlier versions
    "bridgeeval.models.losses.build_loss": _legacy_loss,
}
_PLAIN = (str, int, float, bool, type(None))


def _instantiated(part: nn.Module | Mapping) -> nn.Module:
    """A module as given; a ``_target_`` config built with Hydra (a config is the user's own code to
    name); a spec read from a file built by :func:`build_saved`."""
    if isinstance(part, nn.Module):
        return part
    if _FROM_FILE.get():
        return build_saved(part, "checkpoint")
    if "_target_" in part:
        return hydra.utils.instantiate(dict(part))
    return _legacy_mapper(**part)  # a mapper spec saved before configs had _target_


def build_saved(spec: Mapping, source: str) -> nn.Module:
    """A mapper or loss from a spec read from a file: its ``_target_`` one of ``LOADABLE_TARGETS``
    (a spec without one is a mapper of the first checkpoints, ``kind`` and dims), its arguments
    plain values. Anything else is one line naming ``source``.

    Example:
        >>> build_saved({"_target_": "os.system", "command": "echo hi"}, "x.ckpt")
        Traceback (most recent call last):
        ...
        bridgeeval.errors.BridgeEvalError: x.ckpt: refused: the saved spec names 'os.system', not one of bridgeeval's mappers or losses (a file may not name code to run)
    """
    args = dict(spec)
    target = args.pop("_target_", "bridgeeval.models.mappers.build_mapper")  # the first checkpoints had none
    builder = LOADABLE_TARGETS.get(target) if isinstance(target, str) else None
    if builder is None:
        raise BridgeEvalError(f"{source}: refused: the saved spec names {target!r}, not one of bridgeeval's "
                              "mappers or losses (a file may not name code to run)")
    for key, value in args.items():
        if not isinstance(key, str) or not key.isidentifier() or key.startswith("_") or not isinstance(value, _PLAIN):
            raise BridgeEvalError(f"{source}: refused: the saved spec of {target} has {key!r}: {value!r} "
                                  "(only plain values are read from a file)")
    try:
        return builder(**args)
    except (TypeError, RuntimeError, BridgeEvalError) as err:  # a missing argument, a negative width
        raise BridgeEvalError(f"{source}: the saved spec of {target} does not fit it ({str(err).splitlines()[0]})") from None


def load_map(path) -> nn.Module:
    """The trained mapper of a ``checkpoint=true`` checkpoint, in eval mode on the CPU; a file that
    is not one is one line naming it. The file is read as data (``weights_only``: tensors and plain
    values; nothing in it runs) and only the mapper is rebuilt, from bridgeeval's own builders, so
    checkpoints of every bridgeeval version since maps were saved load alike."""
    path = Path(path)
    if not path.is_file():
        raise BridgeEvalError(f"{path}: no such checkpoint")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        named = _refused_global(err)
        if named:  # a pickle naming more than tensors and plain values
            raise BridgeEvalError(f"{path}: refused: it holds more than tensors and plain values "
                                  f"(it names {named}); nothing in it was run") from None
        raise BridgeEvalError(f"{path}: not a checkpoint (UnpicklingError)") from None
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user error
        raise BridgeEvalError(f"{path}: not a checkpoint ({type(err).__name__})") from None
    spec = (saved.get("hyper_parameters") or {}).get("mapper") if isinstance(saved, dict) else None
    if not isinstance(spec, Mapping):
        raise BridgeEvalError(f"{path}: not a bridgeeval map checkpoint (no mapper hyperparameters; "
                              "train with checkpoint=true)")
    with torch.device("meta"):  # shapes only: a spec of 10^9 x 10^9 allocates nothing
        mapper = build_saved(spec, str(path))
    state = saved.get("state_dict")
    weights = {k.removeprefix("mapper."): v for k, v in (state if isinstance(state, Mapping) else {}).items()
               if isinstance(k, str) and k.startswith("mapper.")}
    try:  # strict: every parameter of the spec's shape, taken from the file's own tensors
        mapper.load_state_dict(weights, assign=True)
    except (RuntimeError, TypeError) as err:
        lines = [line.strip().rstrip(".") for line in str(err).splitlines() if line.strip()]
        detail = next((line for line in lines if line.startswith(("size mismatch", "Missing", "Unexpected"))), lines[0])
        raise BridgeEvalError(f"{path}: the saved weights do not fit the saved mapper ({detail})") from None
    return mapper.eval()


def _refused_global(err: Exception) -> str | None:
    """The global a weights-only load refused ("GLOBAL os.system" in torch's message), if any."""
    import re

    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
    return found.group(1) if found else None
