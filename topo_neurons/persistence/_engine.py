"""``zero_persistence``: one function, four backends."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .._options import check_choice
from ._backends import giotto_edges, gudhi_edges, native_edges
from ._barcode import Barcode
from ._torch_mst import device_distance_tensor, torch_mst_dense
from ._validate import as_distance_array, check_distance_matrix

__all__ = ["BACKENDS", "resolve_backend", "zero_persistence"]

_FUNCS = {"native": native_edges, "giotto": giotto_edges, "gudhi": gudhi_edges}
#: Valid backend names; ``"auto"`` picks ``"torch"`` for a tensor on a non-CPU device (a GPU),
#: else ``"native"``.
BACKENDS: tuple[str, ...] = ("auto", *_FUNCS, "torch")


def resolve_backend(backend: str, D: object) -> str:
    """The backend ``"auto"`` stands for on ``D``: ``"torch"`` on a device tensor, else native."""
    if backend != "auto":
        return backend
    on_device = isinstance(D, torch.Tensor) and D.device.type != "cpu"
    return "torch" if on_device else "native"


def checked_tensor(D: object) -> torch.Tensor:
    """``D`` checked, as a tensor: on its device for a GPU tensor, else the host checks
    (compiled, parallel) on a zero-copy array view."""
    if isinstance(D, torch.Tensor) and D.device.type != "cpu":
        return device_distance_tensor(D)
    arr = as_distance_array(D)
    check_distance_matrix(arr)
    with warnings.catch_warnings():  # a read-only array (a memmap): only read, never written
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        return torch.from_numpy(arr)


def _torch_barcode(D: object) -> Barcode:
    """The ``"torch"`` backend: the Borůvka MST on the tensor's device (numpy: on the CPU)."""
    Dt = checked_tensor(D)
    # A bitwise symmetric matrix (what correlation_dissimilarity returns) is read by rows only.
    edges, deaths = torch_mst_dense(Dt, symmetric=bool(torch.equal(Dt, Dt.T)))
    # The barcode is a host object: n − 1 deaths and edges are copied, never the matrix.
    return Barcode(
        deaths=deaths.cpu().numpy(),
        edges=edges.cpu().numpy(),
        n_points=Dt.shape[0],
        backend="torch",
    )


def barcode_from_edges(D: np.ndarray, edges: np.ndarray, backend: str) -> Barcode:
    """Sort spanning-tree ``edges`` of validated ``D`` by death (ties by ``(i, j)``)."""
    edges = np.sort(np.asarray(edges, dtype=np.int64).reshape(-1, 2), axis=1)
    deaths = D[edges[:, 0], edges[:, 1]]
    order = np.lexsort((edges[:, 1], edges[:, 0], deaths))
    return Barcode(deaths=deaths[order], edges=edges[order], n_points=D.shape[0], backend=backend)


def zero_persistence(D: object, backend: str = "auto") -> Barcode:
    """0-dimensional Vietoris–Rips persistence of a distance matrix, with its pairs.

    In dimension 0 every bar is born at 0 and dies at the weight of an edge of a minimum
    spanning tree (MST) of the complete graph weighted by ``D``; the pairs are the MST edges.

    Parameters
    ----------
    D : array_like or torch.Tensor, shape (n, n)
        Symmetric, finite, non-negative, zero diagonal (e.g. the output of
        :func:`~topo_neurons.correlation_dissimilarity`). Tensors are detached (no gradient:
        see :func:`~topo_neurons.differentiable_deaths`). float32 is kept; other dtypes become
        float64.
    backend : {"auto", "native", "giotto", "gudhi", "torch"}, default "auto"
        ``"native"`` (what ``"auto"`` picks on the CPU): compiled dense Prim, O(n²) time, O(n)
        extra memory, deterministic ties (smallest vertex index first). ``"giotto"``: giotto-ph
        ``ripser_parallel`` (computes in float32). ``"gudhi"``: GUDHI ``RipsComplex``.
        ``"torch"`` (what ``"auto"`` picks for a tensor on a GPU): Borůvka rounds in torch
        operations on the tensor's device, the unique tree under the order ``(d, i, j)`` (the
        tiled engine's edges); only the ``n − 1`` deaths and edges are copied to the host. All
        read the upper triangle and return exactly ``n − 1`` finite bars, zero-length ones
        included.

    Returns
    -------
    Barcode
        ``deaths`` ascending, shape (n − 1,), in the dtype of ``D``; ``edges`` (n − 1, 2) with
        ``i < j`` and ``D[i, j] == deaths[k]``.

    Raises
    ------
    ValueError
        Unknown backend (the valid names are listed) or an invalid matrix (see
        :func:`~topo_neurons.persistence.validate_distance_matrix`).

    Examples
    --------
    >>> import numpy as np
    >>> import topo_neurons as tn
    >>> D = np.array([[0.0, 0.2, 0.9], [0.2, 0.0, 0.5], [0.9, 0.5, 0.0]])
    >>> bc = tn.zero_persistence(D)
    >>> bc.deaths
    array([0.2, 0.5])
    >>> bc.edges
    array([[0, 1],
           [1, 2]])
    """
    check_choice("backend", backend, BACKENDS, what="persistence backend", plural="backends")
    name = resolve_backend(backend, D)
    if name == "torch":
        return _torch_barcode(D)
    arr = as_distance_array(D)
    if name != "native" or arr.shape[0] == 1:  # native fuses the checks into its pass
        check_distance_matrix(arr)
    n = arr.shape[0]
    if n == 1:
        return Barcode(
            deaths=np.empty(0, arr.dtype),
            edges=np.empty((0, 2), np.int64),
            n_points=1,
            backend=name,
        )
    edges = _FUNCS[name](arr)
    if edges.shape != (n - 1, 2):
        raise RuntimeError(f"backend {name!r} returned {edges.shape[0]} edges for {n} points")
    return barcode_from_edges(arr, edges, name)
