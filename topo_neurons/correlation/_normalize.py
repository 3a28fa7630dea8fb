"""The normalisation ``Z`` of ``C = ZᵀZ``: centred, unit-norm neuron columns.

:func:`normalized_activations` is the arithmetic; :func:`_prepare` runs the input checks of
:mod:`._inputs`, normalises and applies the constant-neuron policy: what every correlation
path (dense, autograd, tiled) starts from.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._inputs import _as_torch, _check_policy, _validate_activations

__all__ = ["normalized_activations", "rescale_extreme_columns"]

#: Bits of headroom below overflow and above underflow that a column's sums keep (see
#: :func:`rescale_extreme_columns`).
_HEADROOM_BITS = 12


def rescale_extreme_columns(
    A: torch.Tensor,
    amax: torch.Tensor | None = None,
    amin: torch.Tensor | None = None,
    *,
    sync_free: bool = False,
) -> torch.Tensor:
    """``A`` with each column whose sums would overflow or underflow scaled by a power of two.

    A correlation is invariant to scaling a column, and scaling by ``2**e`` is exact, but its
    arithmetic is not: the mean sums ``m`` values and the norm sums ``m`` squares, so a column
    of finite float32 activations of magnitude ``≳ 1e17`` (a network on its way to diverging)
    overflows to ``inf`` and turns its correlations into ``0`` or NaN, and a column whose spread
    is ``≲ 1e-16`` underflows its squares to zero. Such a column (magnitude above
    ``sqrt(max / m) / 2**12``, or spread below ``2**12 · sqrt(tiny)``, of ``A``'s dtype) is
    multiplied by the power of two that brings its magnitude (or spread) to ``[1, 2)``; every
    other column is left as it is, and when no column needs it ``A`` itself is returned, so
    ordinary activations go through unchanged, bit for bit.

    Parameters
    ----------
    A : torch.Tensor, shape (m, n)
        Finite floating activations (the product keeps autograd: the scale is a constant).
    amax, amin : torch.Tensor, shape (n,), optional
        The columns' maxima and minima, when the caller has them already.
    sync_free : bool, default False
        Never ask the device whether a column needs scaling (no host synchronisation): the
        product ``A * 2**e`` is always taken (``2**0 = 1`` leaves ordinary columns bitwise
        unchanged), as the GPU training path of the regularisers needs.

    Returns
    -------
    torch.Tensor, shape (m, n)
        ``A`` or ``A * 2**e`` with ``e`` an integer per column (0 for most).
    """
    if A.shape[0] == 0 or A.shape[1] == 0:
        return A
    if amax is None or amin is None:
        A_det = A.detach()
        # Two reductions: torch.aminmax over dim 0 of a row-major matrix is ~10× slower.
        amax, amin = A_det.amax(dim=0), A_det.amin(dim=0)
    finfo = torch.finfo(A.dtype)
    high = math.sqrt(finfo.max / A.shape[0]) * 2.0**-_HEADROOM_BITS
    low = math.sqrt(finfo.tiny) * 2.0**_HEADROOM_BITS
    magnitude = torch.maximum(amax.abs(), amin.abs())
    spread = amax - amin  # inf when the column spans more than the dtype: scaled down too
    large = (magnitude > high) | ~torch.isfinite(spread)
    small = (spread > 0) & (spread < low)
    if not sync_free and not bool((large | small).any()):
        return A
    # Large: magnitude (≤ max) → [1, 2); small: spread → [1, 2) (its magnitude, at most
    # 2**24 spreads away from 0 in float32, stays far from overflow).
    ref = torch.where(large, magnitude, torch.where(small, spread, torch.ones_like(spread)))
    _, exponent = torch.frexp(ref)  # ref = mantissa · 2**exponent, mantissa in [0.5, 1)
    # A subnormal spread would ask for a scale past the largest power of two of the dtype: the
    # largest one leaves its squares far above underflow all the same.
    top = math.frexp(finfo.max)[1] - 1  # 127 for float32, 1023 for float64
    scale = torch.ldexp(torch.ones_like(ref), (1 - exponent).clamp_(max=top))
    scale = torch.where(large | small, scale, torch.ones_like(scale))
    return A * scale


def normalized_activations(
    A: torch.Tensor, *, sync_free: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre and normalise each neuron's column: the ``Z`` of ``C = ZᵀZ``.

    Parameters
    ----------
    A : torch.Tensor, shape (m, n)
        Validated floating activations.
    sync_free : bool, default False
        Passed to :func:`rescale_extreme_columns` (the device path: no host read).

    Returns
    -------
    Z : torch.Tensor, shape (m, n)
        Unit-norm centred columns; constant columns are all zero (no gradient flows through them).
    const : torch.Tensor of bool, shape (n,)
        Which columns are constant.
    """
    A_det = A.detach()
    amax, amin = A_det.amax(dim=0), A_det.amin(dim=0)
    const = amax == amin
    # Columns so large (or so flat) that their sums would overflow (or underflow) are first
    # scaled by a power of two: exact, and the correlation does not change.
    A = rescale_extreme_columns(A, amax, amin, sync_free=sync_free)
    A_det = A.detach()
    # Constant columns: the rounded mean of equal values may differ from them in the last bit,
    # so their centred values are set to exactly zero (torch.where passes them no gradient) and
    # divided by one instead of by a zero norm: no NaN in the forward or backward pass.
    if not (A.requires_grad and torch.is_grad_enabled()):
        # Same arithmetic in place: one (m, n) allocation instead of four.
        Z = A_det - A_det.mean(dim=0, keepdim=True)
        Z.masked_fill_(const, 0.0)
        norm = torch.linalg.vector_norm(Z, dim=0)
        norm.masked_fill_(const, 1.0)
        return Z.div_(norm), const
    centred = A - A.mean(dim=0, keepdim=True)
    centred = torch.where(const, torch.zeros_like(centred), centred)
    norm = torch.linalg.vector_norm(centred, dim=0)
    safe = torch.where(const, torch.ones_like(norm), norm)
    return centred / safe, const


def _prepare(
    A: np.ndarray | torch.Tensor, constant: str
) -> tuple[torch.Tensor, bool, torch.Tensor, torch.Tensor]:
    """Check ``A``, normalise it and apply the constant-neuron policy.

    Parameters
    ----------
    A : numpy.ndarray or torch.Tensor, shape (m, n)
        Activations (any input :func:`~topo_neurons.correlation_dissimilarity` accepts).
    constant : {"uncorrelated", "drop", "raise"}
        Constant-neuron policy.

    Returns
    -------
    Z : torch.Tensor, shape (m, n')
        :func:`normalized_activations` of the kept neurons.
    was_numpy : bool
        Whether ``A`` was a numpy array (the result goes back to numpy).
    const : torch.Tensor of bool, shape (n',)
        Which kept neurons are constant (none under ``"drop"``).
    kept : torch.Tensor of int64, shape (n',)
        Indices of the kept neurons among the columns of ``A``.
    """
    _check_policy(constant)
    t, was_numpy = _as_torch(A, "activations")
    _validate_activations(t, "activations")
    Z, const = normalized_activations(t)
    if constant == "raise" and bool(const.any()):
        idx = torch.nonzero(const).flatten().tolist()
        shown = ", ".join(str(i) for i in idx[:10]) + (" …" if len(idx) > 10 else "")
        raise ValueError(
            f"activations have {len(idx)} constant neuron(s) (zero variance over the batch, "
            f"e.g. dead ReLUs): neuron(s) {shown}; use constant='uncorrelated' or 'drop'"
        )
    kept = torch.arange(t.shape[1], device=t.device)
    if constant == "drop" and bool(const.any()):
        kept = torch.nonzero(~const).flatten()
        if kept.numel() < 2:
            raise ValueError(
                f"constant='drop' leaves {kept.numel()} neuron(s) out of {t.shape[1]}; "
                "at least 2 non-constant neurons are needed"
            )
        Z = Z[:, kept]
        const = const[kept]
    return Z, was_numpy, const, kept
