"""Deaths as differentiable functions of the distance matrix."""

from __future__ import annotations

import numpy as np
import torch

from ._engine import checked_tensor, resolve_backend, zero_persistence
from ._torch_mst import torch_mst_dense

__all__ = ["differentiable_deaths", "mst_edges"]


def mst_edges(D: torch.Tensor | np.ndarray, backend: str = "auto") -> torch.Tensor:
    """MST edges of ``D`` (computed without gradient), sorted by death.

    Parameters
    ----------
    D : torch.Tensor or numpy.ndarray, shape (n, n)
    backend : str
        See :func:`zero_persistence`.

    Returns
    -------
    torch.Tensor of int64, shape (n − 1, 2), on the device of ``D`` (CPU for numpy).

    Notes
    -----
    With ``backend="torch"`` (what ``"auto"`` picks on a GPU) a tensor's tree is searched on
    its device and the edges never leave it; ``D`` is checked there, with one synchronisation
    to read the verdict.
    """
    if isinstance(D, torch.Tensor) and resolve_backend(backend, D) == "torch":
        Dt = checked_tensor(D)
        edges, _ = torch_mst_dense(Dt, symmetric=bool(torch.equal(Dt, Dt.T)))
        return edges.to(D.device)
    bc = zero_persistence(D, backend=backend)
    device = D.device if isinstance(D, torch.Tensor) else None
    # Copy: the barcode's arrays are read-only and torch warns on non-writable memory.
    return torch.tensor(np.array(bc.edges), dtype=torch.long, device=device)


def differentiable_deaths(D: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """The ``n − 1`` finite deaths of 0-dim persistence, differentiable with respect to ``D``.

    The MST edges are found without gradient; the deaths are then gathered from ``D`` itself,
    ``deaths[k] = D[i_k, j_k]``, so the gradient reaches exactly those ``n − 1`` entries (the
    deaths are differentiable almost everywhere: wherever the MST is locally constant).

    Parameters
    ----------
    D : torch.Tensor, shape (n, n)
        Distance matrix (float32 or float64, any device), usually with ``requires_grad``.
    backend : {"auto", "native", "giotto", "gudhi", "torch"}
        Persistence backend used to find the edges (``"auto"``: ``"torch"`` on a GPU, where
        nothing of ``D`` is copied to the host).

    Returns
    -------
    torch.Tensor, shape (n − 1,)
        Deaths in ascending order, same dtype and device as ``D``.

    Examples
    --------
    >>> import torch, topo_neurons as tn
    >>> D = torch.tensor([[0.0, 0.2, 0.9], [0.2, 0.0, 0.5], [0.9, 0.5, 0.0]], requires_grad=True)
    >>> tn.differentiable_deaths(D).sum().backward()
    >>> D.grad
    tensor([[0., 1., 0.],
            [0., 0., 1.],
            [0., 0., 0.]])
    """
    if not isinstance(D, torch.Tensor):
        raise TypeError(
            f"differentiable_deaths needs a torch.Tensor; got {type(D).__name__} "
            "(use zero_persistence for numpy arrays)"
        )
    edges = mst_edges(D, backend=backend)
    return D[edges[:, 0], edges[:, 1]]
