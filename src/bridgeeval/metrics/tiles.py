"""Tiles of a set's pairs of rows: the block pairs that visit every unordered pair (i, j) once.

The exact neighbour search and the measures that sum over all pairs of one set (RBF CKA, Pearson
RSA) compute a block of the pair matrix at a time. A pair of distinct blocks serves both of its halves; a diagonal block is
symmetric, so it is halved into two diagonal halves and the pair between them, down to ``leaf``
rows: 9/16 of its products and elementwise work with halving down to an eighth of the block, where
the whole block would compute every pair twice.
"""

from __future__ import annotations

from collections.abc import Iterator

Tile = tuple[int, int, int, int, bool]  # i0, i1, j0, j1, diagonal


def symmetric_tiles(n: int, block: int, leaf: int | None = None) -> Iterator[Tile]:
    """``(i0, i1, j0, j1, diagonal)`` covering each pair i <= j of ``range(n)`` once: rows
    ``i0:i1`` against columns ``j0:j1``. Off-diagonal tiles (``diagonal`` False) hold each of their
    pairs once and stand for its mirror too; diagonal tiles (``i0 == j0``) hold both orders of
    their pairs and their own diagonal.

    Example:
        >>> list(symmetric_tiles(5, block=4, leaf=2))
        [(0, 2, 0, 2, True), (2, 4, 2, 4, True), (0, 2, 2, 4, False), (0, 4, 4, 5, False), (4, 5, 4, 5, True)]
    """
    leaf = max(1, leaf or block)
    for i0 in range(0, n, block):
        i1 = min(i0 + block, n)
        yield from diagonal_tiles(i0, i1, leaf)
        for j0 in range(i1, n, block):
            yield i0, i1, j0, min(j0 + block, n), False


def diagonal_tiles(i0: int, i1: int, leaf: int) -> Iterator[Tile]:
    """The tiles of the diagonal block ``i0:i1``: halves down to ``leaf`` rows, then their pairs."""
    if i1 - i0 <= leaf:
        yield i0, i1, i0, i1, True
        return
    mid = i0 + (i1 - i0) // 2
    yield from diagonal_tiles(i0, mid, leaf)
    yield from diagonal_tiles(mid, i1, leaf)
    yield i0, mid, mid, i1, False
