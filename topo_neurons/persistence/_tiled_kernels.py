"""Compiled kernels of the tiled engine: tile maps, block Prim, pair Prim, Kruskal.

Every spanning tree here is the minimum spanning tree under one strict total order on the
edges of the complete graph: ``(w, i, j)`` lexicographically, with ``w`` the dissimilarity (in
the dtype of the activations) and ``i < j`` the global neuron indices. Under a strict total
order the MST is unique, which is what makes the union of block-pair trees exact (see
``docs/tiled.md``). All kernels release the GIL (``nogil=True``) so that tasks run in parallel
on threads.
"""

from __future__ import annotations

import numba
import numpy as np

from ..correlation import _map_into

__all__ = [
    "block_tree",
    "kruskal_forest",
    "map_tile",
    "pair_tree",
]


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _map_rows(T, nrows, ncols, code, upper):  # pragma: no cover - compiled
    for i in range(nrows):
        j0 = i + 1 if upper else 0
        if j0 < ncols:
            row = T[i, j0:ncols]
            _map_into(row, row, code)


def map_tile(T: np.ndarray, nrows: int, ncols: int, code: int, upper: bool) -> None:
    """Map correlations to dissimilarities in place, exactly as the dense path does.

    ``code`` 1: ``1 − |ρ|``, 2: ``sqrt(1 − ρ²)`` (float64 arithmetic, one rounding to the tile's
    dtype: :func:`topo_neurons.correlation._map_into`, shared with the dense path). ``upper``
    maps only the strict upper triangle (a diagonal tile).
    """
    _map_rows(T, nrows, ncols, code, upper)


@numba.njit(inline="always")
def _less(w1, a1, b1, w2, a2, b2):  # pragma: no cover - compiled
    """``(w1, a1, b1) < (w2, a2, b2)`` lexicographically (``a ≤ b`` global indices)."""
    if w1 != w2:
        return w1 < w2
    if a1 != a2:
        return a1 < a2
    return b1 < b2


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _block_tree(T, k, g0):  # pragma: no cover - compiled
    """Prim on a symmetric ``k × k`` block (only the strict upper triangle is read)."""
    dist = np.empty(k, T.dtype)
    par = np.zeros(k, np.int64)
    rem = np.arange(1, k)  # vertices outside the tree, compacted as they join
    nrem = k - 1
    ea = np.empty(max(k - 1, 0), np.int64)
    eb = np.empty(max(k - 1, 0), np.int64)
    ew = np.empty(max(k - 1, 0), T.dtype)
    for v in range(1, k):
        dist[v] = T[0, v]
    for step in range(k - 1):
        # Select the smallest crossing edge under (w, i, j); par[v] < v or > v: normalise.
        bt = 0
        bv = rem[0]
        bw = dist[bv]
        ba = min(par[bv], bv)
        bb = max(par[bv], bv)
        for t in range(1, nrem):
            v = rem[t]
            a = min(par[v], v)
            b = max(par[v], v)
            if _less(dist[v], a, b, bw, ba, bb):
                bt = t
                bv = v
                bw = dist[v]
                ba = a
                bb = b
        ea[step] = g0 + ba
        eb[step] = g0 + bb
        ew[step] = bw
        nrem -= 1
        rem[bt] = rem[nrem]
        u = bv
        for t in range(nrem):
            v = rem[t]
            w = T[u, v] if u < v else T[v, u]
            a = min(u, v)
            b = max(u, v)
            if _less(w, a, b, dist[v], min(par[v], v), max(par[v], v)):
                dist[v] = w
                par[v] = u
    return ea, eb, ew


def block_tree(T: np.ndarray, k: int, g0: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MST of the complete graph on one block of ``k`` neurons (global indices ``g0 …``).

    Parameters
    ----------
    T : numpy.ndarray, shape (≥ k, ≥ k)
        Dissimilarities; the strict upper triangle of ``T[:k, :k]`` is read.
    k : int
        Number of neurons of the block.
    g0 : int
        Global index of the block's first neuron.

    Returns
    -------
    a, b : numpy.ndarray of int64, shape (k − 1,)
        Global endpoints, ``a < b``.
    w : numpy.ndarray, shape (k − 1,)
        Weights, dtype of ``T``.
    """
    return _block_tree(T, k, g0)


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _pair_tree(X, XT, ka, kb, gi, gj, indptr, nbr, nbw):  # pragma: no cover - compiled
    """Prim on ``T_i ∪ T_j ∪ E(V_i, V_j)``; returns the cross edges of its MST.

    Local vertices ``0 … ka − 1`` are block ``i`` (global ``gi + v``), ``ka … ka + kb − 1``
    block ``j`` (global ``gj + v − ka``), ``gi + ka ≤ gj``. ``X[u, v]`` is the cross weight of
    ``u`` in block ``i`` and ``v`` in block ``j``, ``XT`` its transpose. The block trees are
    the adjacency ``indptr/nbr/nbw`` over local vertices.
    """
    n2 = ka + kb
    big = np.inf
    dist = np.full(n2, big, X.dtype)
    par = np.full(n2, -1, np.int64)
    glob = np.empty(n2, np.int64)
    for v in range(ka):
        glob[v] = gi + v
    for v in range(kb):
        glob[ka + v] = gj + v
    remi = np.arange(0, ka)
    remj = np.arange(ka, n2)
    ni = ka
    nj = kb
    ea = np.empty(n2 - 1, np.int64)
    eb = np.empty(n2 - 1, np.int64)
    ew = np.empty(n2 - 1, X.dtype)
    ne = 0
    # vertex 0 joins first: remove it from remi.
    u = 0
    remi[0] = remi[ni - 1]
    ni -= 1
    for _step in range(n2 - 1):
        dist[u] = -1.0  # in the tree (valid weights are ≥ 0)
        gu = glob[u]
        # Relax the tree neighbours of u (same block).
        for e in range(indptr[u], indptr[u + 1]):
            v = nbr[e]
            if dist[v] < 0:
                continue
            w = nbw[e]
            gv = glob[v]
            p = par[v]
            if p < 0:
                dist[v] = w
                par[v] = u
            else:
                gp = glob[p]
                if _less(w, min(gu, gv), max(gu, gv), dist[v], min(gp, gv), max(gp, gv)):
                    dist[v] = w
                    par[v] = u
        # Relax the other block with u's dense cross row, selecting the best at the same time.
        bw = big
        ba = -1
        bb = -1
        bside = -1
        bt = -1
        if u < ka:
            row = X[u]
            for t in range(nj):
                v = remj[t]
                w = row[v - ka]
                p = par[v]
                gv = glob[v]
                if p < 0:
                    dist[v] = w
                    par[v] = u
                else:
                    gp = glob[p]
                    # gu < gv here (block i precedes block j)
                    if _less(w, gu, gv, dist[v], min(gp, gv), max(gp, gv)):
                        dist[v] = w
                        par[v] = u
                gp = glob[par[v]]
                a = min(gp, gv)
                b = max(gp, gv)
                if bt < 0 or _less(dist[v], a, b, bw, ba, bb):
                    bw = dist[v]
                    ba = a
                    bb = b
                    bside = 1
                    bt = t
            for t in range(ni):
                v = remi[t]
                p = par[v]
                if p < 0:
                    continue
                gv = glob[v]
                gp = glob[p]
                a = min(gp, gv)
                b = max(gp, gv)
                if bt < 0 or _less(dist[v], a, b, bw, ba, bb):
                    bw = dist[v]
                    ba = a
                    bb = b
                    bside = 0
                    bt = t
        else:
            row = XT[u - ka]
            for t in range(ni):
                v = remi[t]
                w = row[v]
                p = par[v]
                gv = glob[v]
                if p < 0:
                    dist[v] = w
                    par[v] = u
                else:
                    gp = glob[p]
                    # gv < gu here
                    if _less(w, gv, gu, dist[v], min(gp, gv), max(gp, gv)):
                        dist[v] = w
                        par[v] = u
                gp = glob[par[v]]
                a = min(gp, gv)
                b = max(gp, gv)
                if bt < 0 or _less(dist[v], a, b, bw, ba, bb):
                    bw = dist[v]
                    ba = a
                    bb = b
                    bside = 0
                    bt = t
            for t in range(nj):
                v = remj[t]
                p = par[v]
                if p < 0:
                    continue
                gv = glob[v]
                gp = glob[p]
                a = min(gp, gv)
                b = max(gp, gv)
                if bt < 0 or _less(dist[v], a, b, bw, ba, bb):
                    bw = dist[v]
                    ba = a
                    bb = b
                    bside = 1
                    bt = t
        if bside == 0:
            v = remi[bt]
            ni -= 1
            remi[bt] = remi[ni]
        else:
            v = remj[bt]
            nj -= 1
            remj[bt] = remj[nj]
        # Keep only the cross edges: the others are edges of T_i or T_j already.
        if (v < ka) != (par[v] < ka):
            ea[ne] = ba
            eb[ne] = bb
            ew[ne] = bw
            ne += 1
        u = v
    return ea[:ne].copy(), eb[:ne].copy(), ew[:ne].copy()


def pair_tree(
    X: np.ndarray,
    XT: np.ndarray,
    ka: int,
    kb: int,
    gi: int,
    gj: int,
    tree_i: tuple[np.ndarray, np.ndarray, np.ndarray],
    tree_j: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cross edges of the MST of ``T_i ∪ T_j ∪ E(V_i, V_j)`` (global endpoints, weights).

    Parameters
    ----------
    X, XT : numpy.ndarray, shapes (≥ ka, ≥ kb) and (≥ kb, ≥ ka)
        Cross dissimilarities of block ``i`` (rows) against block ``j`` and their transpose.
    ka, kb : int
        Block sizes.
    gi, gj : int
        Global index of each block's first neuron (``gi + ka ≤ gj``).
    tree_i, tree_j : (a, b, w)
        The MST of each block (global endpoints).
    """
    a = np.concatenate([tree_i[0] - gi, tree_j[0] - gj + ka])
    b = np.concatenate([tree_i[1] - gi, tree_j[1] - gj + ka])
    w = np.concatenate([tree_i[2], tree_j[2]]).astype(X.dtype, copy=False)
    src = np.concatenate([a, b])
    dst = np.concatenate([b, a])
    ww = np.concatenate([w, w])
    order = np.argsort(src, kind="stable")
    indptr = np.zeros(ka + kb + 1, np.int64)
    np.add.at(indptr, src + 1, 1)
    indptr = np.cumsum(indptr)
    return _pair_tree(X, XT, ka, kb, gi, gj, indptr, dst[order], ww[order])


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _kruskal(n, a, b, order):  # pragma: no cover - compiled
    parent = np.arange(n)
    keep = np.empty(order.shape[0], np.int64)
    nk = 0
    for t in range(order.shape[0]):
        e = order[t]
        x = a[e]
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        y = b[e]
        while parent[y] != y:
            parent[y] = parent[parent[y]]
            y = parent[y]
        if x != y:
            parent[max(x, y)] = min(x, y)
            keep[nk] = e
            nk += 1
            if nk == n - 1:
                break
    return keep[:nk]


def kruskal_forest(
    n: int, a: np.ndarray, b: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum spanning forest of the edges ``(a, b, w)`` on ``n`` vertices, order ``(w, a, b)``.

    Parameters
    ----------
    n : int
        Number of vertices (global indices ``0 … n − 1``).
    a, b : numpy.ndarray of int64, shape (e,)
        Endpoints, ``a < b``; duplicates are allowed (the second copy closes a cycle).
    w : numpy.ndarray, shape (e,)

    Returns
    -------
    (a, b, w) of the forest, in Kruskal's order (ascending ``(w, a, b)``).
    """
    order = np.lexsort((b, a, w))
    keep = _kruskal(n, a, b, order)
    return a[keep], b[keep], w[keep]
