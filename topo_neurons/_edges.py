"""Correlations of given neuron pairs and their gradient, fused, on the CPU (numba).

Used by the topological losses between tree searches (``refresh_every``): the tree's edges
are known, so only ``ρ_k = ⟨z_{i_k}, z_{j_k}⟩`` of the centred unit-norm columns ``z`` of the
activations ``A`` (m, n) is needed. Both kernels sweep the rows of ``A`` once or twice in
their own (row-major) layout: a row of ``n`` values stays in the L1 cache while every edge
reads its two entries, so no normalised copy, no transposed copy and no ``(n − 1) × m``
gather is ever made.

Gradient: with ``G_i = Σ_{k ∋ i} g_k z_{other(k)}`` (the derivative with respect to ``z_i``),
``∂L/∂c_i = (G_i − z_i ⟨z_i, G_i⟩)/‖c_i‖`` through the normalisation, where
``⟨z_i, G_i⟩ = Σ_{k ∋ i} g_k ρ_k`` needs no pass over the data; the centring's projection
(minus the mean over the examples) vanishes because every ``z`` has mean zero. Constant
neurons have ``z = 0``, ``ρ = 0`` on their edges and receive no gradient.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

__all__ = ["EdgeCorrelationCPU"]


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _forward(A, i, j):  # pragma: no cover - compiled
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
def _backward(A, mu, norm, const, i, j, rho, g):  # pragma: no cover - compiled
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


class EdgeCorrelationCPU(torch.autograd.Function):
    """``ρ_k`` of the columns ``(i_k, j_k)`` of a CPU float32/float64 ``A``; fused backward."""

    @staticmethod
    def forward(ctx, A, i, j):  # type: ignore[override]
        a = A.detach().contiguous()
        ii, jj = i.numpy(), j.numpy()
        rho, mu, norm, const = _forward(a.numpy(), ii, jj)
        ctx.save_for_backward(a)  # torch checks that it is not modified before the backward
        ctx.kernel_inputs = (mu, norm, const, ii, jj, rho)
        return torch.from_numpy(rho)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):  # type: ignore[override]
        (a,) = ctx.saved_tensors
        mu, norm, const, ii, jj, rho = ctx.kernel_inputs
        gn = g.detach().to(a.dtype).contiguous().numpy()
        out = _backward(a.numpy(), mu, norm, const, ii, jj, rho, gn)
        return torch.from_numpy(out), None, None
