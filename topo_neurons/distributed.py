"""Activations gathered across ``torch.distributed`` ranks, with autograd.

Under data parallelism each rank sees ``m_r`` examples; a correlation over one rank's slice is a
noisier estimate than over the global batch. :func:`gather_activations` concatenates every
rank's activations (rank order) with an all-gather whose backward sends each rank the gradient
of its own rows, so a loss on the global batch trains every rank's copy of the model.

Gradient scale. Every rank computes the same loss ``L(A_global)``. The backward *sums* over
ranks the gradients that each rank's (identical) loss sends to a slice (an all-reduce), so rank
``r`` receives ``W · ∂L/∂A_r`` (``W`` the world size), as
``torch.distributed.nn.functional.all_gather`` does. ``DistributedDataParallel`` *averages*
parameter gradients over ranks, which divides by ``W`` again: with ``gradient="ddp"`` (the
default) the parameter gradients after DDP's averaging equal the single-process gradients of
``L`` on the concatenated batch, the same convention as a mean-reduced task loss.
``gradient="exact"`` rescales so that rank ``r`` receives exactly ``∂L/∂A_r`` (for loops that
*sum* gradients over ranks themselves). Both are checked numerically against a single process
by ``tests/test_distributed.py``.

This module needs only torch.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.distributed as dist

from ._options import check_choice

__all__ = [
    "DISTRIBUTED_VALUES",
    "GRADIENT_MODES",
    "gather_activations",
    "use_distributed",
    "world_size",
]

GRADIENT_MODES: tuple[str, ...] = ("ddp", "exact")
#: The values of the ``distributed`` option of the losses and of :func:`use_distributed`.
DISTRIBUTED_VALUES: tuple[bool | str, ...] = (True, False, "auto")


def world_size(group: object = None) -> int:
    """Number of ranks of ``group`` (1 when ``torch.distributed`` is not initialised).

    Parameters
    ----------
    group : ProcessGroup, optional
        Defaults to the global group.

    Returns
    -------
    int
    """
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size(group=group)


def use_distributed(distributed: bool | str, group: object = None) -> bool:
    """Resolve a ``distributed=`` argument to whether activations are gathered.

    Parameters
    ----------
    distributed : {True, False, "auto"}
        ``"auto"``: gather when ``torch.distributed`` is initialised with more than one rank.
        ``True``: gather, and raise if ``torch.distributed`` is not initialised.
    group : ProcessGroup, optional

    Returns
    -------
    bool

    Raises
    ------
    ValueError
        An unknown value, or ``True`` without an initialised process group.

    Examples
    --------
    >>> from topo_neurons.distributed import use_distributed
    >>> use_distributed("auto"), use_distributed(False)
    (False, False)
    """
    if distributed is None:
        return False
    check_choice("distributed", distributed, DISTRIBUTED_VALUES, what="", plural="values")
    if distributed is False:
        return False
    if distributed == "auto":
        return world_size(group) > 1
    if distributed is True:
        if not (dist.is_available() and dist.is_initialized()):
            raise ValueError(
                "distributed=True needs an initialised torch.distributed process group "
                "(torch.distributed.init_process_group); use distributed='auto' to gather only "
                "when one is running"
            )
    return world_size(group) > 1


class _AllGatherRows(torch.autograd.Function):
    """All-gather along dim 0 with a summed backward.

    Backward: the gradients of the gathered tensor are summed over ranks (an all-reduce), each
    rank keeps its own rows and multiplies them by ``scale``. Written here rather than taken from
    ``torch.distributed.nn.functional.all_gather``, whose gloo backward mis-reads non-contiguous
    gradients (e.g. those flowing back through a transpose) and which torch deprecates.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, group: object, scale: float) -> torch.Tensor:  # type: ignore[override]
        x = x.contiguous()
        W = dist.get_world_size(group=group)
        parts = [torch.empty_like(x) for _ in range(W)]
        dist.all_gather(parts, x, group=group)
        ctx.group, ctx.scale = group, scale
        ctx.rows = (dist.get_rank(group=group) * x.shape[0], x.shape[0])
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        total = grad.contiguous().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=ctx.group)
        start, m = ctx.rows
        own = total[start : start + m]
        return (own * ctx.scale if ctx.scale != 1.0 else own), None, None


def gather_activations(
    A: torch.Tensor,
    *,
    group: object = None,
    gradient: Literal["ddp", "exact"] = "ddp",
) -> torch.Tensor:
    """Concatenate every rank's activations along the examples, keeping autograd.

    Parameters
    ----------
    A : torch.Tensor, shape (m_r, n)
        This rank's activations; every rank must pass the same shape.
    group : ProcessGroup, optional
        Defaults to the global group.
    gradient : {"ddp", "exact"}, default "ddp"
        Scale of the gradient this rank receives: ``"ddp"`` gives ``W · ∂L/∂A_r``, right for
        ``DistributedDataParallel``'s averaging of parameter gradients; ``"exact"`` gives
        ``∂L/∂A_r`` (see the module notes).

    Returns
    -------
    torch.Tensor, shape (W · m_r, n)
        Rows of rank 0, then rank 1, … . ``A`` itself when there is a single rank.

    Raises
    ------
    ValueError
        Unknown ``gradient``, or ranks holding different shapes (all shapes listed).
    """
    check_choice("gradient", gradient, GRADIENT_MODES, what="", plural="modes")
    W = world_size(group)
    if W == 1:
        return A
    shape = torch.tensor(list(A.shape) + [0] * (2 - A.ndim), dtype=torch.long, device=A.device)
    shapes = [torch.empty_like(shape) for _ in range(W)]
    dist.all_gather(shapes, shape, group=group)
    listed = [tuple(int(v) for v in s) for s in shapes]
    if len(set(listed)) > 1:
        raise ValueError(
            "gather_activations needs the same activation shape (m_r, n) on every rank; "
            f"got {dict(enumerate(listed))} (rank: shape); use equal per-rank batch sizes "
            "(e.g. DistributedSampler with drop_last=True) and the same neuron sampling"
        )
    return _AllGatherRows.apply(A, group, 1.0 / W if gradient == "exact" else 1.0)
