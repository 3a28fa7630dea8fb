"""``correlation_persistence``: exact 0-dim persistence from activations, without ``D``.

Normalise the activations once (``Z``), split the neurons into blocks ``V_1 … V_B`` and compute
(1) per block the MST ``T_i`` (one ``k × k`` tile); (2) per pair of blocks ``i < j`` the cross
edges of the MST of ``T_i ∪ T_j ∪ E(V_i, V_j)``, the 256 × 256 GEMM panels of the cross tile
streamed through the anchor filter (:mod:`._tiled_filter`); (3) Kruskal on the union, merged
in a tree of small reductions, and the edges of weight 1 from its components. Every tree is
the unique MST under the strict order ``(d, i, j)``, so the result is exactly the MST of the
complete graph (``docs/tiled.md``). The GEMMs are the dense path's calls
(:func:`topo_neurons.correlation.gram_tile`), so the deaths equal
``zero_persistence(correlation_dissimilarity(A))`` bit for bit. Nothing of size ``n²`` exists.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .._options import check_choice
from ..correlation import (
    GEMM_TILE,
    _check_policy,
    _prepare,
    check_kind,
    correlation_dissimilarity,
    gram_tile,
)
from ._barcode import Barcode
from ._engine import zero_persistence
from ._panels import panels_of
from ._schedule import run_plan
from ._tiled_filter import filtered_pair_edges
from ._tiled_kernels import (
    Edges,
    block_tree,
    connect_components,
    edge_order,
    kruskal_forest,
    pair_tree,
    tree_adjacency,
)
from ._torch_tiles import torch_mst_activations

__all__ = ["DENSE_MAX_NEURONS", "correlation_persistence", "tile_task_count"]

#: Up to this many neurons ``block_size=None`` takes the dense path (measured faster there;
#: see ``benchmarks/scale.py``); above it, the tiled engine.
DENSE_MAX_NEURONS = 4096
#: Default block size of the tiled engine (a multiple of ``GEMM_TILE``): a float32 tile is
#: 4 MiB, per-task memory about 3 tiles.
DEFAULT_BLOCK = 1024
#: Inputs merged per reduction task (Kruskal on their union).
_FAN_IN = 8
#: Block pairs per pair task (their cross edges merged before returning): fewer, larger tasks,
#: still small enough (~25 ms at blocks of 1024) that the last ones end together.
_PAIRS_PER_TASK = 4
#: A filtered pair keeps at most this many candidate cross edges per neuron of the pair; beyond
#: it (nearly equal dissimilarities) the dense pair Prim runs instead.
_CANDIDATES_PER_NEURON = 16
_CODES = {"abs": 1, "sqrt": 2}
#: Values of ``correlation_persistence(backend=...)``.
_ENGINES: tuple[str, ...] = ("auto", "cpu", "torch")

#: Scratch arrays per (thread, name, dtype), reused by the tasks a thread runs; emptied after
#: each local run (a Dask worker keeps its own for the next run).
_BUFFERS: dict[tuple[int, str, np.dtype], np.ndarray] = {}


#: One identity union-find array of ``n`` entries per thread, reused by the merges (each
#: restores what it wrote; the last ``n`` only); emptied with ``_BUFFERS``.
_PARENTS: dict[int, np.ndarray] = {}


def _buffer(name: str, shape: tuple[int, int], dtype: np.dtype) -> np.ndarray:
    """A per-thread scratch array (reused across tasks run by the same thread)."""
    key = (threading.get_ident(), name, np.dtype(dtype))
    arr = _BUFFERS.get(key)
    if arr is None or arr.size < shape[0] * shape[1]:
        arr = _BUFFERS[key] = np.empty(shape[0] * shape[1], dtype)
    return arr[: shape[0] * shape[1]].reshape(shape)


def _tiles(
    PI: np.ndarray, PJ: np.ndarray | None, out: np.ndarray, outT: np.ndarray, code: int
) -> None:
    """Map ``ZIᵀ ZJ`` into ``out`` and its transpose into ``outT`` (``PJ is None``: the
    symmetric ``ZIᵀ ZI``, ``outT`` is ``out``), tile by tile, with exactly the dense path's
    GEMM calls and mapping (:func:`gram_tile`)."""
    ti = torch.from_numpy(PI)
    tj = None if PJ is None else torch.from_numpy(PJ)
    tmp = torch.from_numpy(_buffer("gemm", (GEMM_TILE, GEMM_TILE), PI.dtype))
    nj = ti.shape[0] if tj is None else tj.shape[0]
    with torch.no_grad():
        for a in range(ti.shape[0]):
            for b in range(a if tj is None else 0, nj):
                r0, c0 = a * GEMM_TILE, b * GEMM_TILE
                gram_tile(ti, a, b, tmp, out, r0, c0, code, mirror=True, Pb=tj, dstT=outT)


def diag_task(PI: np.ndarray, const: np.ndarray, g0: int, code: int) -> Edges:
    """MST ``T_i`` of one block (global endpoints ``a < b`` and weights).

    Parameters
    ----------
    PI : numpy.ndarray, shape (ceil(k / GEMM_TILE), m, GEMM_TILE)
        The block's panels of normalised activations
        (:func:`~topo_neurons.correlation.gemm_panels`).
    const : numpy.ndarray of bool, shape (k,)
        Constant neurons of the block (dissimilarity 1 to every other neuron).
    g0 : int
        Global index of the block's first neuron.
    code : int
        1 for ``"abs"``, 2 for ``"sqrt"``.
    """
    k = const.shape[0]
    T = _buffer("diag", (k, k), PI.dtype)
    _tiles(PI, None, T, T, code)
    if const.any():
        idx = np.flatnonzero(const)
        T[idx, :] = 1.0
        T[:, idx] = 1.0
    a, b, w = block_tree(T, k, g0)
    order = edge_order(a, b, w)
    a, b, w = a[order], b[order], w[order]
    return (a, b, w, *tree_adjacency((a, b, w), g0, k))


def pair_task(
    PI: np.ndarray,
    PJ: np.ndarray,
    const_i: np.ndarray,
    const_j: np.ndarray,
    gi: int,
    gj: int,
    code: int,
    tree_i: Edges,
    tree_j: Edges,
) -> Edges:
    """Cross edges of the MST of ``T_i ∪ T_j ∪ E(V_i, V_j)`` for blocks ``i < j``: the anchor
    filter (:mod:`._tiled_filter`), or the dense pair Prim when it keeps too many entries."""
    ka = const_i.shape[0]
    kb = const_j.shape[0]
    tmp = _buffer("gemm", (GEMM_TILE, GEMM_TILE), PI.dtype)
    cap = _CANDIDATES_PER_NEURON * (ka + kb)
    out = filtered_pair_edges(PI, PJ, const_i, const_j, gi, gj, code, tree_i, tree_j, tmp, cap)
    if out is not None:
        return out
    X = _buffer("cross", (ka, kb), PI.dtype)
    XT = _buffer("crossT", (kb, ka), PI.dtype)
    _tiles(PI, PJ, X, XT, code)
    if const_i.any():
        X[np.flatnonzero(const_i), :] = 1.0
        XT[:, np.flatnonzero(const_i)] = 1.0
    if const_j.any():
        X[:, np.flatnonzero(const_j)] = 1.0
        XT[np.flatnonzero(const_j), :] = 1.0
    return pair_tree(X, XT, ka, kb, gi, gj, tree_i, tree_j)


def pairs_task(n: int, code: int, PI, const_i, gi: int, tree_i: Edges, *others) -> Edges:
    """Pair tasks of block ``i`` with blocks ``j₁ < j₂ < …`` and the forest of their union.

    ``others`` holds ``(PJ, const_j, gj, tree_j)`` for each ``j``, flattened.
    """
    parts = [
        pair_task(
            PI, others[t], const_i, others[t + 1], gi, others[t + 2], code, tree_i, others[t + 3]
        )
        for t in range(0, len(others), 4)
    ]
    return _compact(parts[0]) if len(parts) == 1 else merge_task(n, *parts)


def _compact(edges: Edges) -> Edges:
    """Endpoints as int32 (``n < 2³¹`` is checked): 12 bytes an edge instead of 20."""
    a, b, w = edges[:3]
    return a.astype(np.int32, copy=False), b.astype(np.int32, copy=False), w


def merge_task(n: int, *parts: Edges) -> tuple:
    """Minimum spanning forest (order ``(d, i, j)``) of the union of edge sets."""
    a = np.concatenate([p[0] for p in parts])
    b = np.concatenate([p[1] for p in parts])
    w = np.concatenate([p[2] for p in parts])
    key = threading.get_ident()  # one array per thread, for the n of the run at hand
    parent = _PARENTS.get(key)
    if parent is None or parent.shape[0] != n:
        parent = _PARENTS[key] = np.arange(n, dtype=np.int64)
    return _compact(kruskal_forest(n, a, b, w, parent))


def tile_task_count(n: int, block_size: int) -> int:
    """Number of tile tasks (blocks plus pairs of blocks) for ``n`` neurons."""
    nb = -(-n // block_size)
    return nb + nb * (nb - 1) // 2


def _check_block_size(block_size: object) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)):
        raise TypeError(
            f"block_size must be None or a positive multiple of {GEMM_TILE}; "
            f"got {type(block_size).__name__}"
        )
    k = int(block_size)
    if k <= 0 or k % GEMM_TILE:
        raise ValueError(
            f"block_size={k} is not a positive multiple of {GEMM_TILE} (the GEMM panel width "
            f"that keeps the tiles' entries bitwise equal to the dense path's); "
            f"e.g. {max(GEMM_TILE, (k // GEMM_TILE) * GEMM_TILE)}"
        )
    return k


def _plan(P: np.ndarray, const: np.ndarray, k: int, code: int) -> tuple[list, str, int]:
    """The task list ``[(key, func, args)]`` in topological order, the final key, #tiles.

    Arguments that are keys of earlier entries stand for their results (``"z-i"`` entries are
    data: the blocks, scattered to a cluster's workers).
    """
    n = const.shape[0]
    starts = list(range(0, n, k))
    per = k // GEMM_TILE
    plan: list[tuple[str, Any, tuple]] = []
    for i, s in enumerate(starts):
        plan.append((f"z-{i}", None, (P[i * per : (i + 1) * per],)))
        plan.append((f"c-{i}", None, (np.ascontiguousarray(const[s : s + k]),)))
    # Depth-first: each merge of _FAN_IN results is placed right after them (the local
    # scheduler runs the earliest ready task first, so results are merged as they come).
    pending: list[list[str]] = [[]]

    def push(key: str, level: int = 0) -> None:
        while len(pending) <= level:
            pending.append([])
        pending[level].append(key)
        if len(pending[level]) == _FAN_IN:
            merged = f"merge-{level}-{len(plan)}"
            plan.append((merged, merge_task, (n, *pending[level])))
            pending[level] = []
            push(merged, level + 1)

    for i, s in enumerate(starts):
        plan.append((f"tree-{i}", diag_task, (f"z-{i}", f"c-{i}", s, code)))
        push(f"tree-{i}")
    n_tiles = len(starts)
    for i, si in enumerate(starts):
        for j0 in range(i + 1, len(starts), _PAIRS_PER_TASK):
            js = range(j0, min(j0 + _PAIRS_PER_TASK, len(starts)))
            others = [x for j in js for x in (f"z-{j}", f"c-{j}", starts[j], f"tree-{j}")]
            key = f"pairs-{i}-{js[0]}-{js[-1] + 1}"
            plan.append((key, pairs_task, (n, code, f"z-{i}", f"c-{i}", si, f"tree-{i}", *others)))
            push(key)
            n_tiles += len(js)
    # The rest, level by level, into one final merge (at least one: the result is a forest).
    carry: list[str] = []
    for level, keys in enumerate(pending):
        keys = carry + keys
        last = level == len(pending) - 1
        if last and len(keys) == 1 and keys[0].startswith("merge-"):
            return plan, keys[0], n_tiles
        if len(keys) > 1 or last:
            plan.append((f"merge-{level}-{len(plan)}", merge_task, (n, *keys)))
            keys = [plan[-1][0]]
        carry = keys
    return plan, carry[0], n_tiles


def correlation_persistence(
    A: np.ndarray | torch.Tensor,
    kind: str = "abs",
    constant: str = "uncorrelated",
    *,
    block_size: int | None = None,
    scheduler: Any = None,
    progress: bool | Callable[[int, int], None] = False,
    backend: str = "auto",
) -> Barcode:
    """Exact 0-dim persistence of the correlation dissimilarity of activations, any ``n``.

    Returns the barcode of ``zero_persistence(correlation_dissimilarity(A, kind, constant))``
    without the ``n × n`` matrix: the neurons are split into blocks, the minimum spanning tree
    of each block and of each pair of blocks is computed from one ``k × k`` tile of ``ZᵀZ`` at a
    time, and Kruskal on the union of these trees gives the exact tree of all neurons (the
    cycle property; the argument is in the documentation, page *Tiled engine*). The tasks run
    on local threads or on a Dask cluster.

    Parameters
    ----------
    A : numpy.ndarray or torch.Tensor, shape (m, n)
        Activations of ``n`` neurons over ``m ≥ 2`` examples (same rules as
        :func:`~topo_neurons.correlation_dissimilarity`; a tensor is detached and computed on
        the CPU).
    kind : {"abs", "sqrt"}, default "abs"
        ``d = 1 − |ρ|`` or ``d = sqrt(1 − ρ²)``.
    constant : {"uncorrelated", "drop", "raise"}, default "uncorrelated"
        Policy for constant neurons, as in :func:`~topo_neurons.correlation_dissimilarity`
        (``"drop"``: indices refer to the kept neurons).
    block_size : int, optional
        Neurons per block, a positive multiple of 256. ``None``: the dense path for
        ``n ≤ DENSE_MAX_NEURONS`` (4096, where it is as fast), else blocks of 1024. Per task the
        memory is one ``block_size²`` tile (the diagonal task's) and one 256 × 256 panel.
    scheduler : None, "threads", "sync" or dask.distributed.Client, optional
        ``None``/``"threads"``: a pool of ``torch.get_num_threads()`` local threads, each running
        MKL on one thread, the earliest ready task first (results are merged as they come, so
        memory stays flat). ``"sync"``: one task after another in this thread. A ``Client``:
        the tasks run on its cluster (one torch thread each), each worker receives only the
        blocks of ``Z`` its tasks need.
    progress : bool or callable, default False
        ``True``: a tqdm bar (stderr) over the tiles (block pairs and blocks), whose rate and
        ETA are those of the whole run (merges run between the tiles); a callable is called as
        ``progress(done, total)`` after each tile task, ``done`` counting tiles.
    backend : {"auto", "cpu", "torch"}, default "auto"
        ``"cpu"``: the engine above on the host (a device tensor is copied there).
        ``"torch"``: Borůvka rounds in torch operations on the tensor's device (numpy: the CPU),
        dense for ``n ≤ DENSE_MAX_NEURONS`` with ``block_size=None``, else from Gram tiles
        (on the CPU the dense path's 256-wide GEMM panels; on a GPU ``block_size`` or 8192
        neurons wide), never storing ``n²`` values; ``scheduler`` and ``progress`` do not
        apply. ``"auto"``: ``"torch"`` for a tensor on a GPU, else ``"cpu"``. On the CPU both
        give bitwise the same deaths, and the same edges except under ties among deaths
        where ``"cpu"`` ran its dense path (native Prim, which may pick another tree).

    Returns
    -------
    Barcode
        ``deaths`` ascending (dtype of the activations: float32 stays float32), bitwise equal to
        those of the dense path; ``edges`` ``(i, j)``, ``i < j``, the MST under the order
        ``(d, i, j)`` (the dense path's edges where there are no ties among deaths).
        ``backend`` is ``"tiled"``, ``"native"`` when the dense path ran, or ``"torch"``.

    Raises
    ------
    ValueError
        As :func:`~topo_neurons.correlation_dissimilarity` (wrong rank, fewer than 2 examples or
        neurons, NaN/Inf naming the neuron, unknown ``kind``/``constant``, constant neurons
        under ``"raise"``), or a ``block_size`` that is not a positive multiple of 256, or an
        unknown ``scheduler`` or ``backend``.
    TypeError
        Not an array/tensor, a complex dtype, a non-integer ``block_size``.

    Examples
    --------
    >>> import numpy as np
    >>> import topo_neurons as tn
    >>> A = np.random.default_rng(0).standard_normal((64, 600)).astype(np.float32)
    >>> bc = tn.correlation_persistence(A, block_size=256)
    >>> ref = tn.zero_persistence(tn.correlation_dissimilarity(A))
    >>> bc.backend, bool(np.array_equal(bc.deaths, ref.deaths))
    ('tiled', True)
    """
    check_kind(kind)
    _check_policy(constant)
    k = None if block_size is None else _check_block_size(block_size)
    check_choice("backend", backend, _ENGINES, what="engine", plural="engines")
    on_device = isinstance(A, torch.Tensor) and A.device.type != "cpu"
    if backend == "torch" or (backend == "auto" and on_device):
        return torch_mst_activations(A, kind, constant, block_size=k, dense_max=DENSE_MAX_NEURONS)
    if isinstance(A, torch.Tensor):
        A = A.detach()
        if A.device.type != "cpu":
            A = A.cpu()
    shape = getattr(A, "shape", ())
    if k is None and len(shape) == 2 and shape[1] <= DENSE_MAX_NEURONS:
        D = correlation_dissimilarity(A, kind, constant)  # validates A
        return zero_persistence(D.numpy() if isinstance(D, torch.Tensor) else D, "native")
    k = DEFAULT_BLOCK if k is None else k
    with torch.no_grad():
        Zt, _, const_t, _ = _prepare(A, constant)
    n = Zt.shape[1]
    if n >= 2**31:  # the merges keep endpoints as int32
        raise ValueError(f"the tiled engine takes fewer than 2**31 neurons; got {n}")
    finite = torch.isfinite(Zt.amax(dim=0)) & torch.isfinite(Zt.amin(dim=0))
    if not bool(finite.all()):
        bad = np.flatnonzero(~finite.numpy())
        raise ValueError(
            f"activations overflow when normalised (neuron(s) {bad[:10].tolist()}: values too "
            "large for their dtype to compute a norm); rescale them"
        )
    const = const_t.numpy().astype(bool)
    P = panels_of(Zt, A)  # in Zt's own storage where it can be: no second m × n copy
    del Zt
    plan, final, n_tiles = _plan(P, const, k, _CODES[kind])
    try:
        a, b, w = run_plan(plan, final, scheduler, progress=progress, n_tiles=n_tiles)
    finally:
        _BUFFERS.clear()  # the local threads' tiles (a Dask worker's live in its process)
        _PARENTS.clear()
    a, b, w = connect_components(n, a, b, w)  # the weight-1 edges, from the forest's components
    if a.shape[0] != n - 1:
        raise RuntimeError(f"the tiled engine returned {a.shape[0]} edges for {n} neurons")
    return Barcode(
        deaths=np.ascontiguousarray(w),
        edges=np.stack([a, b], axis=1).astype(np.int64),
        n_points=n,
        backend="tiled",
    )
