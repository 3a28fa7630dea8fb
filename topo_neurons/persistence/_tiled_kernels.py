"""Compiled kernels of the tiled engine: block Prim, pair Prim, Kruskal, tree adjacency.

Every spanning tree here is the unique minimum spanning tree under one strict total order on
the edges: ``(w, i, j)`` lexicographically (``w`` the dissimilarity, ``i < j`` global neuron
indices), which makes the union of block-pair trees exact (``docs/tiled.md``). All kernels
release the GIL (``nogil=True``) so that tasks run in parallel on threads.
"""

from __future__ import annotations

import numba
import numpy as np

from ._native import _abs_min

__all__ = ["Edges", "block_tree", "connect_components", "kruskal_forest", "pair_tree"]
__all__ += ["tree_adjacency"]

#: A list of weighted edges ``(a, b, w)``: global endpoints ``a < b`` (int64) and weights, each
#: of shape (k,).
Edges = tuple[np.ndarray, np.ndarray, np.ndarray]


@numba.njit(inline="always")
def _less(w1, a1, b1, w2, a2, b2):  # pragma: no cover - compiled
    """``(w1, a1, b1) < (w2, a2, b2)`` lexicographically (``a ≤ b`` global indices)."""
    if w1 != w2:
        return w1 < w2
    if a1 != a2:
        return a1 < a2
    return b1 < b2


@numba.njit(nogil=True, boundscheck=False, fastmath=True, cache=True)
def _relax(row, dist, par, u, lo, hi):  # pragma: no cover - compiled
    """``dist[v] = min(dist[v], row[v − lo])`` for ``v`` in ``[lo, hi)``; count equal entries.

    A straight vectorisable pass (tree vertices hold ``−big``, which no weight beats); strict
    improvements take ``u`` as parent, equalities are left to :func:`_fix_ties`.
    """
    nt = 0
    for v in range(lo, hi):
        w = row[v - lo]
        d = dist[v]
        c = w < d
        nt += w == d
        dist[v] = w if c else d
        par[v] = u if c else par[v]
    return nt


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _fix_ties(row, dist, par, glob, u, lo, hi):  # pragma: no cover - compiled
    """Where ``row`` equals the current distance, keep the smaller edge under ``(d, i, j)``."""
    gu = glob[u]
    for v in range(lo, hi):
        p = par[v]
        if row[v - lo] == dist[v] and p != u:
            gv = glob[v]
            gp = glob[p]
            if _less(0, min(gu, gv), max(gu, gv), 0, min(gp, gv), max(gp, gv)):
                par[v] = u


#: Chunk of the two-level minimum search: ``cmin[c]`` is the smallest ``|dist|`` of chunk ``c``.
_CHUNK = 64


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _relax_chunks(row, dist, par, u, lo, hi, cmin, big):  # pragma: no cover - compiled
    """:func:`_relax` over ``[lo, hi)`` chunk by chunk, refreshing the touched chunks' minima."""
    n = dist.shape[0]
    nt = 0
    for c in range(lo // _CHUNK, (hi - 1) // _CHUNK + 1):
        s = max(lo, c * _CHUNK)
        e = min(hi, (c + 1) * _CHUNK)
        nt += _relax(row[s - lo : e - lo], dist[s:e], par[s:e], u, 0, e - s)
        cmin[c] = _abs_min(dist[c * _CHUNK : min(n, (c + 1) * _CHUNK)], big)
    return nt


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _join(dist, v, cmin, big):  # pragma: no cover - compiled
    """Vertex ``v`` joins the tree (``dist = −big``); its chunk's minimum is refreshed."""
    n = dist.shape[0]
    dist[v] = -big
    c = v // _CHUNK
    cmin[c] = _abs_min(dist[c * _CHUNK : min(n, (c + 1) * _CHUNK)], big)


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _select(dist, par, glob, big, cmin):  # pragma: no cover - compiled
    """The outside vertex whose edge to the tree is smallest under ``(d, i, j)``.

    Two levels: the smallest chunk minimum, then the equal entries of the chunks holding it
    (ties between them are settled by the edge order).
    """
    n = dist.shape[0]
    nc = cmin.shape[0]
    mn = big
    for c in range(nc):
        mn = min(mn, cmin[c])
    best = -1
    ba = 0
    bb = 0
    for c in range(nc):
        if cmin[c] != mn:
            continue
        for v in range(c * _CHUNK, min(n, (c + 1) * _CHUNK)):
            if dist[v] == mn:
                gv = glob[v]
                gp = glob[par[v]]
                a = min(gp, gv)
                b = max(gp, gv)
                if best < 0 or _less(0, a, b, 0, ba, bb):
                    best = v
                    ba = a
                    bb = b
    return best, ba, bb


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _block_tree(T, k, g0):  # pragma: no cover - compiled
    """Prim on a symmetric ``k × k`` block (full rows are read)."""
    big = np.finfo(T.dtype).max
    dist = np.full(k, big, T.dtype)
    par = np.zeros(k, np.int64)
    glob = np.arange(g0, g0 + k)
    cmin = np.full((k + _CHUNK - 1) // _CHUNK, big, T.dtype)
    m = max(k - 1, 0)
    ea = np.empty(m, np.int64)
    eb = np.empty(m, np.int64)
    ew = np.empty(m, T.dtype)
    u = 0
    for step in range(m):
        _join(dist, u, cmin, big)
        row = T[u, :k]
        if _relax_chunks(row, dist, par, u, 0, k, cmin, big):
            _fix_ties(row, dist, par, glob, u, 0, k)
        v, a, b = _select(dist, par, glob, big, cmin)
        ea[step] = a
        eb[step] = b
        ew[step] = dist[v]
        u = v
    return ea, eb, ew


def block_tree(T: np.ndarray, k: int, g0: int) -> Edges:
    """MST of the complete graph on one block of ``k`` neurons (global indices ``g0 …``).

    Parameters
    ----------
    T : numpy.ndarray, shape (≥ k, ≥ k)
        Symmetric dissimilarities of the block (``T[:k, :k]``, weights in [0, 1]).
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
    block ``j`` (global ``gj + v − ka``). ``X[u, v]`` is the cross weight of ``u`` in block
    ``i`` and ``v`` in block ``j``, ``XT`` its transpose. The block trees are the adjacency
    ``indptr/nbr/nbw`` over local vertices.
    """
    n2 = ka + kb
    big = np.finfo(X.dtype).max
    dist = np.full(n2, big, X.dtype)
    par = np.zeros(n2, np.int64)
    glob = np.empty(n2, np.int64)
    cmin = np.full((n2 + _CHUNK - 1) // _CHUNK, big, X.dtype)
    for v in range(ka):
        glob[v] = gi + v
    for v in range(kb):
        glob[ka + v] = gj + v
    ea = np.empty(n2 - 1, np.int64)
    eb = np.empty(n2 - 1, np.int64)
    ew = np.empty(n2 - 1, X.dtype)
    ne = 0
    u = 0
    for _step in range(n2 - 1):
        _join(dist, u, cmin, big)
        gu = glob[u]
        # The tree neighbours of u (same block): a few sparse edges.
        for e in range(indptr[u], indptr[u + 1]):
            v = nbr[e]
            w = nbw[e]
            d = dist[v]
            if d < 0.0 or w > d:
                continue
            if w < d:
                dist[v] = w
                par[v] = u
                cmin[v // _CHUNK] = min(cmin[v // _CHUNK], w)
            else:
                gv = glob[v]
                gp = glob[par[v]]
                if _less(0, min(gu, gv), max(gu, gv), 0, min(gp, gv), max(gp, gv)):
                    par[v] = u
        # The other block, by u's dense cross row.
        if u < ka:
            row = X[u, :kb]
            if _relax_chunks(row, dist, par, u, ka, n2, cmin, big):
                _fix_ties(row, dist, par, glob, u, ka, n2)
        else:
            row = XT[u - ka, :ka]
            if _relax_chunks(row, dist, par, u, 0, ka, cmin, big):
                _fix_ties(row, dist, par, glob, u, 0, ka)
        v, a, b = _select(dist, par, glob, big, cmin)
        # Keep only the cross edges: the others are edges of T_i or T_j already.
        if (v < ka) != (par[v] < ka):
            ea[ne] = a
            eb[ne] = b
            ew[ne] = dist[v]
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
    tree_i: Edges,
    tree_j: Edges,
) -> Edges:
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
    return _pair_tree(X, XT, ka, kb, gi, gj, *tree_adjacency((a, b, w), 0, ka + kb))


def tree_adjacency(tree: Edges, g0: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges ``(a, b, w)`` (first vertex ``g0``) as adjacency ``(indptr, nbr, weight)``."""
    a, b = tree[0] - g0, tree[1] - g0
    src = np.concatenate([a, b])
    order = np.argsort(src, kind="stable")
    indptr = np.zeros(k + 1, np.int64)
    np.add.at(indptr, src + 1, 1)
    return np.cumsum(indptr), np.concatenate([b, a])[order], np.concatenate([tree[2]] * 2)[order]


# A hand-written union-find on purpose (not scipy's DisjointSet, used elsewhere in the package):
# this Kruskal runs on the union of the tile trees (millions of edges for large n) inside the
# tiled engine's Dask tasks; compiled with nogil it runs at C speed and lets the other tasks'
# threads run, where a Python-level DisjointSet would hold the GIL for seconds.
@numba.njit(inline="always")
def _find(parent, x):  # pragma: no cover - compiled
    """Root of ``x`` in the union-find ``parent``, halving the path on the way."""
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _kruskal(n, a, b, order):  # pragma: no cover - compiled
    return _kruskal_into(np.arange(n), a, b, order, n - 1)


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _kruskal_into(parent, a, b, order, limit):  # pragma: no cover - compiled
    """:func:`_kruskal` on a reused identity ``parent`` array, restored to identity after."""
    keep = np.empty(order.shape[0], np.int64)
    nk = 0
    for t in range(order.shape[0]):
        e = order[t]
        x = _find(parent, a[e])
        y = _find(parent, b[e])
        if x != y:
            parent[max(x, y)] = min(x, y)
            keep[nk] = e
            nk += 1
            if nk == limit:
                break
    # Only endpoints (and roots, which are endpoints) were written: reset them.
    for e in range(a.shape[0]):
        parent[a[e]] = a[e]
        parent[b[e]] = b[e]
    return keep[:nk]


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _settle_ties(order, w, a, b):  # pragma: no cover - compiled
    """Sort each run of equal weights of ``order`` (sorted by ``w``) by ``(a, b)``, in place."""
    n = order.shape[0]
    s = 0
    while s < n:
        e = s + 1
        while e < n and w[order[e]] == w[order[s]]:
            e += 1
        if e - s > 32:  # a long run: one stable sort on a·2³¹ + b (insertion sort is quadratic)
            run = order[s:e]
            order[s:e] = run[np.argsort(a[run] * np.int64(2**31) + b[run], kind="mergesort")]
        for t in range(s + 1, e):  # insertion sort (linear on a run sorted just above)
            x = order[t]
            u = t - 1
            while u >= s and (a[order[u]] > a[x] or (a[order[u]] == a[x] and b[order[u]] > b[x])):
                order[u + 1] = order[u]
                u -= 1
            order[u + 1] = x
        s = e


def edge_order(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Indices sorting the edges by ``(w, a, b)``.

    A stable sort on ``w`` (timsort merges sorted parts cheaply), then each run of equal weights
    by ``(a, b)``; when most weights tie (constant neurons, duplicates), one lexicographic sort.
    """
    order = np.argsort(w, kind="stable")
    ws = w[order]
    ties = np.count_nonzero(ws[1:] == ws[:-1])
    if ties > 64 and ties * 8 > w.shape[0]:
        return np.lexsort((b, a, w))
    _settle_ties(order, w, a, b)  # (one pass when nothing ties)
    return order


def kruskal_forest(
    n: int, a: np.ndarray, b: np.ndarray, w: np.ndarray, parent: np.ndarray | None = None
) -> Edges:
    """Minimum spanning forest of the edges ``(a, b, w)`` on ``n`` vertices, order ``(w, a, b)``.

    Parameters
    ----------
    n : int
        Number of vertices (global indices ``0 … n − 1``).
    a, b, w : numpy.ndarray, shape (e,)
        Endpoints ``a < b`` (duplicates allowed: the second copy closes a cycle), weights.
    parent : numpy.ndarray of int64, shape (n,), optional
        A reusable union-find array holding ``arange(n)``, restored before returning.

    Returns
    -------
    (a, b, w) of the forest, in Kruskal's order (ascending ``(w, a, b)``).
    """
    order = edge_order(a, b, w)
    if parent is None:
        keep = _kruskal(n, a, b, order)
    else:
        keep = _kruskal_into(parent, a, b, order, n - 1)
    return a[keep], b[keep], w[keep]


def connect_components(n: int, a: np.ndarray, b: np.ndarray, w: np.ndarray) -> Edges:
    """The MST under ``(d, i, j)`` from a forest ``(a, b, w)`` (``a < b``, Kruskal order)
    that holds its edges of weight < 1; returns its ``n − 1`` edges in Kruskal order.

    Dissimilarities are at most 1, so between two components of the forest ``F`` of the edges
    of weight < 1 every edge weighs exactly 1. Kruskal meets those in the order ``(1, i, j)``:
    first the edges ``(0, x)``, ``x = 1, 2, …``, of which it keeps ``(0, min C)`` for each
    component ``C`` not holding vertex 0; then everything is connected. So the tree is
    ``F ∪ {(0, min C)}``, whatever weight-1 edges the input holds (they are dropped).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    keep = w < 1
    a, b, w = a[keep].astype(np.int64), b[keep].astype(np.int64), w[keep]
    if a.shape[0] == n - 1:
        return a, b, w
    graph = coo_matrix((np.ones(a.shape[0], np.int8), (a, b)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    _, first = np.unique(labels, return_index=True)  # each component's smallest vertex
    first = np.sort(first[labels[first] != labels[0]])
    return (
        np.concatenate([a, np.zeros(first.shape[0], np.int64)]),
        np.concatenate([b, first.astype(np.int64)]),
        np.concatenate([w, np.ones(first.shape[0], w.dtype)]),
    )
