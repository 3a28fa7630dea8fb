"""The public correlation functions: activations → correlation matrix or dissimilarity.

:func:`correlation_dissimilarity` and :func:`correlation_matrix` check and normalise the input
(:mod:`._normalize`), guard the memory of the ``n × n`` output, and take the autograd path
(:mod:`._autograd`) when a gradient is wanted, else the blocked no-grad fill (:mod:`._gram`).
"""

from __future__ import annotations

from typing import overload

import numpy as np
import torch

from .._memory import check_square_fits
from ._autograd import _correlation_grad, dissimilarity_from_correlation
from ._gram import _fill_blocked, _finish
from ._inputs import ConstantPolicy, Kind, check_kind
from ._normalize import _prepare

__all__ = ["correlation_dissimilarity", "correlation_matrix"]


def _compute(
    A: np.ndarray | torch.Tensor, transform: str, constant: str
) -> tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor]:
    Z, was_numpy, const, kept = _prepare(A, constant)
    # One guard before any n × n allocation (MemoryError naming n, the bytes and the ways out).
    grad = Z.requires_grad and torch.is_grad_enabled()
    check_square_fits(
        Z.shape[1],
        Z.element_size(),
        _GRAD_COPIES if grad else 1.0,
        what="the correlation " + ("matrix" if transform == "corr" else "dissimilarity"),
        device=Z.device,
    )
    diag = 1.0 if transform == "corr" else 0.0
    off = 0.0 if transform == "corr" else 1.0
    if Z.requires_grad and torch.is_grad_enabled():
        C = _correlation_grad(Z, const)
        out = C if transform == "corr" else dissimilarity_from_correlation(C, transform)
        if transform != "corr":
            eye = torch.eye(out.shape[0], dtype=torch.bool, device=out.device)
            out = torch.where(eye, torch.zeros_like(out), out)
    else:
        Zd = Z.detach()
        n = Zd.shape[1]
        out = torch.empty((n, n), dtype=Zd.dtype, device=Zd.device)
        _fill_blocked(Zd, out, transform)
        _finish(out, const, diag, off)
    if was_numpy:
        return out.numpy(), kept.numpy()
    return out, kept


#: ``n × n`` arrays alive at once on the autograd path (``ZᵀZ``, its symmetrisation, the mask,
#: the dissimilarity and what autograd keeps for the backward pass).
_GRAD_COPIES = 5.0


@overload
def correlation_dissimilarity(
    A: np.ndarray, kind: Kind = ..., constant: ConstantPolicy = ..., *, return_kept: bool = ...
) -> np.ndarray: ...
@overload
def correlation_dissimilarity(
    A: torch.Tensor, kind: Kind = ..., constant: ConstantPolicy = ..., *, return_kept: bool = ...
) -> torch.Tensor: ...


def correlation_dissimilarity(
    A: np.ndarray | torch.Tensor,
    kind: Kind = "abs",
    constant: ConstantPolicy = "uncorrelated",
    *,
    return_kept: bool = False,
):
    """Correlation dissimilarity between the neurons (columns) of an activation matrix.

    Parameters
    ----------
    A : numpy.ndarray or torch.Tensor, shape (m, n)
        Activations of ``n`` neurons over ``m ≥ 2`` examples. float32 and float64 keep their
        dtype; integer input is computed in float64. A torch tensor keeps its device and its
        autograd graph.
    kind : {"abs", "sqrt"}, default "abs"
        ``"abs"``: ``d = 1 − |ρ|``; ``"sqrt"``: ``d = sqrt(1 − ρ²)`` (finite gradient at |ρ| = 1).
    constant : {"uncorrelated", "drop", "raise"}, default "uncorrelated"
        Policy for neurons that are constant over the batch (no correlation is defined):
        ``"uncorrelated"`` sets ``d = 1`` to every other neuron (no gradient, never NaN);
        ``"drop"`` removes them from the output; ``"raise"`` raises ``ValueError`` naming them.
    return_kept : bool, default False
        Also return the indices (into the columns of ``A``) of the rows of the output.

    Returns
    -------
    D : same type as ``A``, shape (n', n')
        Symmetric (bitwise on the no-grad path) with an exact zero diagonal, values in
        ``[0, 1]`` (unitless). ``n' = n`` unless ``constant="drop"`` removed neurons.
    kept : same type as ``A`` of int64, shape (n',)
        Only if ``return_kept``.

    Raises
    ------
    ValueError
        Wrong rank, fewer than 2 examples or neurons, NaN/Inf (naming example and neuron),
        unknown ``kind`` or ``constant``, constant neurons under ``constant="raise"``.
    TypeError
        Not an array/tensor, or complex/non-numeric dtype.

    Notes
    -----
    Without autograd (numpy input, or ``torch.no_grad()``), only the upper block triangle of
    ``ZᵀZ`` is multiplied, in blocks of 2048 rows written straight into the output, then one
    fused parallel pass (compiled with numba) maps it and mirrors it: peak memory is the ``n²``
    output plus ``Z``, with no ``m × n²`` or block temporary (on a GPU, one block temporary).

    Examples
    --------
    >>> import numpy as np
    >>> import topo_neurons as tn
    >>> A = np.array([[0.0, 0.0, 1.0], [1.0, 2.0, 0.0], [2.0, 4.0, 1.0]])
    >>> tn.correlation_dissimilarity(A).round(6)
    array([[0., 0., 1.],
           [0., 0., 1.],
           [1., 1., 0.]])
    """
    check_kind(kind)
    D, kept = _compute(A, kind, constant)
    return (D, kept) if return_kept else D


def correlation_matrix(
    A: np.ndarray | torch.Tensor, constant: ConstantPolicy = "uncorrelated"
) -> np.ndarray | torch.Tensor:
    """Pearson correlation matrix of the neurons (columns) of ``A``.

    Parameters
    ----------
    A : numpy.ndarray or torch.Tensor, shape (m, n)
        Activations; same rules as :func:`correlation_dissimilarity`.
    constant : {"uncorrelated", "drop", "raise"}
        Constant neurons get ``ρ = 0`` with every other neuron under ``"uncorrelated"``.

    Returns
    -------
    same type as ``A``, shape (n', n')
        Symmetric, unit diagonal, values in ``[-1, 1]``.
    """
    C, _ = _compute(A, "corr", constant)
    return C
