"""The CPU kernels of the topological losses: the exact tree and the edge correlations (numba).

T1 and T2 need, per step, the minimum spanning tree of ``1 − |ρ|`` (or ``sqrt(1 − ρ²)``: the
same order, so the same trees) and the correlations ``ρ_k`` of its ``n − 1`` edges with their
gradient. On the CPU that is done here, from ``Zᵀ`` (n, m), the centred unit-norm neurons as
contiguous rows, with no ``n × n`` map pass and no validation or sort of the matrix:

* :func:`tree_correlations`: the upper block triangle of the Gram matrix ``ZᵀZ`` (one GEMM per
  block row, written in place), its image copied so that it is bitwise symmetric, then a
  compiled dense Prim on the keys ``(1 + slack) − |ρ|`` computed on the fly (the regulariser's
  ranking matrix, never built), one pass per vertex that both relaxes and finds the next
  vertex; it returns the tree's edges with their ``ρ``, read from the Gram matrix;
* :class:`EdgeSweepCPU`: ``ρ_k = ⟨z_{i_k}, z_{j_k}⟩`` for given edges (the ``refresh_every``
  cache) and their gradient, by fused sweeps over the rows of the activations themselves (no
  normalised or transposed copy: measured faster inside a training step than the Gram path's
  kernels when no tree is searched);
* :class:`EdgeCorrelationCPU`: the autograd function of the tree's ``ρ_k``; its backward is one
  compiled kernel on the rows of ``Zᵀ``, transposed once into the layout of the activations.

Gradient: with ``G_i = Σ_{k ∋ i} g_k z_{other(k)}`` (the derivative with respect to ``z_i``,
accumulated as contiguous row updates), ``∂L/∂c_i = (G_i − z_i ⟨z_i, G_i⟩)/‖c_i‖`` through the
normalisation and ``∂L/∂a_i = ∂L/∂c_i − mean(∂L/∂c_i)`` through the centring. Constant neurons
have ``z = 0``, ``ρ = 0`` on their edges and receive no gradient.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

__all__ = ["EdgeCorrelationCPU", "EdgeSweepCPU", "tree_correlations"]


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _mirror_diagonal(G, i0, i1):  # pragma: no cover - compiled
    """``G[i, j] = G[j, i]`` for ``i0 ≤ i < j < i1``: a diagonal block's upper triangle from
    its lower one (the convention of the torch backend's symmetric ranking matrix)."""
    for i in range(i0, i1):
        out = G[i]
        for j in range(i + 1, i1):
            out[j] = G[j, i]


#: Lanes of the Prim sweep's running minima (a float32 AVX-512 register).
_LANES = 16


@numba.njit(nogil=True, boundscheck=False, fastmath=True, cache=True)
def _relax(row, dist, par, u, top, lanes):  # pragma: no cover - compiled
    """Lower ``dist``/``par`` with row ``u`` (key ``top − |ρ|``); return the next distance.

    Keys are positive; the tree's vertices hold ``−big``, which no key beats and whose
    absolute value never wins the minimum, so one pass both relaxes and finds the smallest
    candidate (``lanes``: independent running minima).
    """
    n = row.shape[0]
    lanes[:] = np.inf
    nl = n - n % _LANES
    for v0 in range(0, nl, _LANES):
        for k in range(_LANES):
            v = v0 + k
            w = top - abs(row[v])
            d = dist[v]
            c = w < d
            d = w if c else d
            dist[v] = d
            par[v] = u if c else par[v]
            lanes[k] = min(lanes[k], abs(d))
    mn = lanes.min()
    for v in range(nl, n):
        w = top - abs(row[v])
        d = dist[v]
        c = w < d
        d = w if c else d
        dist[v] = d
        par[v] = u if c else par[v]
        mn = min(mn, abs(d))
    return mn


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _prim_abs(G, top):  # pragma: no cover - compiled
    """Dense Prim from vertex 0 on the keys ``top − |G|`` (rounded in ``G``'s dtype), as the
    native backend reads a ranking matrix: ties to the first parent and the smallest vertex.
    Returns the edges ``(i < j)`` in the order they joined and ``ρ = G[i, j]``."""
    n = G.shape[0]
    big = np.finfo(G.dtype).max
    top = G.dtype.type(top)
    dist = np.full(n, big, G.dtype)
    par = np.zeros(n, np.int32)
    lanes = np.empty(_LANES, G.dtype)
    ei = np.empty(n - 1, np.int64)
    ej = np.empty(n - 1, np.int64)
    rho = np.empty(n - 1, G.dtype)
    u = 0
    for step in range(n - 1):
        dist[u] = -big
        mn = _relax(G[u], dist, par, np.int32(u), top, lanes)
        v = 0
        while v < n - 1 and dist[v] != mn:
            v += 1
        p = par[v]
        ei[step] = min(p, v)
        ej[step] = max(p, v)
        rho[step] = G[p, v]
        u = v
    return ei, ej, rho


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


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _sweep_forward(A, i, j):  # pragma: no cover - compiled
    m, n = A.shape
    dt = A.dtype.type
    mu = np.zeros(n, dtype=A.dtype)
    lo = A[0].copy()
    hi = A[0].copy()
    for r in range(m):
        for c in range(n):
            v = A[r, c]
            mu[c] += v
            if v < lo[c]:
                lo[c] = v
            if v > hi[c]:
                hi[c] = v
    for c in range(n):
        mu[c] /= dt(m)
    ss = np.zeros(n, dtype=A.dtype)
    acc = np.zeros(i.size, dtype=A.dtype)
    row = np.empty(n, dtype=A.dtype)
    for r in range(m):
        for c in range(n):
            v = A[r, c] - mu[c]
            row[c] = v
            ss[c] += v * v
        for k in range(i.size):
            acc[k] += row[i[k]] * row[j[k]]
    const = lo == hi
    norm = np.sqrt(ss)
    for c in range(n):
        if const[c]:
            norm[c] = dt(1.0)
    rho = np.zeros(i.size, dtype=A.dtype)
    for k in range(i.size):
        if not (const[i[k]] or const[j[k]]):
            rho[k] = acc[k] / (norm[i[k]] * norm[j[k]])
    return rho, mu, norm, const


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _sweep_backward(A, mu, norm, const, i, j, rho, g):  # pragma: no cover - compiled
    m, n = A.shape
    s = np.zeros(n, dtype=A.dtype)
    w = np.zeros(i.size, dtype=A.dtype)
    for k in range(i.size):
        if not (const[i[k]] or const[j[k]]):
            w[k] = g[k]
            s[i[k]] += g[k] * rho[k]
            s[j[k]] += g[k] * rho[k]
    inv = np.empty(n, dtype=A.dtype)
    for c in range(n):
        inv[c] = 0.0 if const[c] else 1.0 / norm[c]
    sc = s * inv
    wa = np.empty(i.size, dtype=A.dtype)
    wb = np.empty(i.size, dtype=A.dtype)
    for k in range(i.size):
        wa[k] = w[k] * inv[i[k]]
        wb[k] = w[k] * inv[j[k]]
    out = np.empty((m, n), dtype=A.dtype)
    z = np.empty(n, dtype=A.dtype)
    for r in range(m):
        o = out[r]
        ar = A[r]
        for c in range(n):
            zc = (ar[c] - mu[c]) * inv[c]
            z[c] = zc
            o[c] = -zc * sc[c]
        for k in range(i.size):
            a, b = i[k], j[k]
            o[a] += wa[k] * z[b]
            o[b] += wb[k] * z[a]
    return out


def tree_correlations(Zt: np.ndarray, rows: int, top: float) -> tuple[np.ndarray, np.ndarray]:
    """The minimum spanning tree of the ranking ``top − |ρ|`` and the ``ρ`` of its edges.

    The keys are those of the regulariser's no-grad ranking matrix (``top = 1 + slack``,
    rounded in ``Zt``'s dtype) built from the same GEMM calls, one per block of ``rows``
    neurons against all later ones, with the same symmetric layout as the torch backend's
    (a diagonal block's pairs read from its lower triangle); Prim follows the native backend
    (ties to the first parent and the smallest vertex). So the tree is the one that ranking
    matrix gives, without building, mapping or validating the matrix.

    Parameters
    ----------
    Zt : numpy.ndarray, shape (n, m), n ≥ 2
        Centred unit-norm neurons as rows (``_normalized_rows`` of the regularisers).
    rows : int
        Neurons per block row of the Gram GEMMs.
    top : float
        The keys' offset (``1 + slack``: keys stay positive when rounding makes ``|ρ| > 1``).

    Returns
    -------
    edges : numpy.ndarray of int64, shape (n − 1, 2)
        ``(i, j)``, ``i < j``, by increasing key (decreasing ``|ρ|``), ties by ``(i, j)``.
    rho : numpy.ndarray, shape (n − 1,), dtype of ``Zt``
        ``ρ`` of each edge: the entry of the no-grad Gram matrix.
    """
    n = Zt.shape[0]
    Zt_t = torch.from_numpy(Zt)
    G = torch.empty((n, n), dtype=Zt_t.dtype)
    Gn = G.numpy()

    for i0 in range(0, n, rows):
        i1 = min(i0 + rows, n)
        # One GEMM per block row (the calls of the ranking matrix), written in place (the
        # upper block triangle only), then its image copied: G is bitwise symmetric, each
        # pair ranked by one value. The GEMMs run on torch's threads, in this thread: the
        # same calls as the ranking matrix of the other paths, so the same keys and ties.
        torch.mm(Zt_t[i0:i1], Zt_t[i0:].T, out=G[i0:i1, i0:])
        G[i1:, i0:i1].copy_(G[i0:i1, i1:].T)
        _mirror_diagonal(Gn, i0, i1)
    ei, ej, rho = _prim_abs(Gn, top)
    key = Gn.dtype.type(top) - np.abs(rho)
    order = np.lexsort((ej, ei, key))
    return np.stack([ei[order], ej[order]], axis=1), rho[order]


class EdgeCorrelationCPU(torch.autograd.Function):
    """``ρ_k`` of the edges ``(i_k, j_k)`` of a CPU float32/float64 ``A``, fused backward.

    Forward inputs: ``A`` (m, n), which receives the gradient; ``rho`` (k,), the correlations
    computed without grad (:func:`tree_correlations`, from ``Zt``);
    ``Zt`` (n, m), ``norm`` (n,, float64) and ``const`` (n,) of the normalisation; the edges'
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


class EdgeSweepCPU(torch.autograd.Function):
    """``ρ_k`` of the columns ``(i_k, j_k)`` of a CPU float32/float64 ``A`` (given edges):
    two fused sweeps over the rows of ``A`` forward, one backward, no normalised copy."""

    @staticmethod
    def forward(ctx, A, i, j):  # type: ignore[override]
        a = A.detach().contiguous()
        ii, jj = i.numpy(), j.numpy()
        rho, mu, norm, const = _sweep_forward(a.numpy(), ii, jj)
        ctx.save_for_backward(a)  # torch checks that it is not modified before the backward
        ctx.kernel_inputs = (mu, norm, const, ii, jj, rho)
        return torch.from_numpy(rho)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):  # type: ignore[override]
        (a,) = ctx.saved_tensors
        mu, norm, const, ii, jj, rho = ctx.kernel_inputs
        gn = g.detach().to(a.dtype).contiguous().numpy()
        out = _sweep_backward(a.numpy(), mu, norm, const, ii, jj, rho, gn)
        return torch.from_numpy(out), None, None
