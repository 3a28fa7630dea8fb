"""The tiled engine's panels of ``Z`` made in place: no second ``m × n`` copy.

:func:`~topo_neurons.correlation.gemm_panels` copies ``Z`` (``m × n``) into panels of
``GEMM_TILE`` neurons (``(n / 256, m, 256)``); at a million neurons × 256 examples in float32
that is a second GiB next to ``Z``. When ``n`` is a multiple of ``GEMM_TILE`` and ``Z`` is
C-contiguous and ours, the panels are a permutation of ``Z``'s own storage: ``Z`` viewed as an
``m × (n / 256)`` matrix whose entries are rows of 256 values, transposed in place by following
the cycles of the permutation (one 256-value row of scratch). The values are moved, never
computed, so the panels are bitwise those of ``gemm_panels``.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from ..correlation import GEMM_TILE, gemm_panels

__all__ = ["panels_of"]


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _transpose_units(U, m, nb):  # pragma: no cover - compiled
    """Transpose the ``m × nb`` matrix of rows ``U`` (shape ``(m·nb, w)``) in place.

    Before: entry ``(r, c)`` at row ``r·nb + c``; after: at row ``c·m + r``.
    """
    total = m * nb
    seen = np.zeros(total, np.bool_)
    hold = np.empty(U.shape[1], U.dtype)
    for start in range(total):
        if seen[start]:
            continue
        seen[start] = True
        # Position ``cur`` of the result holds entry (r, c) = (cur % m, cur // m), which
        # sits at row (cur % m)·nb + cur // m before the move.
        src = (start % m) * nb + start // m
        if src == start:
            continue
        hold[:] = U[start]
        cur = start
        while src != start:
            U[cur] = U[src]
            seen[src] = True
            cur = src
            src = (cur % m) * nb + cur // m
        U[cur] = hold


def _shares_memory(Z: torch.Tensor, A: object) -> bool:
    """Whether ``Z`` (C-contiguous, on the CPU) and an array or tensor ``A`` may overlap."""
    if not isinstance(A, torch.Tensor):  # numpy's bounds test: any strides or byte order
        return bool(np.may_share_memory(Z.numpy(), np.asarray(A)))
    src = A.detach()
    if src.device.type != "cpu" or src.numel() == 0:
        return False
    a0 = src.untyped_storage().data_ptr()
    a1 = a0 + src.untyped_storage().nbytes()
    z0 = Z.untyped_storage().data_ptr()
    return z0 < a1 and a0 < z0 + Z.untyped_storage().nbytes()


def panels_of(Z: torch.Tensor, source: object = None) -> np.ndarray:
    """``gemm_panels(Z)`` as a numpy array, made in ``Z``'s storage when it can be.

    Parameters
    ----------
    Z : torch.Tensor, shape (m, n)
        Normalised activations owned by the caller, who does not read ``Z`` afterwards (when
        ``n % GEMM_TILE == 0`` and ``Z`` is C-contiguous on the CPU, its storage is reused).
    source : array or tensor, optional
        The user's activations: if ``Z`` shares their memory it is copied first (never
        expected, as normalising allocates; the user's array is never reordered).

    Returns
    -------
    numpy.ndarray, shape (ceil(n / GEMM_TILE), m, GEMM_TILE)
        Bitwise equal to ``gemm_panels(Z).numpy()``.
    """
    m, n = Z.shape
    if n % GEMM_TILE or not Z.is_contiguous() or Z.device.type != "cpu" or m < 2:
        return gemm_panels(Z).numpy()
    if source is not None and _shares_memory(Z, source):
        Z = Z.clone()
    nb = n // GEMM_TILE
    U = Z.numpy().reshape(m * nb, GEMM_TILE)
    _transpose_units(U, m, nb)
    return U.reshape(nb, m, GEMM_TILE)
