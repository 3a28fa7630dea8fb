"""The baselines the topological terms were compared with: correlation penalty, DeCov, L1, L2."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import _finite
from .._memory import check_square_fits
from ..correlation import normalized_activations
from ._base import Distributed, WeightPenalty, _activations, _Loss


def correlation_penalty(A: torch.Tensor, *, distributed: Distributed = False) -> torch.Tensor:
    r"""Mean absolute Pearson correlation over all pairs of distinct neurons.

    .. math::

        P(A) = \frac{1}{n(n-1)} \sum_{i \ne j} |\rho_{ij}|

    The paper's "minimise all correlations" baseline. Constant neurons have ``ρ = 0`` with every
    other neuron (and no gradient).

    Parameters
    ----------
    A : torch.Tensor, shape (m, n)
        Activations, ``m ≥ 2`` examples of ``n ≥ 2`` neurons; gradient flows back to ``A``.
    distributed : {False, True, "auto"}, default False
        Gather the activations of all ``torch.distributed`` ranks first (correlations over the
        global batch).

    Returns
    -------
    torch.Tensor, shape ()
        Unitless, in ``[0, 1]``.

    Raises
    ------
    MemoryError
        Before any allocation, when the ``n × n`` correlation matrix (and, under autograd,
        its gradient) would not fit in the memory available on ``A``'s device; the message
        names ``n`` and the bytes.

    Examples
    --------
    >>> import torch
    >>> from topo_neurons.regularizers import correlation_penalty
    >>> A = torch.tensor([[0.0, 0.0, 1.0], [1.0, 2.0, 0.0], [2.0, 4.0, 1.0]])
    >>> correlation_penalty(A)  # ρ01 = 1, ρ02 = ρ12 = 0
    tensor(0.3333)
    """
    device = _finite.on_device(A) if isinstance(A, torch.Tensor) else False
    A = _activations(A, "correlation_penalty", distributed, sync_free=device)
    # C, |C| and, under autograd, the gradient of C: guard before any n × n allocation.
    grad = A.requires_grad and torch.is_grad_enabled()
    check_square_fits(
        A.shape[1],
        A.element_size(),
        3.0 if grad else 2.0,
        what="correlation_penalty (the n × n correlation matrix)",
        device=A.device,
    )
    Z, _ = normalized_activations(A, sync_free=device)
    C = Z.T @ Z
    n = C.shape[0]
    return (C.abs().sum() - C.diagonal().abs().sum()) / (n * (n - 1))


def decov(A: torch.Tensor, *, distributed: Distributed = False) -> torch.Tensor:
    r"""DeCov loss of Cogswell et al. (2016): squared off-diagonal covariances.

    .. math::

        C_{ij} = \frac{1}{m} \sum_{b=1}^{m} (a_{bi} - \mu_i)(a_{bj} - \mu_j), \qquad
        L_{\mathrm{DeCov}} = \tfrac{1}{2} \left( \lVert C \rVert_F^2
            - \lVert \operatorname{diag}(C) \rVert_2^2 \right)

    Computed through the ``m × m`` Gram matrix when ``m < n`` (``‖XᵀX‖_F = ‖XXᵀ‖_F``).

    Parameters
    ----------
    A : torch.Tensor, shape (m, n)
        Activations; gradient flows back to ``A``.
    distributed : {False, True, "auto"}, default False
        Gather the activations of all ``torch.distributed`` ranks first (covariances over the
        global batch).

    Returns
    -------
    torch.Tensor, shape ()
        In squared activation units.

    References
    ----------
    .. [1] M. Cogswell, F. Ahmed, R. Girshick, L. Zitnick, D. Batra, "Reducing overfitting in
       deep networks by decorrelating representations", ICLR 2016.

    Examples
    --------
    >>> import torch
    >>> from topo_neurons.regularizers import decov
    >>> A = torch.tensor([[1.0, 2.0], [-1.0, -2.0]])  # C = [[1, 2], [2, 4]]
    >>> decov(A)
    tensor(4.)
    """
    A = _activations(A, "decov", distributed, sync_free=None)
    m, n = A.shape
    X = A - A.mean(dim=0, keepdim=True)
    G = (X @ X.T) if m < n else (X.T @ X)
    fro2 = (G * G).sum() / (m * m)
    diag2 = ((X * X).sum(dim=0) / m).square().sum()
    return 0.5 * (fro2 - diag2)


class _ActivationPenalty(_Loss):
    """The module form of a penalty ``f(A, *, distributed)`` on activations (no other option).

    A subclass names its functional as ``_penalty``.
    """

    _penalty: Callable[..., torch.Tensor]

    def __init__(self, *, distributed: Distributed = False) -> None:
        super().__init__(distributed=distributed)

    def forward(self, A: torch.Tensor) -> torch.Tensor:
        """The penalty of activations ``A`` of shape (m, n); a scalar tensor."""
        return type(self)._penalty(A, distributed=self.distributed)


class CorrelationPenalty(_ActivationPenalty):
    r"""Mean ``|ρ|`` over all pairs of distinct neurons (the "minimise all correlations" baseline).

    .. math::

        P(A) = \frac{1}{n(n-1)} \sum_{i \ne j} |\rho_{ij}|

    Parameters
    ----------
    distributed : {False, True, "auto"}, default False

    Shape
    -----
    - Input: ``(m, n)``.
    - Output: scalar, unitless, in ``[0, 1]`` (dtype and device of the input).

    References
    ----------
    .. [1] Ballester, Casacuberta & Escalera, "Decorrelating neurons using persistence",
       PMLR 228, 2024 (baseline).

    Examples
    --------
    >>> import torch
    >>> import topo_neurons as tn
    >>> A = torch.tensor([[0.0, 0.0, 1.0], [1.0, 2.0, 0.0], [2.0, 4.0, 1.0]])
    >>> tn.CorrelationPenalty()(A)
    tensor(0.3333)
    """

    _penalty = staticmethod(correlation_penalty)


class DeCov(_ActivationPenalty):
    r"""DeCov (Cogswell et al., ICLR 2016): half the squared off-diagonal covariances.

    .. math::

        L_{\mathrm{DeCov}} = \tfrac{1}{2} \left( \lVert C \rVert_F^2
            - \lVert \operatorname{diag}(C) \rVert_2^2 \right),
        \quad C = \tfrac{1}{m} (A - \bar A)^\top (A - \bar A)

    See :func:`decov` (the functional form) for the reference.

    Parameters
    ----------
    distributed : {False, True, "auto"}, default False

    Shape
    -----
    - Input: ``(m, n)`` activations, ``m ≥ 2`` examples, ``n ≥ 2`` neurons.
    - Output: scalar, in squared activation units (``≥ 0`` up to rounding).

    Examples
    --------
    >>> import torch
    >>> import topo_neurons as tn
    >>> tn.DeCov()(torch.tensor([[1.0, 2.0], [-1.0, -2.0]]))
    tensor(4.)
    """

    _penalty = staticmethod(decov)


class L1Penalty(WeightPenalty):
    r"""Sum of absolute weights of a model (L1 baseline).

    .. math::

        L_1(\theta) = \sum_{w \in \text{weights}} |w|

    *Weights* are the parameters with at least 2 dimensions (``Linear`` and ``Conv*`` kernels,
    embeddings); biases and normalisation scales are excluded, as in the usual weight-decay
    baselines, unless ``include_biases=True``.

    Parameters
    ----------
    include_biases : bool, default False
        Penalise every parameter.

    Shape
    -----
    - Input: a ``torch.nn.Module`` (not activations).
    - Output: scalar, in the units of the weights.

    Examples
    --------
    >>> import torch
    >>> import topo_neurons as tn
    >>> lin = torch.nn.Linear(2, 1)
    >>> with torch.no_grad():
    ...     _ = lin.weight.copy_(torch.tensor([[1.0, -2.0]])); _ = lin.bias.fill_(5.0)
    >>> tn.L1Penalty()(lin)
    tensor(3., grad_fn=<SumBackward0>)
    """

    _power = 1


class L2Penalty(WeightPenalty):
    r"""Sum of squared weights of a model (L2 / weight-decay baseline).

    .. math::

        L_2(\theta) = \sum_{w \in \text{weights}} w^2

    No factor ½: ``λ·L2Penalty`` adds ``2λw`` to each weight's gradient. *Weights* are the
    parameters with at least 2 dimensions unless ``include_biases=True`` (see
    :class:`L1Penalty`).

    Parameters
    ----------
    include_biases : bool, default False

    Shape
    -----
    - Input: a ``torch.nn.Module``.
    - Output: scalar, in squared units of the weights.

    Examples
    --------
    >>> import torch
    >>> import topo_neurons as tn
    >>> lin = torch.nn.Linear(2, 1)
    >>> with torch.no_grad():
    ...     _ = lin.weight.fill_(2.0); _ = lin.bias.fill_(-1.0)
    >>> tn.L2Penalty()(lin), tn.L2Penalty(include_biases=True)(lin)  # 2² + 2², then + (−1)²
    (tensor(8., grad_fn=<SumBackward0>), tensor(9., grad_fn=<SumBackward0>))
    """

    _power = 2
