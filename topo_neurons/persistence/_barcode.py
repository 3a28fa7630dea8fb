"""The :class:`Barcode` of 0-dimensional Vietoris–Rips persistence."""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..io import atomic_path

__all__ = ["Barcode", "union_find_labels"]


def union_find_labels(n: int, edges: np.ndarray) -> np.ndarray:
    """Connected-component labels of ``n`` vertices joined by ``edges``.

    Parameters
    ----------
    n : int
        Number of vertices.
    edges : numpy.ndarray of int, shape (k, 2)

    Returns
    -------
    numpy.ndarray of int64, shape (n,)
        Labels ``0 … c−1`` numbered in order of each component's smallest vertex.
    """
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix(
        (np.ones(edges.shape[0], dtype=np.int8), (edges[:, 0], edges[:, 1])), shape=(n, n)
    )
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def _check_threshold(threshold: object) -> float:
    """Return ``threshold`` as a finite float, else raise with the offending value."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)):
        raise TypeError(f"threshold must be a real number; got {type(threshold).__name__}")
    t = float(threshold)
    if not np.isfinite(t):
        raise ValueError(
            f"threshold must be finite; got {t} (every point is in one cluster above the "
            "largest death)"
        )
    return t


@dataclass(frozen=True, eq=False)
class Barcode:
    """0-dimensional persistence barcode of a finite metric space, with its persistence pairs.

    Every bar is born at 0. The ``n − 1`` finite bars die at ``deaths``; bar ``k`` dies when
    edge ``edges[k]`` joins two clusters, so ``D[edges[k, 0], edges[k, 1]] == deaths[k]`` and
    the edges form a minimum spanning tree of the complete graph weighted by ``D``. One more bar,
    ``[0, ∞)``, never dies (:attr:`infinite_bar`).

    Attributes
    ----------
    deaths : numpy.ndarray, shape (n − 1,)
        Death times in ascending order, in the units (and float dtype) of the distance matrix.
        Zero-length bars (two points at distance 0) are included.
    edges : numpy.ndarray of int64, shape (n − 1, 2)
        The persistence pair of each finite bar, as the MST edge ``(i, j)`` with ``i < j``
        (row/column indices of ``D``); row ``k`` pairs with ``deaths[k]``. Among equal deaths
        rows are ordered by ``(i, j)``.
    n_points : int
        Number of points (neurons) ``n``.
    backend : str
        Which backend computed it: ``"native"``, ``"giotto"`` or ``"gudhi"``.
    """

    deaths: np.ndarray
    edges: np.ndarray
    n_points: int
    backend: str = field(default="native")

    def __post_init__(self) -> None:
        # Own copies: the arrays are made read-only, which must not affect the caller's arrays.
        deaths = np.array(self.deaths)
        if deaths.dtype.kind not in "fiu":
            raise TypeError(f"deaths must be real numbers; got dtype {deaths.dtype}")
        if deaths.dtype.kind != "f":
            deaths = deaths.astype(np.float64)
        edges_in = np.array(self.edges)
        if edges_in.size and edges_in.dtype.kind not in "iu":
            raise TypeError(f"edges must be integer vertex indices; got dtype {edges_in.dtype}")
        n = int(self.n_points)
        if n < 1:
            raise ValueError(f"a barcode needs n_points ≥ 1; got {n}")
        if deaths.ndim != 1 or deaths.shape[0] != n - 1:
            raise ValueError(f"deaths must have shape ({n - 1},); got {deaths.shape}")
        if edges_in.size != 2 * (n - 1) or (edges_in.size and edges_in.shape[-1] != 2):
            raise ValueError(f"edges must have shape ({n - 1}, 2); got {edges_in.shape}")
        edges = edges_in.astype(np.int64).reshape(-1, 2)
        if not np.all(np.isfinite(deaths)) or np.any(deaths < 0):
            k = int(np.argmax(~np.isfinite(deaths) | (deaths < 0)))
            raise ValueError(
                f"deaths must be finite and ≥ 0; got {deaths[k]} at index {k} "
                "(the infinite bar is implicit, see infinite_bar)"
            )
        if deaths.size and np.any(np.diff(deaths) < 0):
            k = int(np.argmax(np.diff(deaths) < 0))
            raise ValueError(
                f"deaths must be in ascending order; deaths[{k}] = {deaths[k]} > "
                f"deaths[{k + 1}] = {deaths[k + 1]}"
            )
        if edges.size and (
            np.any(edges[:, 0] >= edges[:, 1]) or edges.min() < 0 or edges.max() >= n
        ):
            raise ValueError(f"edges must satisfy 0 ≤ i < j < n_points={n}")
        deaths.setflags(write=False)
        edges.setflags(write=False)
        object.__setattr__(self, "deaths", deaths)
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "n_points", n)

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        """Number of finite bars, ``n − 1``."""
        return self.n_points - 1

    def __repr__(self) -> str:
        if len(self):
            rng = f"deaths in [{self.deaths[0]:.4g}, {self.deaths[-1]:.4g}]"
        else:
            rng = "no finite bars"
        return f"Barcode(n_points={self.n_points}, {rng}, backend={self.backend!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Barcode):
            return NotImplemented
        return (
            self.n_points == other.n_points
            and np.array_equal(self.deaths, other.deaths)
            and np.array_equal(self.edges, other.edges)
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def births(self) -> np.ndarray:
        """Birth of each finite bar: all zeros, shape (n − 1,)."""
        return np.zeros_like(self.deaths)

    @property
    def infinite_bar(self) -> tuple[float, float]:
        """The essential class ``(0.0, inf)``: the whole space is one component in the end."""
        return (0.0, float("inf"))

    @property
    def total_persistence(self) -> float:
        """Sum of the finite deaths (bars are born at 0), in the units of ``D``."""
        return float(np.sum(self.deaths, dtype=np.float64))

    def intervals(self, include_infinite: bool = True) -> np.ndarray:
        """Bars as an array of ``(birth, death)`` rows, shape (n − 1 [+ 1], 2), float64."""
        rows = np.stack([self.births, self.deaths], axis=1).astype(np.float64)
        if include_infinite:
            rows = np.vstack([rows, [self.infinite_bar]])
        return rows

    def to_gudhi(self) -> list[tuple[int, tuple[float, float]]]:
        """GUDHI's persistence format ``[(0, (0.0, death)), …, (0, (0.0, inf))]``.

        The infinite bar comes first, then finite bars by decreasing death, like
        ``SimplexTree.persistence()``. Zero-length bars are included.
        """
        out = [(0, self.infinite_bar)]
        out += [(0, (0.0, float(d))) for d in self.deaths[::-1]]
        return out

    @classmethod
    def from_gudhi(
        cls, persistence: list[tuple[int, tuple[float, float]]], n_points: int | None = None
    ) -> np.ndarray:
        """Deaths (ascending, float64) of the finite 0-dim bars of a GUDHI persistence list.

        GUDHI's list carries no pairs, so this returns only the deaths; with ``n_points`` it
        checks that exactly ``n_points − 1`` finite bars are present.
        """
        deaths = np.sort(
            np.array(
                [d for dim, (b, d) in persistence if dim == 0 and np.isfinite(d)], dtype=np.float64
            )
        )
        if n_points is not None and deaths.shape[0] != n_points - 1:
            raise ValueError(
                f"expected {n_points - 1} finite 0-dim bars, found {deaths.shape[0]} "
                "(was the list computed with min_persistence=-1?)"
            )
        return deaths

    def clusters(self, threshold: float) -> np.ndarray:
        """Single-linkage clusters at scale ``threshold``.

        Two points are in the same cluster when a chain of points joins them with every step
        at distance ``≤ threshold``: the connected components of the MST edges whose death is
        ``≤ threshold``.

        Parameters
        ----------
        threshold : float
            Scale, in the units of ``D`` (for correlation dissimilarity, ``1 − |ρ|``).

        Returns
        -------
        numpy.ndarray of int64, shape (n,)
            Cluster label of each point, numbered in order of each cluster's smallest point.
        """
        t = _check_threshold(threshold)
        keep = self.deaths <= t
        return union_find_labels(self.n_points, self.edges[keep])

    def n_clusters(self, threshold: float) -> int:
        """Number of single-linkage clusters at ``threshold``: ``n − #{deaths ≤ threshold}``.

        Parameters
        ----------
        threshold : float
            Scale, in the units of ``D``.

        Returns
        -------
        int
            Number of distinct labels of :meth:`clusters` at the same ``threshold``.
        """
        t = _check_threshold(threshold)
        return int(self.n_points - np.count_nonzero(self.deaths <= t))

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the barcode to an ``.npz`` file atomically and return its path.

        The file holds ``deaths``, ``edges``, ``n_points`` and ``backend``; an interrupted write
        leaves no partial file.
        """
        target = Path(path)
        if target.suffix != ".npz":
            raise ValueError(f"barcode files end in .npz; got {str(target)!r}")
        with atomic_path(target) as tmp:
            np.savez(
                tmp,
                deaths=self.deaths,
                edges=self.edges,
                n_points=np.int64(self.n_points),
                backend=np.str_(self.backend),
            )
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Barcode:
        """Read a barcode written by :meth:`save` (no pickles are loaded).

        Raises
        ------
        FileNotFoundError
            No file at ``path``.
        ValueError
            The file is not a barcode file: not a readable ``.npz`` (corrupt or truncated), a
            single array (a ``.npy`` of activations), missing or invalid arrays. The message
            names the file.
        """
        target = Path(path)
        if not target.is_file():
            raise FileNotFoundError(f"no barcode file at {str(target)!r}")
        try:
            loaded = np.load(target, allow_pickle=False)
        except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
            raise ValueError(
                f"{str(target)!r} is not a barcode file: it cannot be read as .npz "
                f"({type(exc).__name__}: {exc})"
            ) from None
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError(
                f"{str(target)!r} is not a barcode file: it holds one array of shape "
                f"{loaded.shape} (a .npy file; activations?), not the .npz written by "
                f"Barcode.save (make one with `topo-neurons barcode {target.name} --out DIR`)"
            )
        with loaded as f:
            missing = {"deaths", "edges", "n_points"} - set(f.files)
            if missing:
                raise ValueError(
                    f"{str(target)!r} is not a barcode file: missing {sorted(missing)}"
                )
            try:
                backend = str(f["backend"]) if "backend" in f.files else "native"
                deaths, edges, n_points = f["deaths"], f["edges"], f["n_points"]
            except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
                raise ValueError(
                    f"{str(target)!r} is not a barcode file: an array is damaged "
                    f"({type(exc).__name__}: {exc})"
                ) from None
            try:
                return cls(deaths=deaths, edges=edges, n_points=int(n_points), backend=backend)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{str(target)!r} is not a valid barcode file: {exc}") from None
