"""The :class:`Barcode` of 0-dimensional Vietoris–Rips persistence."""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..io import atomic_path, open_npz

if TYPE_CHECKING:  # pragma: no cover
    from gudhi import SimplexTree

__all__ = ["BARCODE_FIELDS", "Barcode", "union_find_labels"]


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
        Which backend computed it: ``"native"``, ``"torch"``, ``"giotto"`` or ``"gudhi"``.
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
        cls, simplex_tree: SimplexTree, n_points: int | None = None
    ) -> Barcode | np.ndarray:
        """The barcode, with its pairs, of a GUDHI ``SimplexTree`` whose persistence is computed.

        GUDHI's persistence list (:meth:`to_gudhi`'s format) holds no pairs, so the barcode is
        read from the tree itself: each finite 0-dim pair of
        ``simplex_tree.persistence_pairs()`` is the edge that kills a component, its death that
        edge's filtration value. The inverse of :meth:`to_gudhi` up to the pairs GUDHI chose.

        Parameters
        ----------
        simplex_tree : gudhi.SimplexTree
            A Vietoris–Rips complex of ``n`` points (vertices ``0 … n − 1``, all born at 0; at
            least its 1-skeleton) after
            ``simplex_tree.compute_persistence(min_persistence=-1)`` (or
            ``persistence(min_persistence=-1)``): ``-1`` keeps the zero-length bars.
        n_points : int, optional
            Only with the deprecated persistence-list form (below): the number of points.

        Returns
        -------
        Barcode
            ``n − 1`` deaths (float64, the units of the filtration) with their MST edges,
            ``backend="gudhi"``.

        Warns
        -----
        DeprecationWarning
            When given GUDHI's persistence list (``[(dim, (birth, death)), …]``), the form of
            earlier releases: it still returns, as then, only the ascending float64 deaths of
            the finite 0-dim bars (an ``ndarray``: the list holds no pairs), checked against
            ``n_points − 1`` when ``n_points`` is given. Pass the ``SimplexTree`` instead; the
            list form goes in the next release.

        Raises
        ------
        TypeError
            ``simplex_tree`` is neither a ``SimplexTree`` nor a persistence list.
        ValueError
            Persistence was not computed; fewer than ``n − 1`` finite 0-dim bars (zero-length
            bars dropped, or a disconnected complex); a vertex born after 0.

        Examples
        --------
        >>> import gudhi, numpy as np, topo_neurons as tn
        >>> D = np.array([[0, .2, .9], [.2, 0, .5], [.9, .5, 0]])
        >>> st = gudhi.RipsComplex(distance_matrix=D).create_simplex_tree(max_dimension=1)
        >>> _ = st.compute_persistence(min_persistence=-1)
        >>> tn.Barcode.from_gudhi(st) == tn.zero_persistence(D)
        True
        """
        if isinstance(simplex_tree, (list, tuple)):
            return _deaths_of_persistence_list(simplex_tree, n_points)
        if not callable(getattr(simplex_tree, "persistence_pairs", None)):
            raise TypeError(
                "from_gudhi takes a gudhi.SimplexTree whose persistence is computed; got "
                f"{type(simplex_tree).__name__}"
            )
        try:
            pairs = simplex_tree.persistence_pairs()
        except RuntimeError as exc:
            raise ValueError(
                f"{exc}: call simplex_tree.compute_persistence(min_persistence=-1) first"
            ) from None
        n = int(simplex_tree.num_vertices())
        born_late = [(v, f) for (v,), f in simplex_tree.get_skeleton(0) if f != 0.0]
        if born_late:
            v, f = born_late[0]
            raise ValueError(
                f"vertex {v} is born at {f}; a Vietoris–Rips barcode has every point born at 0"
            )
        edges = np.array(
            [sorted(death) for birth, death in pairs if len(birth) == 1 and len(death) == 2],
            dtype=np.int64,
        ).reshape(-1, 2)
        if edges.shape[0] != n - 1:
            raise ValueError(
                f"expected {n - 1} finite 0-dim bars, found {edges.shape[0]} (was the "
                "persistence computed with min_persistence=-1, on a connected complex?)"
            )
        deaths = np.array([simplex_tree.filtration(e) for e in edges.tolist()], dtype=np.float64)
        order = np.lexsort((edges[:, 1], edges[:, 0], deaths))
        return cls(deaths=deaths[order], edges=edges[order], n_points=n, backend="gudhi")

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

    def distance(self, other: Barcode, metric: str = "wasserstein", **options: Any) -> float:
        """Distance to ``other`` by GUDHI: :func:`topo_neurons.barcode_distance` (``order=``,
        ``internal_p=``)."""
        from ._distances import barcode_distance

        return barcode_distance(self, other, metric, **options)

    def to_giotto(self, reduced: bool = True, infinity_values: float | None = None) -> np.ndarray:
        """giotto-tda's ``(k, 3)`` ``[birth, death, 0]`` rows: the bars of positive length, and
        the infinite bar only with ``reduced=False`` (``persistence._giotto.giotto_rows``)."""
        from ._giotto import giotto_rows

        return giotto_rows(self.deaths, reduced=reduced, infinity_values=infinity_values)

    @classmethod
    def from_giotto(cls, diagram: Any, n_points: int | None = None, **options: Any) -> Barcode:
        """A barcode of a giotto-tda H0 diagram (``persistence._giotto.giotto_deaths``).

        The layout holds no pairs: ``edges`` are the path ``0–1–…–(n−1)`` in death order (a
        minimum spanning tree of the single-linkage space with these deaths), so deaths,
        distances and cluster counts hold but vertex labels are not the neurons';
        ``backend="giotto-tda"``. ``n_points`` restores dropped zero-length bars."""
        from ._giotto import giotto_deaths

        d, n = giotto_deaths(diagram, n_points, **options)
        chain = np.stack([np.arange(n - 1), np.arange(1, n)], axis=1)
        return cls(deaths=d, edges=chain, n_points=n, backend="giotto-tda")

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        """The fields :data:`BARCODE_FIELDS` as JSON-ready values.

        Returns
        -------
        dict
            ``deaths``: list of float (``repr`` precision, so JSON keeps them exactly);
            ``edges``: list of ``[i, j]``; ``n_points``: int; ``backend``: str.
            :meth:`from_dict` inverts it (deaths come back as float64).
        """
        return {name: value.tolist() for name, value in self.to_arrays().items()}

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fields :data:`BARCODE_FIELDS` as numpy arrays, as ``.npz`` files store them.

        Returns
        -------
        dict of str to numpy.ndarray
            ``deaths`` (its own float dtype, shape (n − 1,)), ``edges`` (int64, (n − 1, 2)),
            ``n_points`` (0-d int64) and ``backend`` (0-d str). :meth:`from_dict` inverts it.
        """
        return {
            "deaths": self.deaths,
            "edges": self.edges,
            "n_points": np.asarray(self.n_points, dtype=np.int64),
            "backend": np.asarray(self.backend, dtype=np.str_),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Barcode:
        """The barcode of :meth:`to_dict`'s or :meth:`to_arrays`' output (lists or arrays).

        Parameters
        ----------
        data : mapping
            ``deaths``, ``edges`` and ``n_points``; ``backend`` is optional (files written before
            it was stored read as ``"native"``). Other keys are ignored.

        Raises
        ------
        ValueError
            A field is missing, or the fields do not make a valid barcode.
        """
        missing = [name for name in _REQUIRED_FIELDS if name not in data]
        if missing:
            raise ValueError(f"not a barcode: missing {missing}")
        return cls(
            deaths=np.asarray(data["deaths"]),
            edges=np.asarray(data["edges"]),
            n_points=int(data["n_points"]),
            backend=str(data["backend"]) if "backend" in data else _DEFAULT_BACKEND,
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the barcode to an ``.npz`` file atomically and return its path.

        The file holds the arrays of :meth:`to_arrays` (``deaths``, ``edges``, ``n_points`` and
        ``backend``); an interrupted write leaves no partial file.
        """
        target = Path(path)
        if target.suffix != ".npz":
            raise ValueError(f"barcode files end in .npz; got {str(target)!r}")
        with atomic_path(target) as tmp:
            np.savez(tmp, **self.to_arrays())
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Barcode:
        """Read a barcode written by :meth:`save` (no pickles are loaded).

        A file without ``backend`` (written before it was stored) reads as ``"native"``.

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
        loaded = open_npz(
            target,
            "a barcode file",
            "(a .npy file; activations?), not the .npz written by Barcode.save (make one with "
            f"`topo-neurons barcode {target.name} --out DIR`)",
        )
        with loaded as f:
            missing = [name for name in _REQUIRED_FIELDS if name not in f.files]
            if missing:
                raise ValueError(f"{str(target)!r} is not a barcode file: missing {missing}")
            try:
                arrays = {name: f[name] for name in BARCODE_FIELDS if name in f.files}
            except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
                raise ValueError(
                    f"{str(target)!r} is not a barcode file: an array is damaged "
                    f"({type(exc).__name__}: {exc})"
                ) from None
        try:
            return cls.from_dict(arrays)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{str(target)!r} is not a valid barcode file: {exc}") from None


#: The fields of a :class:`Barcode`, in order: what every barcode file stores (``.npz`` arrays,
#: the ``barcode`` of a report's JSON, the entries of a ``BarcodeHistory`` file).
BARCODE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Barcode))
#: Backend of a barcode read from a file written before ``backend`` was stored.
_DEFAULT_BACKEND: str = next(f.default for f in fields(Barcode) if f.name == "backend")
_REQUIRED_FIELDS: tuple[str, ...] = tuple(name for name in BARCODE_FIELDS if name != "backend")


def _deaths_of_persistence_list(
    persistence: Sequence[tuple[int, tuple[float, float]]], n_points: int | None
) -> np.ndarray:
    """The deprecated :meth:`Barcode.from_gudhi` of a persistence list: its finite 0-dim deaths."""
    warnings.warn(
        "Barcode.from_gudhi(persistence_list) is deprecated and returns only the deaths (the "
        "list holds no pairs); pass the gudhi.SimplexTree to get a Barcode with its edges",
        DeprecationWarning,
        stacklevel=3,
    )
    deaths = np.sort(
        np.array(
            [d for dim, (_, d) in persistence if dim == 0 and np.isfinite(d)], dtype=np.float64
        )
    )
    if n_points is not None and deaths.shape[0] != n_points - 1:
        raise ValueError(
            f"expected {n_points - 1} finite 0-dim bars, found {deaths.shape[0]} "
            "(was the list computed with min_persistence=-1?)"
        )
    return deaths
