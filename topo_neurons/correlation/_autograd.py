"""The differentiable path: correlation and dissimilarity with exact, finite gradients.

:class:`_Gram` computes ``ZᵀZ`` with the entries of the no-grad path (bitwise) and the exact
gradient; :class:`_SafeSqrt` keeps the gradient of ``sqrt(1 − ρ²)`` finite at ``|ρ| = 1``.
"""

from __future__ import annotations

import torch

from ._gram import _fill_blocked
from ._inputs import check_kind

__all__ = ["dissimilarity_from_correlation"]

#: Floor under ``1 − ρ²`` in the backward pass of ``kind="sqrt"`` (finite gradient at |ρ| = 1).
_SQRT_GRAD_EPS = 1e-12


class _SafeSqrt(torch.autograd.Function):
    """``sqrt(max(x, 0))`` whose gradient stays finite at ``x = 0`` (|ρ| = 1)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y = torch.sqrt(torch.clamp(x, min=0.0))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (y,) = ctx.saved_tensors
        return grad * 0.5 / torch.clamp(y, min=_SQRT_GRAD_EPS**0.5)


def dissimilarity_from_correlation(C: torch.Tensor, kind: str = "abs") -> torch.Tensor:
    """Map correlations to dissimilarities (differentiable, elementwise).

    Parameters
    ----------
    C : torch.Tensor, any shape
        Pearson correlations (values slightly outside [-1, 1] from rounding are clamped).
    kind : {"abs", "sqrt"}
        ``"abs"``: ``1 − |ρ|``; ``"sqrt"``: ``sqrt(1 − ρ²)`` with a finite gradient at |ρ| = 1.

    Returns
    -------
    torch.Tensor, same shape as ``C``
        Dissimilarities in ``[0, 1]``.
    """
    check_kind(kind)
    if kind == "abs":
        return torch.clamp(1.0 - torch.abs(C), min=0.0)
    return _SafeSqrt.apply(1.0 - C * C)


class _Gram(torch.autograd.Function):
    """``ZᵀZ`` with the entries of the no-grad path (bitwise) and the exact gradient.

    Forward: the blocked, exactly symmetric product of :func:`_fill_blocked` (half the flops,
    canonical GEMM panels); backward: ``∂L/∂Z = Z (G + Gᵀ)``, one GEMM.
    """

    @staticmethod
    def forward(ctx, Z: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        Zd = Z.detach()
        n = Zd.shape[1]
        out = torch.empty((n, n), dtype=Zd.dtype, device=Zd.device)
        _fill_blocked(Zd, out, "gram")
        ctx.save_for_backward(Z)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (Z,) = ctx.saved_tensors
        return Z @ (grad + grad.T)


def _correlation_grad(Z: torch.Tensor, const: torch.Tensor) -> torch.Tensor:
    """Full correlation with autograd; constant neurons get ρ = 0 off the diagonal.

    The entries are those of the no-grad path bitwise (:class:`_Gram`), exactly symmetric.
    """
    C = _Gram.apply(Z)
    n = C.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=C.device)
    C = torch.where(eye, torch.ones_like(C), C)
    if bool(const.any()):
        # Symmetrise the block structure: rows and columns of constant neurons are 0, diag 1.
        mask = (const[:, None] | const[None, :]) & ~eye
        C = torch.where(mask, torch.zeros_like(C), C)
    return C
