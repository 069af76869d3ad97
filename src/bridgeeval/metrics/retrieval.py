"""Class-based retrieval mAP of one feature set (the paper's Appendix B feature check).

Every item queries all the others, ranked by the neighbour distance (ties by lower index); an item
is relevant when it shares a class label with the query (any common label, for multi-label data).
AP averages the precision at each relevant item's rank; queries without a relevant item are left
out. Blockwise over query rows: memory O(block x N), not N x N.
"""

from __future__ import annotations

import numpy as np
import torch

from bridgeeval.errors import BridgeEvalError
from bridgeeval.metrics.validation import as_tensor, check_metric, check_points


def class_retrieval_map(x, labels, metric: str = "cosine", block: int = 512) -> float:
    """Mean average precision of retrieving same-class items with ``x``'s neighbours.

    Args:
        x: ``[N, d]`` features.
        labels: ``[N]`` class codes, or ``[N, C]`` multi-hot (relevant: at least one label shared).

    Example (two classes, each item's other class member is its nearest neighbour):
        >>> pts = torch.tensor([[0.0], [0.1], [5.0], [5.2]])
        >>> class_retrieval_map(pts, torch.tensor([0, 0, 1, 1]), metric="euclidean")
        1.0
    """
    x = as_tensor(x, "x").double()
    check_metric(metric)
    check_points(x, "x", metric)
    labels = torch.as_tensor(np.asarray(labels))
    if labels.shape[0] != x.shape[0]:
        raise BridgeEvalError(f"labels: {labels.shape[0]} rows, but the features have {x.shape[0]}")
    multi = labels.ndim == 2
    labels = labels.to(x.device).double() if multi else labels.to(x.device)
    if metric == "cosine":
        x = x / x.norm(dim=1, keepdim=True)
    n = x.shape[0]
    sq = x.pow(2).sum(dim=1)
    order = torch.arange(n, device=x.device)
    ap_sum, queries = 0.0, 0
    for start in range(0, n, block):
        rows = order[start : start + block]
        dist = (sq[rows].unsqueeze(1) + sq.unsqueeze(0) - 2.0 * x[rows] @ x.T).clamp_min_(0.0)
        dist[torch.arange(len(rows)), rows] = float("inf")  # the query itself is not retrieved
        ranked = torch.sort(dist, dim=1, stable=True).indices[:, :-1]  # index order breaks ties
        if multi:
            shares = (labels[rows] @ labels.T) > 0  # [block, N]: any common label
        else:
            shares = labels[rows].unsqueeze(1) == labels.unsqueeze(0)
        relevant = torch.gather(shares, 1, ranked)
        hits = relevant.double().cumsum(dim=1)
        ranks = torch.arange(1, n, device=x.device, dtype=torch.float64)
        n_relevant = relevant.sum(dim=1)
        ap = ((hits / ranks) * relevant).sum(dim=1) / n_relevant.clamp_min(1)
        ap_sum += float(ap[n_relevant > 0].sum())
        queries += int((n_relevant > 0).sum())
    if queries == 0:
        raise BridgeEvalError("labels: no item shares a class with another; retrieval mAP is undefined")
    return ap_sum / queries
