"""The differentiable MST deaths of T1 and T2: tree found without autograd, edges with it.

:func:`edge_deaths` finds the minimum spanning tree without autograd and differentiates only
its ``n − 1`` edge correlations (an analytic ``O(m·n)`` backward), or evaluates given edges (the
``refresh_every`` cache, see :mod:`._tree_cache`). On the CPU with the native backend (what
``"auto"`` picks there) and for given edges, the compiled kernels of :mod:`topo_neurons._edges`
do it (Prim on ``|ρ|`` of the half Gram GEMM, a fused backward); on a GPU and with the other
host backends, a no-grad ranking matrix and :class:`_EdgeCorrelation` in torch operations.
"""

from __future__ import annotations

import numpy as np
import torch

from .._edges import EdgeCorrelationCPU, EdgeSweepCPU, tree_correlations
from .._memory import check_square_fits
from ..correlation import check_kind, dissimilarity_from_correlation, rescale_extreme_columns
from ..persistence import mst_edges, resolve_backend, torch_mst_dense
from ._base import Kind, _activations, _check_backend

__all__ = ["edge_deaths"]

#: Rows per block of the no-grad ranking matrix (see ``_ranking_matrix``).
_RANK_BLOCK = 128
#: Rows per block of the ranking matrix on a GPU (fewer, larger GEMMs).
_RANK_BLOCK_DEVICE = 2048
#: Offset that keeps the ranking matrix positive (see ``_ranking_matrix``).
_RANK_SLACK = 1e-3


def sync_free(backend: str, A: torch.Tensor) -> bool:
    """Whether the step runs the device path: the ``"torch"`` backend (``"auto"`` on a GPU).

    On it nothing waits for the device: the tree is searched by the Borůvka rounds on ``A``'s
    device, every check is computed there, and no value is read back on the host.
    """
    return resolve_backend(backend, A) == "torch"


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
    backend : {"auto", "native", "giotto", "gudhi", "torch"}
        Persistence backend that finds the edges (``"auto"``: ``"torch"`` on a GPU, else
        ``"native"``).
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
    With ``backend="torch"`` (what ``"auto"`` picks on a GPU) everything stays on ``A``'s
    device: the tree is searched there by Borůvka rounds and no value is read back on the host
    (given ``edges`` are checked, which reads them once). With a host backend on a CUDA
    tensor, the MST search needs the ``n × n`` no-grad ranking matrix on the host: one copy of
    ``n²`` elements in the dtype of ``A`` (float32: ``4n²`` bytes, 4.1 MB at ``n = 1010``), and
    the ``n − 1`` edges (``16(n − 1)`` bytes) go back.

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
    A = _activations(A, "edge_deaths", sync_free=sync_free(backend, A))
    if edges is not None:
        edges = _check_edges(edges, A.shape[1], A.device)
    return _edge_deaths(A, kind, backend, edges)


@torch.no_grad()
def _extrema(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The columns' ``(max, min)``, shape (n,) each: the constant neurons (``max == min``) and
    the check of extreme columns (:func:`~topo_neurons.correlation.rescale_extreme_columns`)
    both read them, so a call computes them once."""
    return A.amax(dim=0), A.amin(dim=0)


def _edge_deaths(
    A: torch.Tensor,
    kind: Kind,
    backend: str,
    edges: torch.Tensor | None,
    extrema: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`edge_deaths` on validated input (``edges``: validated, on ``A``'s device).

    ``extrema``: the columns' ``(max, min)`` when the caller has them (the tree cache does).
    """
    # Columns whose sums would overflow (or underflow) are scaled by a power of two first:
    # exact, the correlations do not change, and ordinary activations pass through as they are.
    amax, amin = _extrema(A) if extrema is None else extrema
    device = sync_free(backend, A)
    A = rescale_extreme_columns(A, amax, amin, sync_free=device)
    if A.device.type == "cpu" and not device:
        if edges is not None or resolve_backend(backend, A) == "native":
            return _edge_deaths_cpu(A, kind, edges, amax == amin)
    Zt, norm, const = _normalized_rows(A.detach(), amax == amin, sync_free=device)
    if edges is None and device:
        # The device path: a bitwise symmetric ranking matrix, its tree found on the device.
        edges, _ = torch_mst_dense(_ranking_matrix(Zt, symmetric=True), symmetric=True)
    elif edges is None:
        edges = mst_edges(_ranking_matrix(Zt), backend=backend)
    i, j = edges[:, 0], edges[:, 1]
    rho = _EdgeCorrelation.apply(A, Zt, norm, const, i, j)
    return dissimilarity_from_correlation(rho, kind), edges


def _edge_deaths_cpu(
    A: torch.Tensor, kind: Kind, edges: torch.Tensor | None, const: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The CPU path of the native backend (and of given edges): compiled kernels throughout.

    The tree is the one the ranking matrix (:func:`_ranking_matrix`) would give, found by
    Prim on the keys of the half Gram GEMM itself (no ``n × n`` map pass, no validation or
    sort of the matrix); the edges' ``ρ`` are the Gram entries, and their backward is one fused
    kernel. Given edges: fused sweeps over ``A`` (:mod:`topo_neurons._edges`).
    """
    if edges is not None:
        # Known edges: fused sweeps over A, no normalised or transposed copy.
        r = EdgeSweepCPU.apply(A, edges[:, 0].contiguous(), edges[:, 1].contiguous())
        return dissimilarity_from_correlation(r, kind), edges
    check_square_fits(A.shape[1], A.element_size(), what="the regulariser's Gram matrix")
    # The ranking matrix's own normalisation and GEMM calls: the same tree, ties included.
    Zt, norm, const = _normalized_rows(A.detach(), const)
    Zt_np, norm64 = Zt.numpy(), norm.numpy().astype(np.float64)
    found, rho = tree_correlations(Zt_np, _RANK_BLOCK, 1.0 + _RANK_SLACK)
    edges = torch.from_numpy(found)
    i = np.ascontiguousarray(found[:, 0])
    j = np.ascontiguousarray(found[:, 1])
    r = EdgeCorrelationCPU.apply(A, rho, Zt_np, norm64, const.numpy(), i, j)
    return dissimilarity_from_correlation(r, kind), edges


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
def _normalized_rows(
    A: torch.Tensor, const: torch.Tensor, *, sync_free: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``Zᵀ`` (rows: centred unit-norm neurons), the column norms, and the constant neurons.

    Same values as :func:`~topo_neurons.correlation.normalized_activations` (constant neurons:
    exactly zero rows, norm replaced by 1), computed in the transposed layout, where every
    per-neuron reduction and every edge gather reads contiguous memory. ``const``: which
    columns are constant (``max == min``, from the caller's column extrema). ``sync_free``:
    the constant rows are zeroed without asking the device whether there are any.
    """
    At = A.T.clone(memory_format=torch.contiguous_format)  # a copy: modified in place below
    Zt = At.sub_(At.mean(dim=1, keepdim=True))
    if sync_free:
        Zt.masked_fill_(const[:, None], 0.0)
    elif bool(const.any()):
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
def _ranking_matrix(Zt: torch.Tensor, *, symmetric: bool = False) -> torch.Tensor:
    """``1 + slack − |ZᵀZ|`` with a zero diagonal: ranks the edges as the dissimilarities do.

    Both dissimilarities are strictly decreasing functions of ``|ρ|``, so ``1 − |ρ|`` has the
    same minimum spanning trees as ``sqrt(1 − ρ²)``: one matrix serves both kinds. It is built
    from one GEMM over the upper block triangle (symmetric up to rounding, which the engine's
    validation tolerates); a constant neuron's row of ``Zᵀ`` is zero, so its entries are the
    largest, ``1 + slack``. ``symmetric``: each diagonal block's upper triangle is mirrored,
    so the matrix is bitwise symmetric (what the torch backend's row reads need; on a GPU the
    blocks are larger).
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
    rows = _RANK_BLOCK_DEVICE if symmetric and Zt.device.type != "cpu" else _RANK_BLOCK
    for i0 in range(0, n, rows):
        i1 = min(i0 + rows, n)
        blk = Zt[i0:i1] @ Zt[i0:].T
        blk.abs_().neg_().add_(1.0 + _RANK_SLACK)
        D[i0:i1, i0:] = blk
        D[i0:, i0:i1] = blk.T
        if symmetric:
            upper = torch.triu(D[i0:i1, i0:i1], diagonal=1)
            D[i0:i1, i0:i1] = upper + upper.T
    D.fill_diagonal_(0.0)
    return D
