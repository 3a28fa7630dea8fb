"""Activations in: type and shape checks, the dissimilarity kinds, constant neurons.

Everything that the correlation functions (and the tiled engine, and the regularisers) check
about their input before any arithmetic: a real, finite ``(m, n)`` matrix with ``m, n ≥ 2``,
a known ``kind`` and constant-neuron policy.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from .._finite import check_finite_activations
from .._options import check_choice

__all__ = [
    "CONSTANT_POLICIES",
    "KINDS",
    "ConstantPolicy",
    "Kind",
    "as_real_float",
    "check_kind",
    "constant_neurons",
]

Kind = Literal["abs", "sqrt"]
ConstantPolicy = Literal["uncorrelated", "drop", "raise"]

KINDS: tuple[str, ...] = ("abs", "sqrt")
CONSTANT_POLICIES: tuple[str, ...] = ("uncorrelated", "drop", "raise")


def check_kind(kind: str) -> str:
    """Return ``kind`` if it is a valid dissimilarity kind, else raise ``ValueError``."""
    return check_choice("kind", kind, KINDS, what="dissimilarity", plural="kinds")


def _check_policy(constant: str) -> str:
    return check_choice(
        "constant", constant, CONSTANT_POLICIES, what="constant-neuron policy", plural="policies"
    )


def as_real_float(t: torch.Tensor, name: str, *, integer_dtype: torch.dtype) -> torch.Tensor:
    """``t`` as float32 or float64: the one dtype rule of every activation input.

    Parameters
    ----------
    t : torch.Tensor
        Any real tensor.
    name : str
        How the error message names ``t``.
    integer_dtype : torch.dtype
        What integer and bool tensors become; half and bfloat16 become float32 (correlations
        need float32 at least); float32 and float64 are returned as they are.

    Raises
    ------
    TypeError
        ``t`` is complex.
    """
    if t.is_complex():
        raise TypeError(f"{name} must be real; got complex dtype {t.dtype}")
    if not t.is_floating_point():
        return t.to(integer_dtype)
    if t.dtype not in (torch.float32, torch.float64):
        return t.to(torch.float32)
    return t


def _as_torch(A: np.ndarray | torch.Tensor, name: str) -> tuple[torch.Tensor, bool]:
    """Return ``A`` as a floating torch tensor (zero-copy for numpy) and whether it was numpy."""
    if isinstance(A, torch.Tensor):
        t = A
        was_numpy = False
    elif isinstance(A, np.ndarray):
        if A.dtype.kind not in "fiub":
            raise TypeError(
                f"{name} must hold real numbers; got numpy dtype {A.dtype} "
                "(float32 and float64 are supported)"
            )
        arr = A if A.dtype in (np.float32, np.float64) else A.astype(np.float64)
        t = torch.from_numpy(np.ascontiguousarray(arr))
        was_numpy = True
    else:
        raise TypeError(
            f"{name} must be a numpy array or a torch tensor of shape (m examples, n neurons); "
            f"got {type(A).__name__}"
        )
    return as_real_float(t, name, integer_dtype=torch.float64), was_numpy


def _validate_activations(t: torch.Tensor, name: str) -> None:
    if t.ndim != 2:
        raise ValueError(
            f"{name} must have shape (m examples, n neurons); got {t.ndim} dimension(s) "
            f"with shape {tuple(t.shape)}"
        )
    m, n = t.shape
    if m < 2:
        raise ValueError(
            f"{name} needs at least 2 examples to correlate neurons; got shape {tuple(t.shape)}"
        )
    if n < 2:
        raise ValueError(
            f"{name} needs at least 2 neurons to form a correlation space; "
            f"got shape {tuple(t.shape)}"
        )

    def describe(ex: int, neuron: int, value: float, cols: list[int]) -> str:
        shown = ", ".join(str(c) for c in cols[:10]) + (" …" if len(cols) > 10 else "")
        return (
            f"{name} contain {value} at example {ex}, neuron {neuron} "
            f"(non-finite values in neuron(s) {shown}); NaN/Inf activations are always an error"
        )

    check_finite_activations(t, describe)


def constant_neurons(A: np.ndarray | torch.Tensor) -> np.ndarray:
    """Indices of the neurons that are constant over the batch.

    A constant neuron (e.g. a dead ReLU) has zero variance and therefore no Pearson correlation.

    Parameters
    ----------
    A : numpy.ndarray or torch.Tensor, shape (m, n)
        Activations: ``m`` examples, ``n`` neurons.

    Returns
    -------
    numpy.ndarray of int64, shape (k,)
        Ascending indices of the columns whose maximum equals their minimum.
    """
    t, _ = _as_torch(A, "activations")
    _validate_activations(t, "activations")
    t = t.detach()
    const = t.amax(dim=0) == t.amin(dim=0)
    return torch.nonzero(const).flatten().cpu().numpy().astype(np.int64)
