"""A yardstick, not for use: RTD, IMD and the Geometry Score written plainly from their papers,
with other engines than ``bridgeeval.metrics.topology_measures`` uses, for small sets:

* RTD's barcodes from gudhi's Rips complex (every triangle built), not ripser;
* IMD's heat traces as tr expm(-tL) of scikit-learn's k-NN graph and scipy's normalised Laplacian;
* the Geometry Score's witness filtration by brute force from its definition (a simplex's value is
  the least over witnesses w of max(0, max_{l in s} d(w, l) - min_{l not in s} d(w, l)), raised
  to its faces' values), and its H1 intervals by a Z/2 column reduction written here.

Random draws follow the measures' documented ones (numpy ``default_rng(seed)``): RTD's rows are
``permutation(N)[:batch]`` per trial, the Geometry Score's landmarks ``integers(0, N, L)`` per repeat.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.spatial.distance import cdist


def _np(x) -> np.ndarray:
    return np.asarray(x.numpy() if hasattr(x, "numpy") else x, dtype=np.float64)


# RTD -----------------------------------------------------------------------------------------


def rtd(a, b, trials: int = 10, batch: int = 500, seed: int = 0) -> float:
    import gudhi

    a, b = _np(a), _np(b)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(trials):
        rows = rng.permutation(len(a))[:batch]
        da, db = cdist(a[rows], a[rows]), cdist(b[rows], b[rows])
        da, db = da / np.quantile(da, 0.9), db / np.quantile(db, 0.9)
        one_way = []
        for d1, d2 in ((da, db), (db, da)):
            n = len(rows)
            m = np.block([[np.zeros((n, n)), d1], [d1, np.minimum(d1, d2)]])
            m[m < d1.mean() * 1e-6] = 0.0
            tree = gudhi.RipsComplex(distance_matrix=m).create_simplex_tree(max_dimension=2)
            tree.compute_persistence()
            bars = tree.persistence_intervals_in_dimension(1)
            one_way.append(sum(death - birth for birth, death in bars))
        values.append(sum(one_way) / 2)
    return float(np.mean(values))


# IMD -----------------------------------------------------------------------------------------


def heat_trace(x, k: int = 5) -> np.ndarray:
    from scipy.linalg import expm
    from scipy.sparse.csgraph import laplacian
    from sklearn.neighbors import NearestNeighbors

    x = _np(x)
    n = len(x)
    lists = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x, return_distance=False)
    adjacency = np.zeros((n, n))
    for i in range(n):
        for j in lists[i]:
            if j != i:
                adjacency[i, j] = adjacency[j, i] = 1.0
    lap = laplacian(adjacency, normed=True)
    times = np.logspace(-1, 1, 256)
    return np.array([np.trace(expm(-t * lap)) for t in times]) / n * 1e6


def imd(a, b, k: int = 5) -> float:
    times = np.logspace(-1, 1, 256)
    gap = np.abs(heat_trace(a, k) - heat_trace(b, k))
    return float(max(np.exp(-2 * (t + 1 / t)) * g for t, g in zip(times, gap, strict=True)))


# Geometry Score ------------------------------------------------------------------------------


def witness_filtration(d: np.ndarray, alpha_max: float) -> dict[tuple[int, ...], float]:
    """Every simplex of up to three landmarks (columns of the witness-landmark distances ``d``)
    with its value, kept where the value is at most ``alpha_max``."""
    n_landmarks = d.shape[1]
    values: dict[tuple[int, ...], float] = {}
    for size in (1, 2, 3):
        for simplex in itertools.combinations(range(n_landmarks), size):
            others = [j for j in range(n_landmarks) if j not in simplex]
            own = min(max(0.0, max(d[w, j] for j in simplex) - min((d[w, j] for j in others), default=np.inf))
                      for w in range(d.shape[0]))
            faces = [values.get(f, np.inf) for f in itertools.combinations(simplex, size - 1)] if size > 1 else []
            value = max([own] + faces)
            if value <= alpha_max:
                values[simplex] = value
    return values


def h1_intervals(values: dict[tuple[int, ...], float]) -> list[tuple[float, float]]:
    """H1 persistence intervals (Z/2, positive length) of a filtered complex, by the standard
    column reduction."""
    order = sorted(values, key=lambda s: (values[s], len(s), s))
    position = {s: i for i, s in enumerate(order)}
    columns = [set(position[f] for f in itertools.combinations(s, len(s) - 1)) if len(s) > 1 else set()
               for s in order]
    owner: dict[int, int] = {}
    killed = set()
    intervals = []
    for j, column in enumerate(columns):
        while column and max(column) in owner:
            column ^= columns[owner[max(column)]]
        if column:
            low = max(column)
            owner[low], killed = j, killed | {low}
            if len(order[low]) == 2 and values[order[j]] > values[order[low]]:
                intervals.append((values[order[low]], values[order[j]]))
    for i, s in enumerate(order):
        if len(s) == 2 and i not in killed and not columns[i]:
            intervals.append((values[s], np.inf))
    return intervals


def relative_living_times(intervals, alpha_max: float, i_max: int = 100) -> np.ndarray:
    """Formulas (2) and (3) of Khrulkov & Oseledets (2018), segment by segment."""
    bars = [(b, alpha_max if np.isinf(e) else e) for b, e in intervals]
    rlt = np.zeros(i_max)
    if not bars:
        rlt[0] = 1.0
        return rlt
    points = sorted(set([p for bar in bars for p in bar] + [0.0, alpha_max]))
    for left, right in zip(points[:-1], points[1:], strict=True):
        mid = (left + right) / 2
        alive = sum(1 for b, e in bars if b <= mid < e)
        if alive < i_max:
            rlt[alive] += right - left
    return rlt / alpha_max


def mean_rlt(x, landmarks: int = 64, gamma: float | None = None, i_max: int = 100, repeats: int = 100,
             seed: int = 0) -> np.ndarray:
    x = _np(x)
    x = x - x.mean(axis=0)
    gamma = gamma if gamma is not None else len(x) / 5000 / 128
    rng = np.random.default_rng(seed)
    total = np.zeros(i_max)
    for _ in range(repeats):
        d = cdist(x, x[rng.integers(0, len(x), landmarks)])
        alpha_max = d.max() * gamma
        total += relative_living_times(h1_intervals(witness_filtration(d, alpha_max)), alpha_max, i_max)
    return total / repeats


def geometry_score(a, b, landmarks: int = 64, gamma: float | None = None, i_max: int = 100, repeats: int = 100,
                   seed: int = 0) -> float:
    ma = mean_rlt(a, landmarks, gamma, i_max, repeats, seed)
    mb = mean_rlt(b, landmarks, gamma, i_max, repeats, seed)
    return float(np.sum((ma - mb) ** 2))
