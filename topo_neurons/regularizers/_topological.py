"""The topological terms T1 and T2: the functionals and their loss modules."""

from __future__ import annotations

from typing import Literal

import torch

from .._options import check_choice
from ..correlation import check_kind
from ._base import REDUCTIONS, Distributed, Kind, _activations
from ._deaths import edge_deaths, sync_free
from ._tree_cache import _TreeLoss

__all__ = ["DeathSpread", "TopologicalRedundancy", "death_spread", "topological_redundancy"]


def _on_device(backend: str, A: object) -> bool:
    """The device path (``"torch"`` backend): checks that never wait for the device."""
    return isinstance(A, torch.Tensor) and sync_free(backend, A)


def _safe_std(d: torch.Tensor) -> torch.Tensor:
    """Population std with a zero (not NaN) gradient when all values are equal."""
    var = ((d - d.mean()) ** 2).mean()
    pos = var > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, var, torch.ones_like(var))), var * 0)


def _t1(d: torch.Tensor, reduction: str) -> torch.Tensor:
    """T1 of the deaths ``d``: ``Σ (1 − d)``, divided by their number for ``"mean"``."""
    t = (1.0 - d).sum()
    return t / d.numel() if reduction == "mean" else t


def _t2(d: torch.Tensor, alpha: float) -> torch.Tensor:
    """T2 of the deaths ``d``: ``α·std(d) − (1 − α)·mean(d)``."""
    return alpha * _safe_std(d) - (1.0 - alpha) * d.mean()


# --------------------------------------------------------------------------- functional
def topological_redundancy(
    A: torch.Tensor,
    kind: Kind = "abs",
    reduction: Literal["sum", "mean"] = "sum",
    *,
    backend: str = "auto",
    distributed: Distributed = False,
    edges: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""T1, topological redundancy: how close the MST neighbours of the neurons are.

    .. math::

        T_1(A) = \sum_{k=1}^{n-1} (1 - d_k)

    where ``d_k`` are the deaths (MST edge weights) of the correlation dissimilarity of the
    neurons. Minimising it raises the smallest deaths: it decorrelates each neuron from its
    most correlated neighbour only.

    Parameters
    ----------
    A : torch.Tensor, shape (m, n)
        Activations, ``m ≥ 2`` examples of ``n ≥ 2`` neurons; gradient flows back to ``A``.
    kind : {"abs", "sqrt"}, default "abs"
        ``d = 1 − |ρ|`` (the paper's MNIST code) or ``sqrt(1 − ρ²)`` (the paper's text).
    reduction : {"sum", "mean"}, default "sum"
        ``"sum"``: the paper's T1; ``"mean"``: divided by ``n − 1``, in ``[0, 1]``, so one
        weight transfers across network sizes.
    backend : {"auto", "native", "giotto", "gudhi", "torch"}, default "auto"
        Persistence backend that finds the MST edges. ``"torch"`` (what ``"auto"`` picks on a
        GPU) searches the tree on ``A``'s device and never waits for it: a training step
        copies nothing to the host (a NaN/Inf in ``A`` then stops the run with a device-side
        assertion rather than a ``NonFiniteActivationsError``).
    distributed : {False, True, "auto"}, default False
        Gather the activations of all ``torch.distributed`` ranks first (the correlation is then
        over the global batch; see :func:`topo_neurons.distributed.gather_activations`).
    edges : torch.Tensor of int, shape (k, 2), optional
        Sum over these edges (e.g. the MST of an earlier step) instead of the MST of ``A``; see
        ``refresh_every`` of :class:`TopologicalRedundancy`.

    Returns
    -------
    torch.Tensor, shape ()
        Unitless, in ``[0, n − 1]`` (sum) or ``[0, 1]`` (mean); dtype and device of ``A``.

    Raises
    ------
    ValueError
        Wrong shape, NaN/Inf activations, unknown ``kind``, ``reduction`` or ``backend``.
    TypeError
        ``A`` is not a torch tensor.

    References
    ----------
    .. [1] Ballester, Casacuberta & Escalera, "Decorrelating neurons using persistence",
       PMLR 228, 2024.

    Examples
    --------
    >>> import torch
    >>> from topo_neurons.regularizers import topological_redundancy
    >>> A = torch.tensor([[0.0, 0.0, 1.0], [1.0, 2.0, 0.0], [2.0, 4.0, 1.0]])
    >>> round(topological_redundancy(A).item(), 6)  # deaths (0, 1)
    1.0
    """
    check_choice("reduction", reduction, REDUCTIONS, what="")
    A = _activations(A, "topological_redundancy", distributed, sync_free=_on_device(backend, A))
    d, _ = edge_deaths(A, kind, backend=backend, edges=edges)
    return _t1(d, reduction)


def death_spread(
    A: torch.Tensor,
    alpha: float = 0.5,
    kind: Kind = "abs",
    *,
    backend: str = "auto",
    distributed: Distributed = False,
    edges: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""T2, death spread: spread of the deaths minus their mean.

    .. math::

        T_2(A) = \alpha \, \operatorname{std}(d) - (1 - \alpha) \, \operatorname{mean}(d)

    with the population standard deviation (``ddof = 0``) of the ``n − 1`` deaths, as in the
    code of the paper of :func:`topological_redundancy` (Ballester, Casacuberta & Escalera,
    PMLR 228, 2024). Minimising it makes the deaths large and even.

    Parameters
    ----------
    A : torch.Tensor, shape (m, n)
        Activations; gradient flows back to ``A``.
    alpha : float, default 0.5
        Weight of the spread, in ``[0, 1]``.
    kind : {"abs", "sqrt"}, default "abs"
    backend : {"auto", "native", "giotto", "gudhi", "torch"}, default "auto"
    distributed : {False, True, "auto"}, default False
    edges : torch.Tensor of int, shape (k, 2), optional
        Use the dissimilarities of these edges instead of the MST deaths of ``A``.

    Returns
    -------
    torch.Tensor, shape ()
        Unitless, in ``[−(1 − α), α/2]``. When all deaths are equal (e.g. every neuron constant)
        the std term has value and gradient zero, never NaN.

    Examples
    --------
    >>> import torch
    >>> from topo_neurons.regularizers import death_spread
    >>> A = torch.tensor([[0.0, 0.0, 1.0], [1.0, 2.0, 0.0], [2.0, 4.0, 1.0]])
    >>> round(death_spread(A, alpha=0.8).item(), 6)  # deaths (0, 1): 0.8·0.5 − 0.2·0.5
    0.3
    """
    alpha = _check_alpha(alpha)
    A = _activations(A, "death_spread", distributed, sync_free=_on_device(backend, A))
    d, _ = edge_deaths(A, kind, backend=backend, edges=edges)
    return _t2(d, alpha)


def _check_alpha(alpha: object) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise TypeError(f"alpha must be a number in [0, 1]; got {type(alpha).__name__}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha={alpha!r} must lie in [0, 1]")
    return float(alpha)


class TopologicalRedundancy(_TreeLoss):
    r"""T1 of Ballester et al. (2024) as a loss module: ``Σ_k (1 − d_k)``.

    .. math::

        T_1(A) = \sum_{k=1}^{n-1} (1 - d_k) \quad (\text{or divided by } n - 1)

    See :func:`topological_redundancy` for the maths, the gradient computation and the reference.

    Parameters
    ----------
    kind : {"abs", "sqrt"}, default "abs"
    reduction : {"sum", "mean"}, default "sum"
    backend : {"auto", "native", "giotto", "gudhi", "torch"}, default "auto"
        ``"auto"``: ``"torch"`` on a GPU (the tree on the device, no host synchronisation),
        ``"native"`` on the CPU.
    distributed : {False, True, "auto"}, default False
    refresh_every : int, default 1
        In training mode, search the MST every ``refresh_every`` calls (training steps) and in
        between evaluate T1 on the cached tree's ``n − 1`` edges (``O(m·n)``: no ``n × n``
        GEMM, no tree search). 1: exact every call. A change of the neurons (number of columns,
        or the ``selection`` passed to :meth:`forward`) searches a new tree, and so do neurons
        turning constant while they hold several edges of the cached tree (hubs driven dead to
        zero their edges' terms); eval mode is always exact and leaves the cache alone. See the
        training docs for the measured trade-off. With ``backend="torch"`` the dead-hub
        check, and a change of ``selection`` that keeps the layers' sizes, are read without
        waiting for the device, so they act at the first call after their flag is ready (on
        a GPU, usually the next call).

    Attributes
    ----------
    changed_edges : int or None
        At the last tree search, how many edges of the new tree were not in the cached one.

    Shape
    -----
    - Input: ``(m, n)``, ``m`` examples (``≥ 2``), ``n`` neurons (``≥ 2``).
    - Output: scalar, unitless, in ``[0, n − 1]`` (sum) or ``[0, 1]`` (mean).

    Examples
    --------
    >>> import torch
    >>> import topo_neurons as tn
    >>> A = torch.randn(64, 10, generator=torch.Generator().manual_seed(0), requires_grad=True)
    >>> loss = tn.TopologicalRedundancy(reduction="mean")(A)
    >>> loss.backward()
    >>> A.grad.shape
    torch.Size([64, 10])
    """

    _functional = "topological_redundancy"

    def __init__(
        self,
        kind: Kind = "abs",
        reduction: Literal["sum", "mean"] = "sum",
        *,
        backend: str = "auto",
        distributed: Distributed = False,
        refresh_every: int = 1,
    ) -> None:
        check_kind(kind)
        check_choice("reduction", reduction, REDUCTIONS, what="")
        super().__init__(
            kind=kind, backend=backend, distributed=distributed, refresh_every=refresh_every
        )
        self.reduction = reduction

    def _reduce(self, d: torch.Tensor) -> torch.Tensor:
        return _t1(d, self.reduction)

    def _options(self) -> str:
        return f"kind={self.kind!r}, reduction={self.reduction!r}"


class DeathSpread(_TreeLoss):
    r"""T2 of Ballester et al. (2024) as a loss module: ``α·std(d) − (1 − α)·mean(d)``.

    .. math::

        T_2(A) = \alpha \, \operatorname{std}(d) - (1 - \alpha) \, \operatorname{mean}(d)

    Population std (``ddof = 0``). See :func:`death_spread` (maths and reference).

    Parameters
    ----------
    alpha : float, default 0.5
    kind : {"abs", "sqrt"}, default "abs"
    backend : {"auto", "native", "giotto", "gudhi", "torch"}, default "auto"
    distributed : {False, True, "auto"}, default False
    refresh_every : int, default 1
        Search the MST every ``refresh_every`` training calls, as in
        :class:`TopologicalRedundancy`.

    Shape
    -----
    - Input: ``(m, n)``.
    - Output: scalar, unitless, in ``[−(1 − α), α/2]``.

    Examples
    --------
    >>> import torch
    >>> import topo_neurons as tn
    >>> A = torch.tensor([[0.0, 0.0, 1.0], [1.0, 2.0, 0.0], [2.0, 4.0, 1.0]])
    >>> tn.DeathSpread(alpha=1.0)(A)  # std of the deaths (0, 1)
    tensor(0.5000)
    """

    _functional = "death_spread"

    def __init__(
        self,
        alpha: float = 0.5,
        kind: Kind = "abs",
        *,
        backend: str = "auto",
        distributed: Distributed = False,
        refresh_every: int = 1,
    ) -> None:
        alpha = _check_alpha(alpha)
        super().__init__(
            kind=kind, backend=backend, distributed=distributed, refresh_every=refresh_every
        )
        self.alpha = alpha

    def _reduce(self, d: torch.Tensor) -> torch.Tensor:
        return _t2(d, self.alpha)

    def _options(self) -> str:
        return f"alpha={self.alpha}, kind={self.kind!r}"
