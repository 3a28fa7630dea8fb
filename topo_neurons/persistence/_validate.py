"""Validation of distance matrices before any backend runs.

Neither giotto-ph nor GUDHI checks for NaN, and on an asymmetric matrix giotto-ph reads the upper
triangle and GUDHI the lower one; so every backend goes through :func:`validate_distance_matrix`
first, and every backend reads the upper triangle.
"""

from __future__ import annotations

import numba
import numpy as np

from .._threads import keep_torch_threads

__all__ = ["as_distance_array", "check_distance_matrix", "validate_distance_matrix"]

_TILE = 64
#: Relative (and absolute) tolerance of the symmetry and zero-diagonal checks, per dtype.
SYMMETRY_RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-9}


@numba.njit(cache=True, nogil=True, parallel=True, boundscheck=False)
def _scan(D, rtol):  # pragma: no cover - compiled
    """Per tile-row flags: [non-finite, negative, asymmetric, non-zero diagonal]."""
    n = D.shape[0]
    nt = (n + _TILE - 1) // _TILE
    flags = np.zeros((nt, 4), np.bool_)
    for bi in numba.prange(nt):
        i0 = bi * _TILE
        i1 = min(i0 + _TILE, n)
        for i in range(i0, i1):
            d = D[i, i]
            if not np.isfinite(d):
                flags[bi, 0] = True
            elif abs(d) > rtol:
                flags[bi, 3] = True
        for bj in range(bi, nt):
            j0 = bj * _TILE
            j1 = min(j0 + _TILE, n)
            for i in range(i0, i1):
                for j in range(max(j0, i + 1), j1):
                    a = D[i, j]
                    b = D[j, i]
                    if not (np.isfinite(a) and np.isfinite(b)):
                        flags[bi, 0] = True
                    else:
                        if a < 0 or b < 0:
                            flags[bi, 1] = True
                        if abs(a - b) > rtol * (1.0 + max(abs(a), abs(b))):
                            flags[bi, 2] = True
    return flags


def _first(mask: np.ndarray) -> tuple[int, int]:
    i, j = np.argwhere(mask)[0]
    return int(i), int(j)


def as_distance_array(D: object, name: str = "distance matrix") -> np.ndarray:
    """Convert ``D`` to a square C-contiguous float32/float64 array, without checking values.

    Tensors are detached and copied to the CPU; float32 is kept and every other real dtype
    becomes float64. Raises ``TypeError`` for non-numeric or complex input and ``ValueError``
    for a non-square or empty array.
    """
    try:
        import torch

        if isinstance(D, torch.Tensor):
            D = D.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    arr = np.asarray(D)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold real numbers; got dtype {arr.dtype}")
    if arr.dtype != np.float32:
        arr = arr.astype(np.float64, copy=False)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name} must be square (n, n); got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); at least one point is needed")
    return np.ascontiguousarray(arr)


def check_distance_matrix(arr: np.ndarray, name: str = "distance matrix") -> None:
    """Exact elementwise check of an array from :func:`as_distance_array`; raises on failure.

    See :func:`validate_distance_matrix` for the rules and the tolerance.
    """
    rtol = SYMMETRY_RTOL[arr.dtype]
    with keep_torch_threads():  # numba's OpenMP layer resets the process's thread count
        flags = _scan(arr, rtol).any(axis=0)
    if flags.any():
        _raise_first_problem(arr, flags, rtol, name)


def validate_distance_matrix(D: object, name: str = "distance matrix") -> np.ndarray:
    """Check that ``D`` is a valid distance matrix and return it as a C-contiguous float array.

    Parameters
    ----------
    D : array_like or torch.Tensor, shape (n, n)
        Candidate dissimilarity matrix. Tensors are detached and copied to the CPU.
    name : str
        How the matrix is named in error messages.

    Returns
    -------
    numpy.ndarray, shape (n, n), float32 or float64
        The same values (float32 kept, every other real dtype converted to float64).

    Raises
    ------
    TypeError
        Non-numeric or complex dtype.
    ValueError
        Not square 2-D, empty, NaN/Inf, negative entries, asymmetric beyond
        ``|a − b| ≤ rtol·(1 + max(|a|, |b|))`` (rtol 1e-5 for float32, 1e-9 for float64), or a
        diagonal entry beyond ``rtol`` from zero. The message gives the first offending index.
    """
    arr = as_distance_array(D, name)
    check_distance_matrix(arr, name)
    return arr


def _raise_first_problem(arr: np.ndarray, flags: np.ndarray, rtol: float, name: str) -> None:
    if flags[0]:
        i, j = _first(~np.isfinite(arr))
        raise ValueError(
            f"{name} contains {float(arr[i, j])} at [{i}, {j}]; all entries must be finite"
        )
    if flags[1]:
        i, j = _first(arr < 0)
        raise ValueError(
            f"{name} has a negative entry {float(arr[i, j])!r} at [{i}, {j}]; distances must be ≥ 0"
        )
    if flags[3]:
        k = int(np.argmax(np.abs(np.diagonal(arr)) > rtol))
        raise ValueError(
            f"{name} has a non-zero diagonal entry {float(arr[k, k])!r} at [{k}, {k}]; "
            "the distance of a point to itself must be 0"
        )
    bad = np.abs(arr - arr.T) > rtol * (1.0 + np.maximum(np.abs(arr), np.abs(arr.T)))
    i, j = _first(np.triu(bad, 1))
    raise ValueError(
        f"{name} is not symmetric: [{i}, {j}] = {float(arr[i, j])!r} but "
        f"[{j}, {i}] = {float(arr[j, i])!r} (tolerance rtol={rtol:g})"
    )
