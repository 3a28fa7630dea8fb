"""The topological terms T1 and T2: functionals, loss modules and the ``refresh_every`` cache."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch

from .._edges import EdgeCorrelationCPU
from .._memory import check_square_fits
from .._options import check_choice
from ..correlation import check_kind, dissimilarity_from_correlation
from ..persistence import mst_edges
from ._base import (
    REDUCTIONS,
    Distributed,
    Kind,
    Selection,
    _activations,
    _check_backend,
    _Loss,
)

#: Rows per block of the no-grad ranking matrix (see ``_ranking_matrix``).
_RANK_BLOCK = 128
#: Offset that keeps the ranking matrix positive (see ``_ranking_matrix``).
_RANK_SLACK = 1e-3


# --------------------------------------------------------------------------- deaths
def edge_deaths(
    A: torch.Tensor,
    kind: Kind = "abs",
    *,
    backend: str = "auto",
    edges: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``n − 1`` deaths of the correlation space of ``A``, differentiable, and their edges.

    The MST edges are found on ``D`` computed without autograd; only the ``n − 1`` edge
    dissimilarities are recomputed with autograd from the normalised activations. Given
    ``edges`` (e.g. the tree of an earlier step, see ``refresh_every`` of
    :class:`TopologicalRedundancy`), no tree is searched: only the dissimilarities of those edges
    are evaluated, ``O(m·k)`` for ``k`` edges.

    Parameters
    ----------
    A : torch.Tensor, shape (m, n)
        Activations (finite, ``m ≥ 2``, ``n ≥ 2``; checked like the losses' input).
    kind : {"abs", "sqrt"}
        Dissimilarity ``1 − |ρ|`` or ``sqrt(1 − ρ²)``.
    backend : {"auto", "native", "giotto", "gudhi"}
        Persistence backend that finds the edges.
    edges : torch.Tensor of int, shape (k, 2), optional
        Evaluate these edges (pairs of distinct columns of ``A``) instead of the MST of ``A``.

    Returns
    -------
    deaths : torch.Tensor, shape (n − 1,) (or (k,) for given ``edges``)
        Ascending (up to rounding; given ``edges``: in their order), dtype and device of ``A``
        (float32 at least), in ``[0, 1]``.
    edges : torch.LongTensor, shape (n − 1, 2) (or (k, 2))
        MST edges ``(i, j)``, ``i < j``, as columns of ``A``, on the device of ``A``.

    Notes
    -----
    On a CUDA tensor the correlations are computed on the device; the MST search needs the
    ``n × n`` no-grad ranking matrix on the host: one copy of ``n²`` elements in the dtype of
    ``A`` (float32: ``4n²`` bytes, 4.1 MB at ``n = 1010``), and the ``n − 1`` edges (``16(n − 1)``
    bytes) go back. Given ``edges``, nothing is copied.

    Examples
    --------
    >>> import torch
    >>> from topo_neurons.regularizers import edge_deaths
    >>> A = torch.tensor([[0.0, 0.0, 1.0], [1.0, 2.0, 0.0], [2.0, 4.0, 1.0]])
    >>> deaths, edges = edge_deaths(A)
    >>> deaths.round(decimals=4), edges
    (tensor([0., 1.]), tensor([[0, 1],
            [0, 2]]))
    """
    check_kind(kind)
    _check_backend(backend)
    A = _activations(A, "edge_deaths")
    if edges is not None:
        edges = _check_edges(edges, A.shape[1], A.device)
    return _edge_deaths(A, kind, backend, edges)


def _edge_deaths(
    A: torch.Tensor, kind: Kind, backend: str, edges: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`edge_deaths` on validated input (``edges``: validated, on ``A``'s device)."""
    if edges is not None and A.device.type == "cpu":
        # Known edges on the CPU: one fused sweep over A, no normalised or transposed copy.
        rho = EdgeCorrelationCPU.apply(A, edges[:, 0], edges[:, 1])
        return dissimilarity_from_correlation(rho, kind), edges
    Zt, norm, const = _normalized_rows(A.detach())
    if edges is None:
        edges = mst_edges(_ranking_matrix(Zt), backend=backend)
    i, j = edges[:, 0], edges[:, 1]
    rho = _EdgeCorrelation.apply(A, Zt, norm, const, i, j)
    return dissimilarity_from_correlation(rho, kind), edges


def _check_edges(edges: object, n: int, device: torch.device) -> torch.Tensor:
    """Validate given edges: integer pairs ``(i, j)`` of distinct columns in ``[0, n)``."""
    if not isinstance(edges, torch.Tensor):
        try:
            edges = torch.as_tensor(edges)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(
                f"edges must be an integer tensor of shape (k, 2); got {type(edges).__name__}"
            ) from err
    if edges.is_floating_point() or edges.is_complex() or edges.dtype == torch.bool:
        raise TypeError(f"edges must be an integer tensor of shape (k, 2); got dtype {edges.dtype}")
    if edges.ndim != 2 or edges.shape[1] != 2 or edges.shape[0] == 0:
        raise ValueError(f"edges must have shape (k ≥ 1, 2); got shape {tuple(edges.shape)}")
    edges = edges.to(device=device, dtype=torch.long)
    lo, hi = int(edges.min()), int(edges.max())
    if lo < 0 or hi >= n:
        raise ValueError(
            f"edges name neuron {lo if lo < 0 else hi}, outside [0, {n}) for activations with "
            f"{n} neurons"
        )
    loops = edges[:, 0] == edges[:, 1]
    if bool(loops.any()):
        k = int(torch.nonzero(loops)[0])
        raise ValueError(f"edge {k} joins neuron {int(edges[k, 0])} to itself")
    return edges


@torch.no_grad()
def _normalized_rows(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``Zᵀ`` (rows: centred unit-norm neurons), the column norms, and the constant neurons.

    Same values as :func:`~topo_neurons.correlation.normalized_activations` (constant neurons:
    exactly zero rows, norm replaced by 1), computed in the transposed layout, where every
    per-neuron reduction and every edge gather reads contiguous memory.
    """
    At = A.T.clone(memory_format=torch.contiguous_format)  # a copy: modified in place below
    const = At.amax(dim=1) == At.amin(dim=1)
    Zt = At.sub_(At.mean(dim=1, keepdim=True))
    if bool(const.any()):
        Zt[const] = 0.0
    norm = torch.linalg.vector_norm(Zt, dim=1)
    norm = torch.where(const, torch.ones_like(norm), norm)
    Zt.div_(norm[:, None])
    return Zt, norm, const


class _EdgeCorrelation(torch.autograd.Function):
    """``ρ_k = ⟨z_{i_k}, z_{j_k}⟩`` for given edges, with an analytic ``O(m·n)`` backward.

    Forward inputs: the activations ``A`` (m, n) that receive the gradient, and, computed from
    them without grad, ``Zᵀ`` (n, m), the norms of the centred columns and the constant mask.
    An edge touching a constant neuron has ``ρ = 0`` exactly and passes no gradient.

    Backward: ``G = ∂L/∂Z`` has row ``i_k`` += ``g_k z_{j_k}`` and row ``j_k`` += ``g_k z_{i_k}``;
    through the normalisation ``z = c/‖c‖`` it becomes ``(G − z ⟨z, G⟩)/‖c‖``, and through the
    centring ``c = a − mean(a)`` it loses its mean over the examples. The tests check it against
    autograd through the full correlation matrix and with ``torch.autograd.gradcheck``.
    """

    @staticmethod
    def forward(ctx, A, Zt, norm, const, i, j):  # type: ignore[override]
        zi, zj = Zt.index_select(0, i), Zt.index_select(0, j)
        rho = (zi * zj).sum(dim=1)
        touches = const[i] | const[j]
        rho = rho.masked_fill(touches, 0.0)
        ctx.save_for_backward(Zt, norm, i, j, touches)
        return rho

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):  # type: ignore[override]
        Zt, norm, i, j, touches = ctx.saved_tensors
        g = g.masked_fill(touches, 0.0)[:, None]
        # One gather and one scatter per end of the edges: a single gather of 2(n − 1) rows
        # allocates a temporary twice as large, measured slower inside a training step.
        G = torch.zeros_like(Zt)
        G.index_add_(0, i, Zt.index_select(0, j).mul_(g))
        G.index_add_(0, j, Zt.index_select(0, i).mul_(g))
        # Normalisation, then centring: z has zero mean over the examples, so the mean of
        # G − z⟨z, G⟩ is the mean of G.
        G.addcmul_(Zt, torch.linalg.vecdot(Zt, G)[:, None], value=-1.0)
        G.sub_(G.mean(dim=1, keepdim=True)).div_(norm[:, None])
        return G.T, None, None, None, None, None


@torch.no_grad()
def _ranking_matrix(Zt: torch.Tensor) -> torch.Tensor:
    """``1 + slack − |ZᵀZ|`` with a zero diagonal: ranks the edges as the dissimilarities do.

    Both dissimilarities are strictly decreasing functions of ``|ρ|``, so ``1 − |ρ|`` has the
    same minimum spanning trees as ``sqrt(1 − ρ²)``: one matrix serves both kinds. It is built
    from one GEMM over the upper block triangle (symmetric up to rounding, which the engine's
    validation tolerates); a constant neuron's row of ``Zᵀ`` is zero, so its entries are the
    largest, ``1 + slack``.
    """
    n = Zt.shape[0]
    check_square_fits(
        n, Zt.element_size(), what="the regulariser's ranking matrix", device=Zt.device
    )
    D = torch.empty((n, n), dtype=Zt.dtype, device=Zt.device)
    # Only the upper block triangle is multiplied (~45% fewer flops at n = 1000 with blocks of
    # 128 rows), each block transformed while small, then mirrored into the lower triangle.
    # The tree depends only on the order of the entries: ``(1 + slack) − |ρ|`` orders them as
    # ``1 − |ρ|`` and stays positive when rounding makes ``|ρ|`` exceed 1 (no clamp pass).
    for i0 in range(0, n, _RANK_BLOCK):
        i1 = min(i0 + _RANK_BLOCK, n)
        blk = Zt[i0:i1] @ Zt[i0:].T
        blk.abs_().neg_().add_(1.0 + _RANK_SLACK)
        D[i0:i1, i0:] = blk
        D[i0:, i0:i1] = blk.T
    D.fill_diagonal_(0.0)
    return D


def _safe_std(d: torch.Tensor) -> torch.Tensor:
    """Population std with a zero (not NaN) gradient when all values are equal."""
    var = ((d - d.mean()) ** 2).mean()
    pos = var > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, var, torch.ones_like(var))), var * 0)


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
    backend : {"auto", "native", "giotto", "gudhi"}, default "auto"
        Persistence backend that finds the MST edges.
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
    A = _activations(A, "topological_redundancy", distributed)
    d, _ = edge_deaths(A, kind, backend=backend, edges=edges)
    t = (1.0 - d).sum()
    return t / d.numel() if reduction == "mean" else t


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
    paper's code. Minimising it makes the deaths large and even.

    Parameters
    ----------
    A : torch.Tensor, shape (m, n)
        Activations; gradient flows back to ``A``.
    alpha : float, default 0.5
        Weight of the spread, in ``[0, 1]``.
    kind : {"abs", "sqrt"}, default "abs"
    backend : {"auto", "native", "giotto", "gudhi"}, default "auto"
    distributed : {False, True, "auto"}, default False
    edges : torch.Tensor of int, shape (k, 2), optional
        Use the dissimilarities of these edges instead of the MST deaths of ``A``.

    Returns
    -------
    torch.Tensor, shape ()
        Unitless, in ``[−(1 − α), α/2]``. When all deaths are equal (e.g. every neuron constant)
        the std term has value and gradient zero, never NaN.

    References
    ----------
    .. [1] Ballester, Casacuberta & Escalera, "Decorrelating neurons using persistence",
       PMLR 228, 2024.

    Examples
    --------
    >>> import torch
    >>> from topo_neurons.regularizers import death_spread
    >>> A = torch.tensor([[0.0, 0.0, 1.0], [1.0, 2.0, 0.0], [2.0, 4.0, 1.0]])
    >>> round(death_spread(A, alpha=0.8).item(), 6)  # deaths (0, 1): 0.8·0.5 − 0.2·0.5
    0.3
    """
    alpha = _check_alpha(alpha)
    A = _activations(A, "death_spread", distributed)
    d, _ = edge_deaths(A, kind, backend=backend, edges=edges)
    return alpha * _safe_std(d) - (1.0 - alpha) * d.mean()


def _check_alpha(alpha: object) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise TypeError(f"alpha must be a number in [0, 1]; got {type(alpha).__name__}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha={alpha!r} must lie in [0, 1]")
    return float(alpha)


# --------------------------------------------------------------------------- modules
def _check_refresh_every(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(
            f"refresh_every={k!r} is not valid; it must be an int ≥ 1 (1: a new tree every call)"
        )
    return k


def _selection_key(selection: Selection) -> tuple:
    """A comparable fingerprint of which neurons the columns are (layer names and indices)."""
    if selection is None:
        return ()
    if isinstance(selection, Mapping):
        return tuple(
            (str(name), tuple(torch.as_tensor(idx).reshape(-1).tolist()))
            for name, idx in selection.items()
        )
    return (tuple(torch.as_tensor(selection).reshape(-1).tolist()),)


#: Share of the tree's edges that neurons turned constant since the search may hold beyond one
#: edge each before a cached tree is searched again (see ``_dead_hubs``).
_DEAD_EDGE_SLACK = 0.01


@torch.no_grad()
def _constant(A: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the constant columns of ``A``."""
    return A.amax(dim=0) == A.amin(dim=0)


@torch.no_grad()
def _dead_hubs(A: torch.Tensor, edges: torch.Tensor, const_before: torch.Tensor) -> bool:
    """Whether neurons that turned constant since the search hold too many cached edges.

    A constant neuron (a dead ReLU) has ``d = 1`` with every neuron, so a minimum spanning tree
    found now would attach it by a single edge. A cached tree may hold it by many: a hub of the
    cached tree that becomes constant turns all its edges' terms to ``1 − d = 0`` at once,
    which training can exploit (it drives hubs dead). When the neurons that are constant now
    but were not at the search hold, beyond one edge each, more than
    ``_DEAD_EDGE_SLACK · (n − 1)`` edges of the cached tree, the tree is searched again.
    """
    died = _constant(A) & ~const_before
    degree = torch.bincount(edges.reshape(-1), minlength=died.numel())
    excess = (degree[died] - 1).clamp_(min=0).sum()
    return int(excess) > _DEAD_EDGE_SLACK * edges.shape[0]


class _TreeLoss(_Loss):
    """Shared by T1 and T2: the optional cache of the MST edges (``refresh_every``).

    In training mode with ``refresh_every = k > 1``, the tree is searched on the first call and
    then every ``k``-th call; the calls in between evaluate the loss on the cached edges. The
    tree is also searched again whenever the neurons change: another number of columns, or
    another ``selection`` passed to :meth:`forward`, or constant neurons holding more edges of
    the cached tree than a fresh tree would give them (see ``_dead_hubs``). In eval mode the
    loss is always exact and the cache is left alone. The cache survives ``state_dict()`` /
    ``load_state_dict()``.
    """

    def _loss(self, A: torch.Tensor) -> torch.Tensor:
        """The exact loss (the functional form)."""
        raise NotImplementedError

    def _init_cache(self, refresh_every: int) -> None:
        self.refresh_every = _check_refresh_every(refresh_every)
        self._edges: torch.Tensor | None = None
        self._const = torch.zeros(0, dtype=torch.bool)  # constant neurons at the search
        self._key: tuple = ()
        self._age = 0
        #: Tree edges that changed at the last search (``None`` before a second search or
        #: after a change of neurons), e.g. to choose ``refresh_every``.
        self.changed_edges: int | None = None

    def refresh(self) -> None:
        """Drop the cached tree: the next training call searches a new one."""
        self._edges, self._key, self._age = None, (), 0
        self.changed_edges = None

    def forward(self, A: torch.Tensor, *, selection: Selection = None) -> torch.Tensor:
        """The loss of activations ``A`` of shape (m, n); a scalar tensor.

        Parameters
        ----------
        A : torch.Tensor, shape (m, n)
        selection : mapping of str to index tensor, or index tensor, optional
            Which neurons the columns of ``A`` are (e.g. ``ActivationRecorder.selection()``);
            with ``refresh_every > 1`` a different selection than at the cached tree's search
            makes this call search a new tree. Ignored when ``refresh_every == 1``.
        """
        if self.refresh_every == 1 or not self.training:
            return self._loss(A)
        A = _activations(A, type(self).__name__, self.distributed)
        key = (A.shape[1], _selection_key(selection))
        cached = self._edges
        if cached is not None and key == self._key and self._age < self.refresh_every:
            if cached.device != A.device:
                cached = self._edges = cached.to(A.device)
            if not _dead_hubs(A, cached, self._const.to(A.device)):
                self._age += 1
                return self._loss_on(A, cached)
        d, edges = _edge_deaths(A, self.kind, self.backend, None)
        if cached is not None and key == self._key:
            n = A.shape[1]
            old = cached.to(edges.device).sort(dim=1).values  # (i, j) with i < j, as edges
            new_codes = edges[:, 0] * n + edges[:, 1]
            old_codes = old[:, 0] * n + old[:, 1]
            self.changed_edges = int((~torch.isin(new_codes, old_codes)).sum())
        else:
            self.changed_edges = None
        self._edges, self._key, self._age = edges, key, 1
        self._const = _constant(A.detach())
        return self._reduce(d)

    def _loss_on(self, A: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        # The cached edges were validated when found: no check (and no device sync) per step.
        d, _ = _edge_deaths(A, self.kind, self.backend, edges)
        return self._reduce(d)

    def _reduce(self, d: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def get_extra_state(self) -> dict[str, object]:
        edges = None if self._edges is None else self._edges.detach().cpu()
        return {"edges": edges, "key": self._key, "age": self._age, "const": self._const.cpu()}

    def set_extra_state(self, state: dict[str, object]) -> None:
        keys = {"edges", "key", "age", "const"}
        if not isinstance(state, Mapping) or set(state) != keys:
            raise ValueError(
                f"{type(self).__name__}: not a cached-tree state (expected keys {sorted(keys)}); "
                f"got {type(state).__name__}"
                + (f" with keys {sorted(state)}" if isinstance(state, Mapping) else "")
            )
        edges = state["edges"]
        self._edges = None if edges is None else torch.as_tensor(edges, dtype=torch.long)
        self._key, self._age = tuple(state["key"]), int(state["age"])
        self._const = torch.as_tensor(state["const"], dtype=torch.bool)

    def _load_from_state_dict(  # type: ignore[override]
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ) -> None:
        # A checkpoint written before ``refresh_every`` existed has no cached tree: load it with
        # strict=True as before, and start without a cache (the next call searches the tree).
        key = prefix + "_extra_state"
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        if key not in state_dict:
            if key in missing_keys:
                missing_keys.remove(key)
            self.refresh()


class TopologicalRedundancy(_TreeLoss):
    r"""T1 of Ballester et al. (2024) as a loss module: ``Σ_k (1 − d_k)``.

    .. math::

        T_1(A) = \sum_{k=1}^{n-1} (1 - d_k) \quad (\text{or divided by } n - 1)

    See :func:`topological_redundancy` for the maths and the gradient computation.

    Parameters
    ----------
    kind : {"abs", "sqrt"}, default "abs"
    reduction : {"sum", "mean"}, default "sum"
    backend : {"auto", "native", "giotto", "gudhi"}, default "auto"
    distributed : {False, True, "auto"}, default False
    refresh_every : int, default 1
        In training mode, search the MST every ``refresh_every`` calls (training steps) and in
        between evaluate T1 on the cached tree's ``n − 1`` edges (``O(m·n)``: no ``n × n``
        GEMM, no tree search). 1: exact every call. A change of the neurons (number of columns,
        or the ``selection`` passed to :meth:`forward`) searches a new tree, and so do neurons
        turning constant while they hold several edges of the cached tree (hubs driven dead to
        zero their edges' terms); eval mode is always exact and leaves the cache alone. See the
        training docs for the measured trade-off.

    Attributes
    ----------
    changed_edges : int or None
        At the last tree search, how many edges of the new tree were not in the cached one.

    Shape
    -----
    - Input: ``(m, n)``, ``m`` examples (``≥ 2``), ``n`` neurons (``≥ 2``).
    - Output: scalar.

    References
    ----------
    .. [1] Ballester, Casacuberta & Escalera, "Decorrelating neurons using persistence",
       PMLR 228, 2024.

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
        super().__init__(kind=kind, backend=backend, distributed=distributed)
        self.reduction = reduction
        self._init_cache(refresh_every)

    def _loss(self, A: torch.Tensor) -> torch.Tensor:
        return topological_redundancy(
            A, self.kind, self.reduction, backend=self.backend, distributed=self.distributed
        )

    def _reduce(self, d: torch.Tensor) -> torch.Tensor:
        t = (1.0 - d).sum()
        return t / d.numel() if self.reduction == "mean" else t

    def extra_repr(self) -> str:
        r = f", refresh_every={self.refresh_every}" if self.refresh_every != 1 else ""
        return f"kind={self.kind!r}, reduction={self.reduction!r}{r}"


class DeathSpread(_TreeLoss):
    r"""T2 of Ballester et al. (2024) as a loss module: ``α·std(d) − (1 − α)·mean(d)``.

    .. math::

        T_2(A) = \alpha \, \operatorname{std}(d) - (1 - \alpha) \, \operatorname{mean}(d)

    Population std (``ddof = 0``). See :func:`death_spread`.

    Parameters
    ----------
    alpha : float, default 0.5
    kind : {"abs", "sqrt"}, default "abs"
    backend : {"auto", "native", "giotto", "gudhi"}, default "auto"
    distributed : {False, True, "auto"}, default False
    refresh_every : int, default 1
        Search the MST every ``refresh_every`` training calls, as in
        :class:`TopologicalRedundancy`.

    Shape
    -----
    - Input: ``(m, n)``.
    - Output: scalar.

    References
    ----------
    .. [1] Ballester, Casacuberta & Escalera, "Decorrelating neurons using persistence",
       PMLR 228, 2024.

    Examples
    --------
    >>> import torch
    >>> import topo_neurons as tn
    >>> A = torch.tensor([[0.0, 0.0, 1.0], [1.0, 2.0, 0.0], [2.0, 4.0, 1.0]])
    >>> tn.DeathSpread(alpha=1.0)(A)  # std of the deaths (0, 1)
    tensor(0.5000)
    """

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
        super().__init__(kind=kind, backend=backend, distributed=distributed)
        self.alpha = alpha
        self._init_cache(refresh_every)

    def _loss(self, A: torch.Tensor) -> torch.Tensor:
        return death_spread(
            A, self.alpha, self.kind, backend=self.backend, distributed=self.distributed
        )

    def _reduce(self, d: torch.Tensor) -> torch.Tensor:
        return self.alpha * _safe_std(d) - (1.0 - self.alpha) * d.mean()

    def extra_repr(self) -> str:
        r = f", refresh_every={self.refresh_every}" if self.refresh_every != 1 else ""
        return f"alpha={self.alpha}, kind={self.kind!r}{r}"
