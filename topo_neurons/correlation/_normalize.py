"""The normalisation ``Z`` of ``C = ZᵀZ``: centred, unit-norm neuron columns.

:func:`normalized_activations` is the arithmetic; :func:`_prepare` runs the input checks of
:mod:`._inputs`, normalises and applies the constant-neuron policy: what every correlation
path (dense, autograd, tiled) starts from.
"""

from __future__ import annotations

import numpy as np
import torch

from ._inputs import _as_torch, _check_policy, _validate_activations

__all__ = ["normalized_activations"]


def normalized_activations(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre and normalise each neuron's column: the ``Z`` of ``C = ZᵀZ``.

    Parameters
    ----------
    A : torch.Tensor, shape (m, n)
        Validated floating activations.

    Returns
    -------
    Z : torch.Tensor, shape (m, n)
        Unit-norm centred columns; constant columns are all zero (no gradient flows through them).
    const : torch.Tensor of bool, shape (n,)
        Which columns are constant.
    """
    A_det = A.detach()
    const = A_det.amax(dim=0) == A_det.amin(dim=0)
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
