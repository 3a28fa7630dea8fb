"""The CPU kernels of the topological losses: the exact tree and the edge correlations (numba).

T1 and T2 need, per step, the minimum spanning tree of ``1 − |ρ|`` (or ``sqrt(1 − ρ²)``: the
same order, so the same trees) and the correlations ``ρ_k`` of its ``n − 1`` edges with their
gradient. On the CPU that is done here, with no ``n × n`` map pass and no sort of the matrix:

* :func:`normalized_columns`: ``Zᵀ`` (n, m), the centred unit-norm neurons as contiguous rows
  (one transposed copy of the activations ``A`` (m, n), then one compiled pass per row, sums
  in float64; a constant neuron: a zero row, norm 1);
* :func:`tree_correlations`: the upper block triangle of the Gram matrix ``ZᵀZ`` (one GEMM per
  block row, written in place, the rows dealt to torch's threads), its lower image copied, then
  a compiled dense Prim that ranks the edges by ``|ρ|`` itself (largest first, i.e. smallest
  dissimilarity; ties to the first parent and the smallest vertex, as the native backend) in
  one pass per vertex that both relaxes and finds the next vertex; it returns the tree's edges
  with their ``ρ``, read from the Gram matrix;
* :func:`edge_correlations`: ``ρ_k = ⟨z_{i_k}, z_{j_k}⟩`` for given edges (the ``refresh_every``
  cache), one contiguous dot product per edge;
* :class:`EdgeCorrelationCPU`: the autograd function of those ``ρ_k``; its backward is one
  compiled kernel on the rows of ``Zᵀ``, transposed once into ``A``'s layout.

Gradient: with ``G_i = Σ_{k ∋ i} g_k z_{other(k)}`` (the derivative with respect to ``z_i``,
accumulated as contiguous row updates), ``∂L/∂c_i = (G_i − z_i ⟨z_i, G_i⟩)/‖c_i‖`` through the
normalisation and ``∂L/∂a_i = ∂L/∂c_i − mean(∂L/∂c_i)`` through the centring. Constant neurons
have ``z = 0``, ``ρ = 0`` on their edges and receive no gradient.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
import torch

from ._threads import run_on_tile_threads

__all__ = ["EdgeCorrelationCPU", "edge_correlations", "normalized_columns", "tree_correlations"]

#: Neurons per row block of the Gram GEMMs (measured: 128–256 are equally fast at n ≈ 1000).
_GRAM_BLOCK = 256


@numba.njit(nogil=True, boundscheck=False, fastmath=True, cache=True)
def _normalize_rows(Zt, const):  # pragma: no cover - compiled
    """Centre and scale each row of ``Zt`` (n, m) in place (a constant row: zero, norm 1).

    Sums in float64, rounded once to the dtype of ``Zt``; returns the norms (float64).
    """
    n, m = Zt.shape
    norm = np.empty(n, np.float64)
    for c in range(n):
        z = Zt[c]
        s = 0.0
        for r in range(m):
            s += z[r]
        mu = s / m
        ss = 0.0
        for r in range(m):
            v = z[r] - mu
            ss += v * v
        if const[c]:
            norm[c], inv = 1.0, 0.0
        else:
            norm[c] = np.sqrt(ss)
            inv = 1.0 / norm[c]
        for r in range(m):
            z[r] = (z[r] - mu) * inv
    return norm


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _mirror_diagonal(G, i0, i1):  # pragma: no cover - compiled
    """``G[j, i] = G[i, j]`` for ``i0 ≤ i < j < i1`` (a diagonal block's lower triangle)."""
    for j in range(i0, i1):
        out = G[j]
        for i in range(i0, j):
            out[i] = G[i, j]


#: Lanes of the Prim sweep's running maxima (a float32 AVX-512 register).
_LANES = 16


@numba.njit(nogil=True, boundscheck=False, fastmath=True, cache=True)
def _relax(row, best, par, u, lanes):  # pragma: no cover - compiled
    """Raise ``best``/``par`` with ``|row|`` (row ``u``); return the largest candidate.

    The tree's vertices hold ``8``, never raised, and ``min(x, 4 − x)`` maps them to ``−4``
    while leaving every candidate (``≤ 1`` up to rounding, or ``−1``) as it is, so one pass
    both relaxes and finds the maximum (``lanes``: independent running maxima).
    """
    n = row.shape[0]
    four = best.dtype.type(4.0)
    lanes[:] = -8.0
    nl = n - n % _LANES
    for v0 in range(0, nl, _LANES):
        for k in range(_LANES):
            v = v0 + k
            w = abs(row[v])
            d = best[v]
            c = w > d
            d = w if c else d
            best[v] = d
            par[v] = u if c else par[v]
            lanes[k] = max(lanes[k], min(d, four - d))
    mx = lanes.max()
    for v in range(nl, n):
        w = abs(row[v])
        d = best[v]
        c = w > d
        d = w if c else d
        best[v] = d
        par[v] = u if c else par[v]
        mx = max(mx, min(d, four - d))
    return mx


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _prim_abs(G):  # pragma: no cover - compiled
    """Prim on ``|G|`` (largest first) from vertex 0; ties: the smallest index, the first
    parent. Returns the edges ``(i < j)`` in the order they joined and ``ρ = G[i, j]``."""
    n = G.shape[0]
    best = np.full(n, -1.0, G.dtype)  # largest |ρ| to the tree; −1: none yet; 8: in the tree
    par = np.zeros(n, np.int32)
    lanes = np.empty(_LANES, G.dtype)
    ei = np.empty(n - 1, np.int64)
    ej = np.empty(n - 1, np.int64)
    rho = np.empty(n - 1, G.dtype)
    u = 0
    for step in range(n - 1):
        best[u] = 8.0
        mx = _relax(G[u], best, par, np.int32(u), lanes)
        v = 0
        while best[v] != mx:
            v += 1
        p = par[v]
        ei[step] = min(p, v)
        ej[step] = max(p, v)
        rho[step] = G[p, v]
        u = v
    return ei, ej, rho


@numba.njit(nogil=True, boundscheck=False, fastmath=True, cache=True)
def _dots(Zt, i, j):  # pragma: no cover - compiled
    """``ρ_k = ⟨Zt[i_k], Zt[j_k]⟩`` (float64 accumulation, rounded once)."""
    m = Zt.shape[1]
    rho = np.empty(i.size, Zt.dtype)
    for k in range(i.size):
        a, b = Zt[i[k]], Zt[j[k]]
        s = 0.0
        for r in range(m):
            s += np.float64(a[r]) * np.float64(b[r])
        rho[k] = s
    return rho


@numba.njit(nogil=True, boundscheck=False, fastmath=True, cache=True)
def _axpy(y, a, x):  # pragma: no cover - compiled
    """``y += a·x`` (two distinct rows: a separate function lets the loop vectorise)."""
    for r in range(x.shape[0]):
        y[r] += a * x[r]


@numba.njit(nogil=True, boundscheck=False, fastmath=True, cache=True)
def _backward(Zt, norm, const, i, j, g):  # pragma: no cover - compiled
    """``(∂L/∂A)ᵀ`` (n, m) from ``g = ∂L/∂ρ`` (see the module docstring)."""
    n, m = Zt.shape
    one = Zt.dtype.type
    Gt = np.zeros((n, m), Zt.dtype)
    for k in range(i.size):
        a, b = i[k], j[k]
        if const[a] or const[b]:
            continue
        gk = one(g[k])
        _axpy(Gt[a], gk, Zt[b])
        _axpy(Gt[b], gk, Zt[a])
    for c in range(n):
        z, gc = Zt[c], Gt[c]
        s = 0.0
        for r in range(m):
            s += gc[r] * z[r]
        s = one(s)
        mean = 0.0
        for r in range(m):
            y = gc[r] - z[r] * s
            gc[r] = y
            mean += y
        mean = one(mean / m)
        inv = one(1.0 / norm[c])
        for r in range(m):
            gc[r] = (gc[r] - mean) * inv
    return Gt


def normalized_columns(
    A: torch.Tensor, const: torch.Tensor
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``Zᵀ``: the centred unit-norm neurons as contiguous rows, and the column norms.

    Parameters
    ----------
    A : torch.Tensor, shape (m, n)
        Finite CPU float32/float64 activations (read, never modified).
    const : torch.Tensor of bool, shape (n,)
        The constant columns (``max == min``): zero rows of ``Zᵀ``, norm 1.

    Returns
    -------
    Zt : numpy.ndarray, shape (n, m), dtype of ``A``
    norm : numpy.ndarray of float64, shape (n,)
    const : numpy.ndarray of bool, shape (n,)
    """
    # A copy (modified in place below) in the transposed layout, by torch's blocked transpose.
    Zt = A.detach().T.clone(memory_format=torch.contiguous_format).numpy()
    c = const.numpy()
    return Zt, _normalize_rows(Zt, c), c


def tree_correlations(Zt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The minimum spanning tree of ``1 − |ρ|`` and the correlations ``ρ`` of its edges.

    Parameters
    ----------
    Zt : numpy.ndarray, shape (n, m), n ≥ 2
        Centred unit-norm neurons as rows (:func:`normalized_columns`).

    Returns
    -------
    edges : numpy.ndarray of int64, shape (n − 1, 2)
        ``(i, j)``, ``i < j``, by decreasing ``|ρ|`` (increasing dissimilarity), ties by
        ``(i, j)``.
    rho : numpy.ndarray, shape (n − 1,), dtype of ``Zt``
        ``ρ`` of each edge: the entry of the no-grad Gram matrix.
    """
    n = Zt.shape[0]
    Zt_t = torch.from_numpy(Zt)
    G = torch.empty((n, n), dtype=Zt_t.dtype)
    Gn = G.numpy()

    def block_rows(starts: Sequence[int]) -> None:
        for i0 in starts:
            i1 = min(i0 + _GRAM_BLOCK, n)
            # One GEMM per block row, written in place (the upper block triangle only), then
            # its lower image copied: G is bitwise symmetric, each pair ranked by one value.
            torch.mm(Zt_t[i0:i1], Zt_t[i0:].T, out=G[i0:i1, i0:])
            G[i1:, i0:i1].copy_(G[i0:i1, i1:].T)
            _mirror_diagonal(Gn, i0, i1)

    # Block row b holds n − b·_GRAM_BLOCK columns. The threads (torch's thread count, one
    # BLAS thread each) are dealt the rows round-robin; a snake order (each round of
    # ``workers`` rows reversed after the last) evens out their work.
    workers = max(1, torch.get_num_threads())
    starts = list(range(0, n, _GRAM_BLOCK))
    rounds = [starts[k : k + workers] for k in range(0, len(starts), workers)]
    order = [s for r, rnd in enumerate(rounds) for s in (rnd[::-1] if r % 2 else rnd)]
    run_on_tile_threads(block_rows, order)
    ei, ej, rho = _prim_abs(Gn)
    order = np.lexsort((ej, ei, -np.abs(rho)))
    return np.stack([ei[order], ej[order]], axis=1), rho[order]


def edge_correlations(Zt: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``ρ_k = ⟨z_{i_k}, z_{j_k}⟩`` of given edges (k, 2) from the rows of ``Zt`` (n, m)."""
    return _dots(Zt, np.ascontiguousarray(edges[:, 0]), np.ascontiguousarray(edges[:, 1]))


class EdgeCorrelationCPU(torch.autograd.Function):
    """``ρ_k`` of the edges ``(i_k, j_k)`` of a CPU float32/float64 ``A``, fused backward.

    Forward inputs: ``A`` (m, n), which receives the gradient; ``rho`` (k,), the correlations
    computed without grad (:func:`tree_correlations` or :func:`edge_correlations`, from ``Zt``);
    ``Zt`` (n, m), ``norm`` (n,) and ``const`` (n,) of :func:`normalized_columns`; the edges'
    ends ``i``, ``j`` (int64 arrays). An edge touching a constant neuron has ``ρ = 0`` and
    passes no gradient.
    """

    @staticmethod
    def forward(ctx, A, rho, Zt, norm, const, i, j):  # type: ignore[override]
        rho = np.where(const[i] | const[j], 0.0, rho).astype(Zt.dtype, copy=False)
        ctx.kernel_inputs = (Zt, norm, const, i, j)
        return torch.from_numpy(rho)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):  # type: ignore[override]
        Zt, norm, const, i, j = ctx.kernel_inputs
        gn = g.detach().to(torch.float64 if Zt.dtype == np.float64 else torch.float32)
        Gt = torch.from_numpy(_backward(Zt, norm, const, i, j, gn.contiguous().numpy()))
        # In A's layout (torch's blocked transpose): the recorded layers read it row by row.
        return Gt.T.contiguous(), None, None, None, None, None, None
