"""Retrieval of each item's own target from its mapped vector, plain and hubness-corrected, and the
hubness of the targets that retrieval sees.

Mapped vectors are hubs (Dinu et al. 2015): a few targets sit among the nearest of very many
queries. With ``s(q, t)`` the similarity (cosine, or minus the squared distance under Euclidean):

* plain: targets ranked by ``s(q, t)``;
* CSLS (Conneau et al. 2018): by ``2 s(q, t) - r_T(q) - r_Q(t)``, where ``r_Q(t)`` is the mean
  similarity of target t to its k nearest queries (``r_T(q)``, constant for a query, does not
  change its ranking);
* inverted softmax (Smith et al. 2017), optional: by ``beta s(q, t) - log sum_q' exp(beta s(q', t))``,
  each target's scores normalised over the queries.

``recall_at_1``/``recall_at_k``: the share of queries whose own target (same row) ranks first /
among the first k; ``target_hubness``: the skewness of how often each target is among the k
ranked first by the queries. Ties go to the lower target index, as everywhere in bridgeeval.
Exact, in float64, over blocks of query rows: memory O(block x N), never N x N.
"""

from __future__ import annotations

import torch

from bridgeeval.errors import BridgeEvalError
from bridgeeval.metrics.validation import as_tensor, check_k, check_metric, check_points

_BLOCK = 1024  # query (or target) rows per block: a float64 1024 x N slab


def hub_retrieval(mapped, target, k: int = 10, metric: str = "cosine", isf_beta: float | None = None,
                  block: int = _BLOCK) -> dict[str, float]:
    """Plain and corrected retrieval of each row's target from its mapped vector (module docstring).

    Returns ``recall_at_1``, ``recall_at_k``, ``target_hubness`` and their ``_csls`` forms (and
    ``_isf`` forms when ``isf_beta`` is given).

    Example (target 2 is the nearest of three queries, a hub; CSLS discounts it):
        >>> q = torch.tensor([[-2.0, 2.0], [3.0, 2.0], [0.0, 3.0], [2.0, 3.0]])
        >>> t = torch.tensor([[-1.0, 2.0], [1.0, -1.0], [0.0, 3.0], [-2.0, -2.0]])
        >>> out = hub_retrieval(q, t, k=1)
        >>> out["recall_at_1"], out["recall_at_1_csls"]
        (0.5, 0.75)
        >>> round(out["target_hubness"], 4), out["target_hubness_csls"]
        (0.8165, 0.0)
    """
    q, t = _prepared(mapped, "mapped", metric), _prepared(target, "target", metric)
    if q.shape != t.shape:
        raise BridgeEvalError(f"mapped {tuple(q.shape)} and target {tuple(t.shape)} must have the same shape")
    n = len(q)
    check_k(k, n, include_self=True)
    forms = {"": None, "_csls": _csls_penalty(q, t, k, metric, block)}
    if isf_beta is not None:
        if not isf_beta > 0:
            raise BridgeEvalError(f"isf_beta={isf_beta!r}: must be a positive number")
        forms["_isf"] = _isf_penalty(q, t, isf_beta, metric, block)
    ranks = {form: torch.empty(n, dtype=torch.long, device=q.device) for form in forms}
    counts = {form: torch.zeros(n, dtype=torch.float64, device=q.device) for form in forms}
    for start in range(0, n, block):
        rows = torch.arange(start, min(start + block, n), device=q.device)
        sims = _similarities(q[rows], t, metric)
        for form, penalty in forms.items():
            scores = _corrected(sims, penalty, form, isf_beta)
            ranks[form][rows] = _own_rank(scores, rows)
            order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]  # ties: lower index
            counts[form] += torch.bincount(order.reshape(-1), minlength=n).double()
    out = {}
    for form in forms:
        out[f"recall_at_1{form}"] = float((ranks[form] < 1).double().mean())
        out[f"recall_at_k{form}"] = float((ranks[form] < k).double().mean())
        out[f"target_hubness{form}"] = _skewness(counts[form])
    return out


def _prepared(x, name: str, metric: str) -> torch.Tensor:
    check_metric(metric)
    x = as_tensor(x, name)
    check_points(x, name, metric)
    x = x.double()
    return x / x.norm(dim=1, keepdim=True) if metric == "cosine" else x


def _similarities(a: torch.Tensor, b: torch.Tensor, metric: str) -> torch.Tensor:
    """Cosine (rows already unit length), or minus the squared Euclidean distance."""
    prod = a @ b.T
    if metric == "cosine":
        return prod
    return prod.mul_(2.0).sub_(a.pow(2).sum(dim=1, keepdim=True)).sub_(b.pow(2).sum(dim=1).unsqueeze(0))


def _corrected(sims: torch.Tensor, penalty: torch.Tensor | None, form: str, beta: float | None) -> torch.Tensor:
    if penalty is None:
        return sims
    if form == "_csls":
        return 2.0 * sims - penalty.unsqueeze(0)
    return beta * sims - penalty.unsqueeze(0)


def _csls_penalty(q: torch.Tensor, t: torch.Tensor, k: int, metric: str, block: int) -> torch.Tensor:
    """r_Q(t): each target's mean similarity to its k nearest queries."""
    out = torch.empty(len(t), dtype=torch.float64, device=t.device)
    for start in range(0, len(t), block):
        sims = _similarities(t[start : start + block], q, metric)
        out[start : start + block] = sims.topk(k, dim=1).values.mean(dim=1)
    return out


def _isf_penalty(q: torch.Tensor, t: torch.Tensor, beta: float, metric: str, block: int) -> torch.Tensor:
    """log sum over queries of exp(beta s(q, t)), for each target."""
    out = torch.empty(len(t), dtype=torch.float64, device=t.device)
    for start in range(0, len(t), block):
        out[start : start + block] = torch.logsumexp(beta * _similarities(t[start : start + block], q, metric), dim=1)
    return out


def _own_rank(scores: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """How many targets rank before each query's own: a higher score, or an equal one at a lower index."""
    own = scores.gather(1, rows.unsqueeze(1))
    cols = torch.arange(scores.shape[1], device=scores.device).unsqueeze(0)
    return ((scores > own) | ((scores == own) & (cols < rows.unsqueeze(1)))).sum(dim=1)


def _skewness(counts: torch.Tensor) -> float:
    centred = counts - counts.mean()
    var = centred.pow(2).mean()
    return 0.0 if float(var) == 0.0 else float(centred.pow(3).mean() / var.pow(1.5))
