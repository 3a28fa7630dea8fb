"""The exact minimum spanning tree in torch operations, on the tensor's device (Borůvka).

Every edge of the complete graph is ranked by the strict total order ``(d, i, j)``
(lexicographic, ``i < j``) of the tiled engine, so the minimum spanning tree is unique and
equal, edge for edge, to the tiled engine's (and the deaths, read from the same values, equal
bit for bit). A Borůvka round finds, for every vertex, its smallest edge to another component
(a row-wise reduction), keeps per component the smallest of these (two ``scatter_reduce``
passes over the component labels) and merges the components along them (hooking, then pointer
jumping). Every component with an outgoing edge merges in a round, so ``⌈log₂ n⌉`` rounds
suffice: a fixed number of rounds, with no ``.item()``, no host copy and no data-dependent
Python branch, so a round never waits for the device (rounds after completion change nothing).

Why the per-row reduction may break ties by the column alone: for a fixed row ``i`` the edges
``(min(i, j), max(i, j))`` of equal ``d`` are ordered as their ``j`` (``j < i`` gives ``(j, i)``,
smaller than any ``(i, j')`` with ``j' > i``), so the smallest ``(d, j)`` of a row is its
smallest edge under ``(d, i, j)``. Across the vertices of a component the edge itself decides:
the smallest ``d`` first, then the smallest packed key ``i·n + j`` among the vertices holding it.

This module holds the rounds and the dense path (an ``n × n`` matrix ``D`` on any device);
:mod:`._torch_tiles` feeds the same rounds from activations, tile by tile.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

__all__ = ["boruvka", "dense_row_minima", "device_distance_tensor", "torch_mst_dense"]

#: Elements of the temporaries of one row chunk of the dense reduction (64 Mi: 256 MiB float32).
_CHUNK_ELEMS = 1 << 26

#: ``best_d, best_j = row_minima(comp)``: for every vertex its smallest ``(d, j)`` to a vertex of
#: another component (``d = inf`` where there is none).
RowMinima = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def rounds_for(n: int) -> int:
    """``⌈log₂ n⌉``: Borůvka rounds that always complete a tree on ``n`` vertices."""
    return max(1, math.ceil(math.log2(n))) if n > 1 else 0


def _merge(
    comp: torch.Tensor,
    best_d: torch.Tensor,
    best_j: torch.Tensor,
    slot_key: torch.Tensor,
    slot_d: torch.Tensor,
    big: int,
    idx: torch.Tensor,
    jumps: int,
) -> torch.Tensor:
    """One Borůvka merge: per component its minimum edge, hooking, pointer jumping.

    ``comp[v]`` is the label of ``v``'s component: its root, a vertex id. A root that hooks onto
    another component is never a root again, so the edge it hooks by is stored in its own
    slot (``slot_key``, ``slot_d``, updated in place): ``n − 1`` slots fill up exactly once.
    ``idx`` is ``arange(n)``; ``jumps`` pointer-jumping steps must cover the depth of the hook
    forest (fewer than the components at the round's start: ``log₂`` of their bound suffices).
    """
    n = comp.shape[0]
    valid = torch.isfinite(best_d)
    key = torch.minimum(idx, best_j) * n + torch.maximum(idx, best_j)
    # Per component: the smallest d, then the smallest edge key among the vertices holding it.
    dmin = torch.full_like(best_d, float("inf")).scatter_reduce_(
        0, comp, best_d, "amin", include_self=True
    )
    key = torch.where(valid & (best_d == dmin[comp]), key, big)
    kmin = torch.full_like(key, big).scatter_reduce_(0, comp, key, "amin", include_self=True)
    has = kmin < big  # a root with an outgoing edge (non-root labels hold no vertex)
    u = torch.where(has, kmin // n, idx)
    v = torch.where(has, kmin % n, idx)
    cu, cv = comp[u], comp[v]
    other = torch.where(has, torch.where(cu == idx, cv, cu), idx)
    # Two components choosing the same edge: the smaller label stays the root.
    mutual = has & (kmin[other] == kmin)
    hook = has & ~(mutual & (idx < other))
    parent = torch.where(hook, other, idx)
    slot_key.copy_(torch.where(hook, kmin, slot_key))
    slot_d.copy_(torch.where(hook, dmin, slot_d))
    # Each step doubles the distance a label jumps: 2^jumps ≥ the forest's depth + 1.
    for _ in range(jumps):
        parent = parent[parent]
    return parent[comp]


def boruvka(
    n: int,
    row_minima: RowMinima,
    dtype: torch.dtype,
    device: torch.device,
    *,
    early_exit: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Borůvka rounds on ``n`` vertices fed by ``row_minima``.

    Parameters
    ----------
    n : int
        Number of vertices (``≥ 1``).
    row_minima : callable
        ``row_minima(comp) → (best_d, best_j)``, shapes (n,): each vertex's smallest ``(d, j)``
        to a vertex of another component under the labels ``comp`` (``d = inf`` where none).
    dtype, device
        Of the weights and of every tensor made here.
    early_exit : bool, default False
        Stop once one component is left (one host synchronisation per round). ``False``: the
        fixed ``⌈log₂ n⌉`` rounds, no synchronisation at all.

    Returns
    -------
    a, b : torch.LongTensor, shape (n − 1,)
        The tree's edges ``a < b``, in ascending ``(d, a, b)``.
    d : torch.Tensor, shape (n − 1,)
        Their weights as ``row_minima`` gave them.
    """
    big = n * n  # larger than every edge key i·n + j (i < j < n)
    comp = torch.arange(n, device=device)
    slot_key = torch.full((n,), big, dtype=torch.long, device=device)
    slot_d = torch.full((n,), float("inf"), dtype=dtype, device=device)
    idx = torch.arange(n, device=device)
    L = rounds_for(n)
    for r in range(L):
        best_d, best_j = row_minima(comp)
        # Round r starts with at most n / 2^r components: the hook forest is shallower than
        # that, so ⌈log₂ n⌉ − r + 1 doublings reach every root.
        comp = _merge(comp, best_d, best_j, slot_key, slot_d, big, idx, L - r + 1)
        if early_exit and bool((comp == comp[0]).all()):
            break
    # The root's slot stays (inf, big): sorted last, it is the one left out. Sort by the key,
    # then stably by d: ascending (d, a, b) without a host round trip.
    order = torch.argsort(slot_key, stable=True)
    order = order[torch.argsort(slot_d[order], stable=True)][: n - 1]
    key = slot_key[order]
    # Only a NaN weight can leave a slot unfilled (the device assertion of the losses reports
    # it): its key decodes to an index kept inside [0, n) so that no gather goes out of bounds.
    return (key // n).clamp_(max=n - 1), key % n, slot_d[order]


def dense_row_minima(
    D: torch.Tensor, *, symmetric: bool, chunk_elems: int = _CHUNK_ELEMS
) -> RowMinima:
    """``row_minima`` of a dense ``n × n`` matrix, by row chunks (bounded temporaries).

    ``symmetric=False``: the weight of ``{i, j}`` is the upper-triangle entry
    ``D[min(i, j), max(i, j)]`` (what the other backends read), so that both ends of an edge
    see one value; ``True``: ``D`` is bitwise symmetric and only its rows are read.
    """
    n = D.shape[0]
    rows = max(1, min(n, chunk_elems // max(n, 1)))
    idx = torch.arange(n, device=D.device)
    inf = torch.full((), float("inf"), dtype=D.dtype, device=D.device)

    def row_minima(comp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        best_d = torch.empty(n, dtype=D.dtype, device=D.device)
        best_j = torch.empty(n, dtype=torch.long, device=D.device)
        for r0 in range(0, n, rows):
            r1 = min(n, r0 + rows)
            X = D[r0:r1]
            if not symmetric:
                X = torch.where(idx[None, :] > idx[r0:r1, None], X, D[:, r0:r1].T)
            X = X.masked_fill(comp[r0:r1, None] == comp[None, :], inf)
            j = torch.argmin(X, dim=1)  # the first of equal minima: the smallest j
            best_j[r0:r1] = j
            best_d[r0:r1] = X.gather(1, j[:, None]).squeeze(1)
        return best_d, best_j

    return row_minima


def torch_mst_dense(
    D: torch.Tensor, *, symmetric: bool = False, early_exit: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact MST of a dense distance matrix under ``(d, i, j)``, on ``D``'s device.

    Parameters
    ----------
    D : torch.Tensor, shape (n, n), float32 or float64
        Distances (valid: finite, non-negative; the upper triangle is read unless
        ``symmetric``). Not checked here; no gradient is tracked.
    symmetric : bool, default False
        ``D`` is bitwise symmetric: read rows only (half the memory traffic).
    early_exit : bool, default False
        Stop when the tree is complete (one host synchronisation per round).

    Returns
    -------
    edges : torch.LongTensor, shape (n − 1, 2)
        ``(i, j)``, ``i < j``, in ascending ``(d, i, j)``, on ``D``'s device.
    deaths : torch.Tensor, shape (n − 1,)
        ``D[i, j]``, dtype and device of ``D``, ascending.
    """
    n = D.shape[0]
    with torch.no_grad():
        D = D.detach()
        if n < 2:
            return (
                torch.empty((0, 2), dtype=torch.long, device=D.device),
                torch.empty(0, dtype=D.dtype, device=D.device),
            )
        fn = dense_row_minima(D, symmetric=symmetric)
        a, b, d = boruvka(n, fn, D.dtype, D.device, early_exit=early_exit)
        return torch.stack([a, b], dim=1), d


def device_distance_tensor(D: torch.Tensor) -> torch.Tensor:
    """``D`` detached, float32 kept (else float64), checked on its own device.

    The checks are those of :func:`~topo_neurons.persistence.validate_distance_matrix`
    (finite, non-negative, zero diagonal and symmetric to its tolerance), computed on the
    device; one host synchronisation reads the verdict, and only an invalid matrix is copied
    to the host, where the exact check names the first offending entry.
    """
    from ._validate import SYMMETRY_RTOL, check_distance_matrix

    D = D.detach()
    if D.is_complex() or D.dtype == torch.bool:
        raise TypeError(f"distance matrix must hold real numbers; got dtype {D.dtype}")
    if D.dtype != torch.float32:
        D = D.to(torch.float64)
    if D.ndim != 2 or D.shape[0] != D.shape[1]:
        raise ValueError(f"distance matrix must be square (n, n); got shape {tuple(D.shape)}")
    n = D.shape[0]
    if n == 0:
        raise ValueError(
            f"distance matrix is empty (shape {tuple(D.shape)}); at least one point is needed"
        )
    rtol = SYMMETRY_RTOL[{torch.float32: np.dtype(np.float32)}.get(D.dtype, np.dtype(np.float64))]
    rows = max(1, min(n, _CHUNK_ELEMS // n))
    bad = torch.zeros((), dtype=torch.bool, device=D.device)
    with torch.no_grad():
        for r0 in range(0, n, rows):
            X, XT = D[r0 : r0 + rows], D[:, r0 : r0 + rows].T
            tol = rtol * (1.0 + torch.maximum(X.abs(), XT.abs()))
            bad |= (~torch.isfinite(X)).any() | (X < 0).any() | ((X - XT).abs() > tol).any()
        bad |= (D.diagonal().abs() > rtol).any()
    if bool(bad):  # the one synchronisation: raise with the offending entry named
        check_distance_matrix(np.ascontiguousarray(D.cpu().numpy()))
    return D
