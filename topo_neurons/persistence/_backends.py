"""The three backends of 0-dim persistence, each returning MST edges of a validated matrix.

Every backend function takes a validated C-contiguous float matrix ``D`` (n ≥ 2) and returns an
``(n − 1, 2)`` int64 array of spanning-tree edges;
:func:`~topo_neurons.persistence.zero_persistence`
reads the deaths from ``D`` (upper triangle) and sorts. Zero-length bars, which giotto-ph and
GUDHI drop, are restored here.
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import DisjointSet

from .._threads import keep_torch_threads
from ._barcode import union_find_labels
from ._native import prim_mst
from ._validate import SYMMETRY_RTOL, check_distance_matrix

__all__ = ["giotto_edges", "gudhi_edges", "native_edges"]


def native_edges(D: np.ndarray) -> np.ndarray:
    """MST edges by the native compiled dense Prim (O(n²) time, O(n) extra memory).

    ``D`` need not be checked beforehand: the checks are fused into Prim's single pass, and
    when they flag anything the exact elementwise check runs (and raises with the offending
    entry) before any edge is returned.
    """
    edges, suspicious = prim_mst(D, diag_tol=SYMMETRY_RTOL[D.dtype])
    if suspicious:
        check_distance_matrix(D)  # raises on an invalid matrix
        edges, _ = prim_mst(D, diag_tol=SYMMETRY_RTOL[D.dtype])  # valid after all: rounding
    return edges


#: Largest float64 that rounds to 0.0 in float32 (half the smallest subnormal, ties to even).
_FLOAT32_ZERO = 2.0**-150


def _restore_zero_edges(D: np.ndarray, edges: np.ndarray, zero_at: float = 0.0) -> np.ndarray:
    """Complete a spanning forest with zero-weight edges into a spanning tree.

    Libraries that drop zero-length bars return the MST minus a spanning forest of the
    zero-distance graph; Kruskal processes zero edges first, so any spanning forest of that
    graph completes them to an MST. An entry counts as zero when it is ``≤ zero_at`` (the
    library's zero: giotto-ph rounds to float32, where entries ``≤ 2⁻¹⁵⁰`` become 0).
    """
    n = D.shape[0]
    missing = n - 1 - edges.shape[0]
    if missing == 0:
        return edges
    iu, ju = np.nonzero(D <= zero_at)
    upper = iu < ju
    iu, ju = iu[upper], ju[upper]
    # Contract the given forest (vectorised), then keep the zero edges (row-major order) that
    # join two of its components: a spanning forest of the zero graph on the components.
    labels = union_find_labels(n, edges).tolist()
    sets = DisjointSet(range(max(labels) + 1))
    extra = []
    for i, j in zip(iu.tolist(), ju.tolist()):
        if sets.merge(labels[i], labels[j]):
            extra.append((i, j))
            if len(extra) == missing:
                break
    if len(extra) != missing:
        raise RuntimeError(
            f"backend returned {edges.shape[0]} pairs for {n} points and only {len(extra)} "
            "zero-length bars could be restored; the result is not a spanning tree"
        )
    return np.vstack([edges, np.array(extra, dtype=np.int64).reshape(-1, 2)])


def _check_float32_range(D: np.ndarray) -> None:
    """Refuse entries that giotto-ph's float32 arithmetic cannot represent (they become inf)."""
    if D.dtype == np.float32 or D.size == 0:
        return
    big = float(np.finfo(np.float32).max)
    top = float(np.max(D))  # validated: finite and non-negative
    if top > big:
        i, j = np.unravel_index(int(np.argmax(D)), D.shape)
        raise ValueError(
            f"backend 'giotto' computes in float32, whose largest finite value is {big:.4g}; "
            f"D[{i}, {j}] = {top:.4g} cannot be represented (it would become inf). Use "
            f"backend='native' or 'gudhi' (float64), or rescale D"
        )


def giotto_edges(D: np.ndarray, n_threads: int = -1) -> np.ndarray:
    """MST edges from giotto-ph's generators (``ripser_parallel``, ``maxdim=0``).

    giotto-ph computes in float32 and reads the upper triangle; each row of its 0-dim finite
    generators is ``[birth vertex, edge vertex 1, edge vertex 2]``. On float64 input the edges
    form an MST of the float32-rounded matrix, so deaths read back from ``D`` agree with the exact
    ones to float32 precision; on float32 input they are exact.
    """
    from gph import ripser_parallel

    _check_float32_range(D)
    with keep_torch_threads():  # giotto-ph sets the process's OpenMP thread count
        res = ripser_parallel(
            D, maxdim=0, metric="precomputed", return_generators=True, n_threads=n_threads
        )
    gens = np.asarray(res["gens"][0], dtype=np.int64).reshape(-1, 3)
    edges = np.sort(gens[:, 1:3], axis=1)
    return _restore_zero_edges(D, edges, zero_at=_FLOAT32_ZERO if D.dtype != np.float32 else 0.0)


def gudhi_edges(D: np.ndarray) -> np.ndarray:
    """MST edges from GUDHI's ``RipsComplex`` persistence pairs (exact, double precision).

    GUDHI reads the lower triangle of a distance matrix; it is given the upper triangle (as the
    other backends read) in its lower-triangular list form. ``min_persistence=-1`` keeps the
    zero-length bars; the zero-edge restoration still runs as a safety net.
    """
    import gudhi

    n = D.shape[0]
    lower = [D[:i, i].astype(np.float64).tolist() for i in range(n)]
    rips = gudhi.RipsComplex(distance_matrix=lower)
    st = rips.create_simplex_tree(max_dimension=1)
    st.compute_persistence(min_persistence=-1.0, persistence_dim_max=False)
    pairs = st.persistence_pairs()
    edges = [tuple(sorted(death)) for birth, death in pairs if len(birth) == 1 and len(death) == 2]
    arr = np.array(edges, dtype=np.int64).reshape(-1, 2)
    return _restore_zero_edges(D, arr)
