"""Exact neighbour searches shared by the processes of a ``torch.distributed`` group.

Inside :func:`sharded_search` every :func:`~bridgeeval.metrics.knn_indices` call is shared by the
group's processes. Each takes every ``world``-th of the symmetric search's block pairs (each pair
multiplied once, for both its sides, as one process does), an all-to-all brings each row's
candidates to the process that owns the row (a contiguous share), which refines them to the exact
list; for a set of one block, each process searches its rows against the whole set. The lists are
then gathered: each process ends with the whole ``[N, k]`` result, equal to one process's (exact
under the tie rule, so how the work was shared cannot show).
Every process must make the same calls on the same set, in the same order: the block is entered
only where the processes hold the same data (``bridgeeval score`` under ``torchrun`` or ``srun``;
the validation hook's gathered epoch under DDP).

Launch: ``torchrun --nproc-per-node P`` sets ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``; under
``srun -n P`` they are derived from Slurm's variables (:func:`init_from_environment`). Backend:
NCCL where the set is on a GPU, gloo on the CPU.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from bridgeeval.errors import BridgeEvalError
from bridgeeval.launch import launched_world


@dataclass(frozen=True)
class Shards:
    """This process's place in the group: which rows it searches, and how the parts are gathered."""

    rank: int
    world: int
    group: Any = None

    def share(self, n: int) -> tuple[int, int]:
        """The contiguous rows ``[start, stop)`` of ``n`` this process searches (sizes differ by one
        at most).

        Example:
            >>> [Shards(r, 3).share(10) for r in range(3)]
            [(0, 4), (4, 7), (7, 10)]
        """
        per, extra = divmod(n, self.world)
        start = self.rank * per + min(self.rank, extra)
        return start, start + per + (self.rank < extra)

    def shares(self, n: int) -> list[tuple[int, int]]:
        """Every process's rows, in rank order."""
        return [Shards(r, self.world).share(n) for r in range(self.world)]

    def gather(self, part: torch.Tensor, n: int) -> torch.Tensor:
        """Every process's ``part`` (its share's rows) joined in rank order: ``[n, ...]`` on each."""
        import torch.distributed as dist

        size = -(-n // self.world)  # all_gather takes equal shapes: shares padded to the largest
        padded = part.new_zeros((size, *part.shape[1:]))
        padded[: len(part)] = part
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded, group=self.group)
        return torch.cat([p[: stop - start] for p, (start, stop) in zip(parts, self.shares(n), strict=True)])

    def exchange(self, scores: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each process's top-``c`` candidates ``[N, c]`` of every row (from the block pairs it
        visited) in, the top ``c`` over all processes of this process's share of rows out: one
        all-to-all, so no process ever holds another's whole candidate table."""
        import torch.distributed as dist

        n, c = scores.shape
        start, stop = self.share(n)
        sizes = [b - a for a, b in self.shares(n)]
        merged = []
        for table in (scores, indices):
            out = table.new_empty((self.world * (stop - start), c))
            dist.all_to_all_single(out, table.contiguous(), output_split_sizes=[stop - start] * self.world,
                                   input_split_sizes=sizes, group=self.group)
            # [world, rows, c] by sender -> [rows, world * c]: every sender's candidates of a row side by side
            merged.append(out.view(self.world, stop - start, c).transpose(0, 1).reshape(stop - start, -1))
        top, pos = torch.topk(merged[0], c, dim=1, sorted=False)
        return top, merged[1].gather(1, pos)


_ACTIVE: contextvars.ContextVar[Shards | None] = contextvars.ContextVar("bridgeeval_shards", default=None)


def active() -> Shards | None:
    """The group the searches are shared with now (None: each process searches alone)."""
    return _ACTIVE.get()


@contextlib.contextmanager
def sharded_search(group: Any = None) -> Iterator[Shards | None]:
    """Within the block, neighbour searches are shared by ``group``'s processes (the default group
    where None); a no-op where ``torch.distributed`` is not initialised or the group has one process."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size(group) < 2:
        yield None
        return
    token = _ACTIVE.set(Shards(dist.get_rank(group), dist.get_world_size(group), group))
    try:
        yield _ACTIVE.get()
    finally:
        _ACTIVE.reset(token)


def init_from_environment(device: torch.device) -> int:
    """Joins the launch's process group (torchrun's variables, or srun's translated to them) and
    returns this process's rank; a no-op returning 0 for a single process."""
    import torch.distributed as dist

    if launched_world() < 2:
        return 0
    if not dist.is_initialized():
        env = os.environ
        if "RANK" not in env:  # srun: rank and size from Slurm, the rendezvous on its first node
            env.setdefault("RANK", env["SLURM_PROCID"])
            env.setdefault("WORLD_SIZE", env["SLURM_STEP_NUM_TASKS"])
            env.setdefault("LOCAL_RANK", env.get("SLURM_LOCALID", "0"))
            env.setdefault("MASTER_ADDR", _first_node(env.get("SLURM_STEP_NODELIST", "127.0.0.1")))
            env.setdefault("MASTER_PORT", str(_step_port(env.get("SLURM_JOB_ID", "0"), env.get("SLURM_STEP_ID", "0"))))
        backend = "nccl" if device.type == "cuda" else "gloo"
        try:
            dist.init_process_group(backend)
        except (RuntimeError, ValueError) as err:
            raise BridgeEvalError(f"torch.distributed: cannot join the {backend} group of "
                                  f"{env.get('WORLD_SIZE')} processes at {env.get('MASTER_ADDR')}:"
                                  f"{env.get('MASTER_PORT')} ({str(err).splitlines()[0]})") from None
    return dist.get_rank()


def _step_port(job_id: str, step_id: str) -> int:
    """A rendezvous port for one Slurm step: two steps of one allocation (``srun ... &`` twice) or
    two jobs sharing a node get different ports.

    Example:
        >>> _step_port("4711", "0"), _step_port("4711", "1"), _step_port("4712", "0")
        (55376, 55377, 55392)
    """
    job = int(job_id) if job_id.isdigit() else 0
    step = int(step_id) if step_id.isdigit() else 0
    return 20000 + (job * 16 + step % 16) % 40000


def _first_node(nodelist: str) -> str:
    """The first host of a Slurm node list (``node[03-05,07],gpu1`` gives ``node03``).

    Example:
        >>> _first_node("node[03-05,07],gpu1"), _first_node("vm")
        ('node03', 'vm')
    """
    head = nodelist.split(",")[0]
    if "[" not in head:
        return head
    prefix, _, ranges = nodelist.partition("[")
    return prefix + ranges.split(",")[0].split("-")[0].rstrip("]")
