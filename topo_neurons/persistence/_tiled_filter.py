"""The tiled engine's pair task without the cross tile: GEMM panels streamed through a filter.

A pair task ``(i, j)`` needs the cross edges of ``MST(H)``, ``H = T_i ∪ T_j ∪ E(V_i, V_j)``.
Most cross edges cannot be in it, and a bound proves it while the GEMM panel that produced them
is still in cache:

*Anchor bound.* Let ``(p, q)`` be any cross edge (``p ∈ V_i``, ``q ∈ V_j``) of weight
``w_pq``, ``A(u)`` the largest weight on the path from ``p`` to ``u`` in ``T_i`` and ``B(v)``
that from ``q`` to ``v`` in ``T_j``. The cycle ``u ~ p — q ~ v — u`` lies in ``H``; if
``d(u, v) > max(A(u), w_pq, B(v))`` then ``(u, v)`` is strictly the largest edge of that cycle
(larger in weight, so larger under the order ``(d, i, j)`` whatever the indices), hence not in
``MST(H)`` (cycle property). Removing edges that are not in ``MST(H)`` leaves ``MST(H)``
unchanged, so ``MST(H) = MST(T_i ∪ T_j ∪ K)`` with ``K`` the cross edges that pass
``d(u, v) ≤ max(A(u), w_pq, B(v))``: no entry is rounded differently, ties are kept (``≤``),
and the result is the same unique tree under ``(d, i, j)``.

Each ``256 × 256`` GEMM panel is mapped in place (the same expression as the dense path's
``_map_into``) and the entries below 1 that pass are appended to ``K`` (edges of weight 1 are
left to :func:`~._tiled_kernels.connect_components`). The first panel's smallest entry is the
first anchor; afterwards every threshold is at least the anchor's weight, so a smaller entry
always passes and the smallest new candidate, if smaller, becomes the anchor (``A``, ``B``: two
``O(k)`` tree walks). Kruskal on ``T_i ∪ T_j ∪ K`` (a few thousand edges) gives the cross
edges. Nothing of size ``k²`` is stored. When the filter keeps too many entries (nearly equal
dissimilarities), the caller falls back to the dense pair Prim
(:func:`~._tiled_kernels.pair_tree`).
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from ..correlation import GEMM_TILE
from ._native import _abs_min
from ._tiled_kernels import Edges, _find, _less, _settle_ties

__all__ = ["candidates", "filtered_pair_edges"]


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _map_row(row, code, const_row, const_cols, any_c):  # pragma: no cover - compiled
    """The dense path's map (``_map_into``) in place, as a straight vectorisable pass.

    Code 1 in the row's own precision: for a float32 ``x``, ``1 − |x|`` rounded once is the
    same float whether the subtraction is done in float32 or in float64 and then rounded (it is
    exact in float64 for ``|x| ≥ 2⁻²⁹``, and below that both round to 1), and it never exceeds
    1, so the clamp to [0, 1] is a clamp at 0. Code 2 in float64, rounded once. A constant
    neuron's row (``const_row``) or columns (``const_cols``, if ``any_c``) are 1.
    """
    one = row.dtype.type(1.0)
    zero = row.dtype.type(0.0)
    if const_row:
        row[:] = one
        return
    if code == 1:
        for j in range(row.shape[0]):
            y = one - abs(row[j])
            row[j] = y if y > zero else zero
    else:
        for j in range(row.shape[0]):
            x = np.float64(row[j])
            row[j] = np.sqrt(max(1.0 - x * x, 0.0))
    if any_c:
        for j in range(row.shape[0]):
            if const_cols[j]:
                row[j] = one


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _map_min(tmp, nr, nc, code, const_r, const_c, r0, c0):  # pragma: no cover - compiled
    """Map ``tmp[:nr, :nc]`` in place to dissimilarities; return its first smallest entry.

    The map is the dense path's (``_map_into``): ``1 − |ρ|`` clamped to [0, 1] (code 1) or
    ``sqrt(max(1 − ρ², 0))`` (code 2), rounded once to the panels' dtype; rows of constant
    neurons ``const_r[r0 + i]`` and columns ``const_c[c0 + j]`` are 1.
    """
    best = np.inf
    bi = 0
    bj = 0
    any_c = False
    for j in range(nc):
        any_c |= const_c[c0 + j]
    for i in range(nr):
        row = tmp[i, :nc]
        _map_row(row, code, const_r[r0 + i], const_c[c0 : c0 + nc], any_c)
        mn = _abs_min(row, 2.0)  # mapped entries lie in [0, 1]
        if mn < best:
            best = mn
            bi = i
            for j in range(nc):
                if row[j] == mn:
                    bj = j
                    break
    return best, bi, bj


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _path_max(indptr, nbr, nbw, root, floor, out, stack):  # pragma: no cover - compiled
    """``out[v] = max(floor, largest weight on the tree path root → v)`` for every ``v``."""
    n = out.shape[0]
    for v in range(n):
        out[v] = -1.0
    out[root] = floor
    top = 0
    stack[0] = root
    while top >= 0:
        u = stack[top]
        top -= 1
        for e in range(indptr[u], indptr[u + 1]):
            v = nbr[e]
            if out[v] < 0.0:
                out[v] = max(out[u], nbw[e])
                top += 1
                stack[top] = v


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _map_keep(tmp, geo, const_r, const_c, thr_r, thr_c, mask, ca, cb, cw, cnt, mapped):
    """Map each row of the panel (unless ``mapped``) and append its entries that pass.

    An entry ``(r0 + i, c0 + j)`` passes when ``w ≤ max(thr_r[r0 + i], thr_c[c0 + j])`` and
    ``w < 1`` (edges of weight 1, the largest, are left to :func:`connect_components` of the
    final forest: constant neurons' rows and columns never pass); it is appended as
    ``(r0 + i, ka + c0 + j, w)``. Per row, while it is in cache: the map, then a
    vectorisable pass writes the test into ``mask`` (uint8, ``GEMM_TILE`` entries), read back
    eight flags at a time as uint64 words: only words with a hit are scanned (most have none).
    Returns the new count; stops after the row where it passes ``cap`` (the buffers hold
    ``cap + nc`` entries).
    """  # pragma: no cover - compiled
    nr, nc, r0, c0, code, ka, cap = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5], geo[6]
    any_c = False
    for j in range(nc):
        any_c |= const_c[c0 + j]
    tc = thr_c[c0 : c0 + nc]
    one = tmp.dtype.type(1.0)
    mask[:] = 0  # (the flags past nc stay 0)
    words = mask.view(np.uint64)
    for i in range(nr):
        row = tmp[i, :nc]
        if not mapped:
            _map_row(row, code, const_r[r0 + i], const_c[c0 : c0 + nc], any_c)
        tr = thr_r[r0 + i]
        for j in range(nc):
            mask[j] = np.uint8((row[j] <= max(tr, tc[j])) & (row[j] < one))
        for wi in range((nc + 7) // 8):  # eight flags per word: most words are 0
            if words[wi] == 0:
                continue
            for j in range(wi * 8, min(nc, wi * 8 + 8)):
                if mask[j]:
                    ca[cnt] = r0 + i
                    cb[cnt] = ka + c0 + j
                    cw[cnt] = row[j]
                    cnt += 1
        if cnt > cap:
            break
    return cnt


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _panel(tmp, geo, const_i, const_j, adj_i, adj_j, thr_r, thr_c, stack, mask, ca, cb, cw, state):
    """One GEMM panel: map it, keep its candidates, move the anchor to a smaller entry.

    ``geo`` is ``(nr, nc, r0, c0, code, ka, cap)``; ``state`` is ``(anchor weight, count)``.
    The first panel's smallest entry is the first anchor. After that no separate minimum is
    needed: every threshold is at least the anchor's weight, so an entry smaller than the
    anchor always passes, and the smallest new candidate, if smaller, becomes the anchor.
    Returns False when the count passed ``cap``.
    """  # pragma: no cover - compiled
    nr, nc, r0, c0, code, ka, cap = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5], geo[6]
    first = np.int64(state[1])
    mapped = False
    if state[0] == np.inf:  # the first panel
        w, p, q = _map_min(tmp, nr, nc, code, const_i, const_j, r0, c0)
        _set_anchor(w, r0 + p, c0 + q, adj_i, adj_j, thr_r, thr_c, stack, state)
        mapped = True
    cnt = _map_keep(tmp, geo, const_i, const_j, thr_r, thr_c, mask, ca, cb, cw, first, mapped)
    state[1] = cnt
    if cnt > cap:
        return False
    best = -1
    for e in range(first, cnt):
        if cw[e] < state[0] and (best < 0 or cw[e] < cw[best]):
            best = e
    if best >= 0:
        _set_anchor(cw[best], ca[best], cb[best] - ka, adj_i, adj_j, thr_r, thr_c, stack, state)
    return True


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _set_anchor(w, p, q, adj_i, adj_j, thr_r, thr_c, stack, state):  # pragma: no cover
    """Anchor ``(p, q)`` of weight ``w``: the thresholds become the tree path maxima."""
    state[0] = w
    _path_max(adj_i[0], adj_i[1], adj_i[2], p, w, thr_r, stack)
    _path_max(adj_j[0], adj_j[1], adj_j[2], q, w, thr_c, stack)


def filtered_pair_edges(
    PI: np.ndarray,
    PJ: np.ndarray,
    const_i: np.ndarray,
    const_j: np.ndarray,
    gi: int,
    gj: int,
    code: int,
    tree_i: Edges,
    tree_j: Edges,
    tmp: np.ndarray,
    cap: int,
) -> Edges | None:
    """Cross edges of weight < 1 of ``MST(T_i ∪ T_j ∪ E(V_i, V_j))``, Kruskal order, or ``None``.

    Parameters
    ----------
    PI, PJ : numpy.ndarray, shapes (ka / 256, m, 256), (kb / 256, m, 256)
        The blocks' panels of normalised activations.
    const_i, const_j : numpy.ndarray of bool, shapes (ka,), (kb,)
        Constant neurons (dissimilarity 1 to every other neuron).
    gi, gj : int
        Global index of each block's first neuron (``gi + ka ≤ gj``).
    code : int
        1 for ``"abs"``, 2 for ``"sqrt"``.
    tree_i, tree_j : tuple
        The diagonal tasks' results: the block trees ``(a, b, w)`` (global endpoints, in
        Kruskal order) followed by their adjacency (:func:`~._tiled_kernels.tree_adjacency`).
    tmp : numpy.ndarray, shape (256, 256)
        Scratch GEMM output (dtype of the panels).
    cap : int
        Most candidate edges kept; beyond it ``None`` is returned (the caller runs the dense
        pair Prim).

    Returns
    -------
    (a, b, w) or None
        Global endpoints ``a < b`` (``a`` in block ``i``) and weights, ascending ``(w, a, b)``.
    """
    found = candidates(PI, PJ, const_i, const_j, gi, gj, code, tree_i, tree_j, tmp, cap)
    if found is None:
        return None
    ca, cb, cw = found
    ka, kb = const_i.shape[0], const_j.shape[0]
    ai, bi, wi = tree_i[0] - gi, tree_i[1] - gi, tree_i[2]
    aj, bj, wj = tree_j[0] - gj + ka, tree_j[1] - gj + ka, tree_j[2]
    order = np.argsort(cw, kind="stable")
    _settle_ties(order, cw, ca, cb)
    keep = _pair_kruskal(ai, bi, wi, aj, bj, wj, ca, cb, cw, order, ka + kb)
    return ca[keep] + gi, cb[keep] - ka + gj, cw[keep]


def candidates(
    PI: np.ndarray,
    PJ: np.ndarray,
    const_i: np.ndarray,
    const_j: np.ndarray,
    gi: int,
    gj: int,
    code: int,
    tree_i: Edges,
    tree_j: Edges,
    tmp: np.ndarray,
    cap: int,
) -> Edges | None:
    """The cross edges that pass the anchor filter (local endpoints: block ``j`` from ``ka``).

    Same parameters as :func:`filtered_pair_edges`; ``None`` beyond ``cap`` candidates.
    """
    ka, kb = const_i.shape[0], const_j.shape[0]
    adj_i, adj_j = tree_i[3:], tree_j[3:]
    thr_r = np.empty(ka, tmp.dtype)
    thr_c = np.empty(kb, tmp.dtype)
    stack = np.empty(max(ka, kb), np.int64)
    mask = np.zeros(GEMM_TILE, np.uint8)
    ca = np.empty(cap + GEMM_TILE, np.int64)
    cb = np.empty(cap + GEMM_TILE, np.int64)
    cw = np.empty(cap + GEMM_TILE, tmp.dtype)
    state = np.array([np.inf, 0.0])
    ti, tj, tt = torch.from_numpy(PI), torch.from_numpy(PJ), torch.from_numpy(tmp)
    lefts = [ti[a].T for a in range(ti.shape[0])]
    rights = [tj[b] for b in range(tj.shape[0])]
    geos = [
        [
            np.array([min(GEMM_TILE, ka - r0), min(GEMM_TILE, kb - c0), r0, c0, code, ka, cap])
            for c0 in range(0, kb, GEMM_TILE)
        ]
        for r0 in range(0, ka, GEMM_TILE)
    ]
    args = (const_i, const_j, adj_i, adj_j, thr_r, thr_c, stack, mask, ca, cb, cw, state)
    with torch.no_grad():
        for left, row in zip(lefts, geos, strict=True):
            for right, geo in zip(rights, row, strict=True):
                torch.mm(left, right, out=tt)  # the dense path's call (gram_tile)
                if not _panel(tmp, geo, *args):
                    return None
    cnt = int(state[1])
    return ca[:cnt], cb[:cnt], cw[:cnt]


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _pair_kruskal(ai, bi, wi, aj, bj, wj, ca, cb, cw, order, n):  # pragma: no cover
    """Kruskal on ``T_i ∪ T_j ∪ K``: three lists each ascending ``(w, a, b)``, merged on the
    fly (local indices; block ``j``'s shifted by ``ka``); the kept candidates' indices."""
    parent = np.arange(n)
    keep = np.empty(order.shape[0], np.int64)
    nk = 0
    joined = 0
    x = y = z = 0
    nx, ny, nz = ai.shape[0], aj.shape[0], order.shape[0]
    while joined < n - 1 and (x < nx or y < ny or z < nz):
        # The smallest head of the three lists; only candidates (list z) are cross edges.
        src = -1
        if x < nx:
            src, w, a, b = 0, wi[x], ai[x], bi[x]
        if y < ny and (src < 0 or _less(wj[y], aj[y], bj[y], w, a, b)):
            src, w, a, b = 1, wj[y], aj[y], bj[y]
        if z < nz:
            e = order[z]
            if src < 0 or _less(cw[e], ca[e], cb[e], w, a, b):
                src, w, a, b = 2, cw[e], ca[e], cb[e]
        if src == 0:
            x += 1
        elif src == 1:
            y += 1
        else:
            z += 1
        a = _find(parent, a)
        b = _find(parent, b)
        if a != b:
            parent[max(a, b)] = min(a, b)
            joined += 1
            if src == 2:
                keep[nk] = order[z - 1]
                nk += 1
    return keep[:nk]
