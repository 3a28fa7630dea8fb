"""Redundancy reports of trained networks: :func:`analyse` → :class:`RedundancyReport`.

The neurons of a model (every leaf module with parameters by default, or chosen layers, all
neurons or a sample) are run over a whole data set once; their Pearson correlations are
accumulated in one streaming pass (:class:`StreamingCorrelation`: running sums in float64, memory
``O(n²)`` whatever the number of examples), turned into the correlation dissimilarity and into
the 0-dimensional barcode of the whole network and of each layer. The report summarises, for the
network and per layer, how redundant the neurons are.
"""

from __future__ import annotations

import itertools
import json
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._io import atomic_write_text
from ._memory import check_square_fits
from .capture import ActivationRecorder, AllNeurons, FixedSelection
from .correlation import check_kind, dissimilarity_from_correlation
from .persistence import Barcode, zero_persistence

__all__ = [
    "SUMMARY_KEYS",
    "LayerRedundancy",
    "RedundancyReport",
    "RedundantPair",
    "StreamingCorrelation",
    "analyse",
]

#: Keys of :attr:`LayerRedundancy.summary`, in order.
SUMMARY_KEYS: tuple[str, ...] = (
    "min",
    "q05",
    "q25",
    "q50",
    "q75",
    "q95",
    "max",
    "mean",
    "std",
    "total_persistence",
)
_QUANTILES = {"q05": 0.05, "q25": 0.25, "q50": 0.5, "q75": 0.75, "q95": 0.95}
#: Name of the whole-network entry.
NETWORK = "network"


# ----------------------------------------------------------------------------- streaming
class StreamingCorrelation:
    """Pearson correlation of ``n`` neurons accumulated over batches of any number of examples.

    Keeps running sums of the shifted activations ``x − c`` (``c`` = the first batch's mean, for
    numerical safety): ``Σ(x − c)`` (n,), ``Σ(x − c)(x − c)ᵀ`` (n × n), in float64, plus each
    neuron's running minimum and maximum (to find constant neurons exactly, like
    :func:`~topo_neurons.constant_neurons`). Memory is ``O(n²)``, independent of the number of
    examples; the result equals the correlation of all examples stacked together.

    Parameters
    ----------
    n : int
        Number of neurons (columns of every batch).
    labels : sequence of str, optional
        Neuron names used in error messages (e.g. ``"fc1[3]"``); default ``"neuron j"``.
    device : torch.device or str, optional
        Where the sums live (default: the device of the first batch).

    Examples
    --------
    >>> import numpy as np
    >>> from topo_neurons.analysis import StreamingCorrelation
    >>> X = np.random.default_rng(0).standard_normal((100, 3))
    >>> acc = StreamingCorrelation(3)
    >>> for start in range(0, 100, 32):
    ...     acc.update(X[start:start + 32])
    >>> bool(np.allclose(acc.correlation(), np.corrcoef(X, rowvar=False)))
    True
    """

    def __init__(
        self,
        n: int,
        labels: Sequence[str] | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if int(n) < 1:
            raise ValueError(f"StreamingCorrelation needs n ≥ 1 neurons; got {n}")
        self.n = int(n)
        if labels is not None and len(labels) != self.n:
            raise ValueError(f"labels must name the {self.n} neurons; got {len(labels)}")
        self.labels = list(labels) if labels is not None else None
        self._device = torch.device(device) if device is not None else None
        self.n_examples = 0
        self._shift: torch.Tensor | None = None
        self._s1: torch.Tensor | None = None
        self._s2: torch.Tensor | None = None
        self._min: torch.Tensor | None = None
        self._max: torch.Tensor | None = None

    def _name(self, j: int) -> str:
        return self.labels[j] if self.labels is not None else f"neuron {j}"

    def update(self, batch: np.ndarray | torch.Tensor) -> None:
        """Add a batch of activations, shape (m, n), any ``m ≥ 1``.

        Raises
        ------
        ValueError
            Wrong shape, or NaN/Inf (naming the neuron and the example, counted over all
            batches so far).
        """
        if isinstance(batch, np.ndarray):
            x = torch.from_numpy(np.asarray(batch, dtype=np.float64))
        elif isinstance(batch, torch.Tensor):
            x = batch.detach()
        else:
            raise TypeError(
                f"a batch must be a numpy array or a torch tensor; got {type(batch).__name__}"
            )
        if x.ndim != 2 or x.shape[1] != self.n:
            raise ValueError(
                f"a batch of activations must have shape (m, {self.n}); got {tuple(x.shape)}"
            )
        if x.shape[0] == 0:
            return
        if self._device is None:
            self._device = x.device
        x = x.to(device=self._device, dtype=torch.float64)
        finite = torch.isfinite(x)
        if not bool(finite.all()):
            i, j = (int(v) for v in torch.nonzero(~finite)[0])
            raise ValueError(
                f"activation of {self._name(j)} is {x[i, j].item()} at example "
                f"{self.n_examples + i}; NaN/Inf activations are always an error"
            )
        if self._shift is None:
            # The n × n sum and the covariance's temporaries live on this device.
            check_square_fits(
                self.n, 8, 4.0, what="the streaming correlation accumulator", device=self._device
            )
            self._shift = x.mean(dim=0)
            self._s1 = torch.zeros(self.n, dtype=torch.float64, device=self._device)
            self._s2 = torch.zeros((self.n, self.n), dtype=torch.float64, device=self._device)
            self._min = x.amin(dim=0)
            self._max = x.amax(dim=0)
        else:
            torch.minimum(self._min, x.amin(dim=0), out=self._min)
            torch.maximum(self._max, x.amax(dim=0), out=self._max)
        xs = x - self._shift
        self._s1 += xs.sum(dim=0)
        self._s2.addmm_(xs.T, xs)
        self.n_examples += int(x.shape[0])

    def constant(self) -> np.ndarray:
        """Which neurons were constant over every example so far: bool, shape (n,)."""
        self._check_ready()
        return (self._max == self._min).cpu().numpy()

    def _check_ready(self) -> None:
        if self.n_examples < 2:
            raise ValueError(f"correlations need at least 2 examples; got {self.n_examples} so far")

    def covariance(self) -> np.ndarray:
        """Population covariance (divided by ``m``) of the neurons: float64, shape (n, n)."""
        self._check_ready()
        m = float(self.n_examples)
        cov = (self._s2 - torch.outer(self._s1, self._s1) / m) / m
        cov = 0.5 * (cov + cov.T)
        return cov.cpu().numpy()

    def correlation(self) -> np.ndarray:
        """Pearson correlation of all examples so far: float64, shape (n, n).

        Symmetric, unit diagonal, values in ``[-1, 1]``; a constant neuron gets ``ρ = 0`` with
        every other neuron (the ``"uncorrelated"`` policy of
        :func:`~topo_neurons.correlation_matrix`).
        """
        cov = self.covariance()
        const = self.constant()
        var = np.diag(cov).copy()
        var[const] = 1.0
        # A non-constant neuron has positive variance; guard rounding only.
        var = np.maximum(var, np.finfo(np.float64).tiny)
        scale = 1.0 / np.sqrt(var)
        C = cov * scale[:, None] * scale[None, :]
        np.clip(C, -1.0, 1.0, out=C)
        C[const, :] = 0.0
        C[:, const] = 0.0
        np.fill_diagonal(C, 1.0)
        return C

    def dissimilarity(self, kind: str = "abs") -> np.ndarray:
        """Correlation dissimilarity (``1 − |ρ|`` or ``sqrt(1 − ρ²)``): float64, shape (n, n)."""
        check_kind(kind)
        D = dissimilarity_from_correlation(torch.from_numpy(self.correlation()), kind).numpy()
        np.fill_diagonal(D, 0.0)
        return D


# ----------------------------------------------------------------------------- report types
@dataclass(frozen=True)
class RedundantPair:
    """An MST edge between two strongly correlated neurons.

    Attributes
    ----------
    a, b : str
        Neuron names, ``"layer[index]"``; ``a`` is the lower column of the report.
    rho : float
        Pearson correlation of the two neurons (signed), over the whole data set.
    death : float
        The edge's death, the dissimilarity ``1 − |ρ|`` or ``sqrt(1 − ρ²)``.
    """

    a: str
    b: str
    rho: float
    death: float


@dataclass(frozen=True, eq=False)
class LayerRedundancy:
    """Redundancy of one set of neurons: one layer, or the whole network.

    Attributes
    ----------
    name : str
        Layer name, or ``"network"`` for the whole network.
    n_neurons : int
        Neurons analysed (after sampling).
    total_neurons : int
        Neurons of the layer(s) before sampling.
    labels : tuple of str, length n_neurons
        Name of each analysed neuron, ``"layer[index]"`` (conv: flat ``(channel, position)``
        index), in the order of the barcode's points.
    point_layers : tuple of str, length n_neurons
        Layer of each point (for colouring figures).
    constant_neurons : tuple of str
        Neurons constant over the whole data set (e.g. dead ReLUs). They count as uncorrelated
        with every other neuron (``d = 1``).
    barcode : Barcode
        0-dimensional barcode of the correlation dissimilarity of these neurons.
    summary : dict of str to float
        Death statistics, keys :data:`SUMMARY_KEYS`: ``min``, quantiles ``q05`` … ``q95``,
        ``max``, ``mean``, ``std`` (population, ddof 0), ``total_persistence`` (sum of deaths).
        NaN only when there are no finite bars (one neuron).
    redundant_pairs : tuple of RedundantPair
        The (at most ``top_k``) MST edges with death ``≤ pair_threshold``, most redundant first.
    n_clusters : dict of float to int
        At each threshold ``t``: the number of *redundancy clusters*, single-linkage clusters at
        scale ``t`` with at least two neurons.
    effective_neurons : dict of float to int
        At each threshold ``t``: the *effective number of neurons*, the number of single-linkage
        clusters at scale ``t`` (singletons included), ``n − #{deaths ≤ t}``; each group of
        neurons chained by steps of dissimilarity ``≤ t`` counts once.
    cross_layer_edges : int
        MST edges joining neurons of two different layers (0 for a single layer).
    """

    name: str
    n_neurons: int
    total_neurons: int
    labels: tuple[str, ...]
    point_layers: tuple[str, ...]
    constant_neurons: tuple[str, ...]
    barcode: Barcode
    summary: dict[str, float]
    redundant_pairs: tuple[RedundantPair, ...]
    n_clusters: dict[float, int]
    effective_neurons: dict[float, int]
    cross_layer_edges: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (barcode as lists; thresholds as ``repr`` strings)."""
        return {
            "name": self.name,
            "n_neurons": self.n_neurons,
            "total_neurons": self.total_neurons,
            "labels": list(self.labels),
            "point_layers": list(self.point_layers),
            "constant_neurons": list(self.constant_neurons),
            "barcode": {
                "deaths": [float(d) for d in self.barcode.deaths],
                "edges": self.barcode.edges.tolist(),
                "n_points": self.barcode.n_points,
                "backend": self.barcode.backend,
            },
            "summary": {k: _json_float(v) for k, v in self.summary.items()},
            "redundant_pairs": [
                {"a": p.a, "b": p.b, "rho": p.rho, "death": p.death} for p in self.redundant_pairs
            ],
            "n_clusters": {repr(float(t)): c for t, c in self.n_clusters.items()},
            "effective_neurons": {repr(float(t)): c for t, c in self.effective_neurons.items()},
            "cross_layer_edges": self.cross_layer_edges,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LayerRedundancy:
        """Inverse of :meth:`to_dict`."""
        b = d["barcode"]
        n_points = int(b["n_points"])
        bc = Barcode(
            deaths=np.asarray(b["deaths"], dtype=np.float64).reshape(-1),
            edges=np.asarray(b["edges"], dtype=np.int64).reshape(-1, 2),
            n_points=n_points,
            backend=str(b.get("backend", "native")),
        )
        return cls(
            name=str(d["name"]),
            n_neurons=int(d["n_neurons"]),
            total_neurons=int(d["total_neurons"]),
            labels=tuple(d["labels"]),
            point_layers=tuple(d["point_layers"]),
            constant_neurons=tuple(d["constant_neurons"]),
            barcode=bc,
            summary={k: float("nan") if v is None else float(v) for k, v in d["summary"].items()},
            redundant_pairs=tuple(
                RedundantPair(p["a"], p["b"], float(p["rho"]), float(p["death"]))
                for p in d["redundant_pairs"]
            ),
            n_clusters={float(t): int(c) for t, c in d["n_clusters"].items()},
            effective_neurons={float(t): int(c) for t, c in d["effective_neurons"].items()},
            cross_layer_edges=int(d["cross_layer_edges"]),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LayerRedundancy):
            return NotImplemented
        return json.dumps(self.to_dict(), sort_keys=True) == json.dumps(
            other.to_dict(), sort_keys=True
        )

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class RedundancyReport:
    """What :func:`analyse` found: the whole network and each layer.

    Attributes
    ----------
    network : LayerRedundancy
        All analysed neurons together (``report.barcode`` is its barcode).
    layers : dict of str to LayerRedundancy
        One entry per layer, in forward order (``report.layers["fc1"].barcode``).
    kind : {"abs", "sqrt"}
        The dissimilarity used.
    n_examples : int
        Examples the correlations were computed over.
    thresholds : tuple of float
        Scales of ``n_clusters`` and ``effective_neurons``.
    pair_threshold : float
        Death below which (inclusive) an MST edge is a redundant pair.
    top_k : int
        Largest number of redundant pairs listed per entry.
    sampling : str
        Description of the neuron sampling.
    """

    network: LayerRedundancy
    layers: dict[str, LayerRedundancy]
    kind: str
    n_examples: int
    thresholds: tuple[float, ...]
    pair_threshold: float
    top_k: int
    sampling: str = "AllNeurons()"
    meta: dict[str, Any] = field(default_factory=dict)

    # Views used by the plotting functions.
    @property
    def barcode(self) -> Barcode:
        """The whole network's barcode."""
        return self.network.barcode

    @property
    def labels(self) -> tuple[str, ...]:
        """Name of each point of :attr:`barcode`, ``"layer[index]"``."""
        return self.network.labels

    @property
    def point_layers(self) -> tuple[str, ...]:
        """Layer of each point of :attr:`barcode`."""
        return self.network.point_layers

    def __repr__(self) -> str:
        return (
            f"RedundancyReport({self.network.n_neurons} neurons in {len(self.layers)} layer(s), "
            f"{self.n_examples} examples, kind={self.kind!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RedundancyReport):
            return NotImplemented
        return json.dumps(self.to_dict(), sort_keys=True) == json.dumps(
            other.to_dict(), sort_keys=True
        )

    __hash__ = None  # type: ignore[assignment]

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary; :meth:`from_dict` inverts it exactly."""
        return {
            "format": "topo_neurons.RedundancyReport",
            "version": 1,
            "kind": self.kind,
            "n_examples": self.n_examples,
            "thresholds": [float(t) for t in self.thresholds],
            "pair_threshold": float(self.pair_threshold),
            "top_k": self.top_k,
            "sampling": self.sampling,
            "meta": dict(self.meta),
            "network": self.network.to_dict(),
            "layers": [entry.to_dict() for entry in self.layers.values()],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RedundancyReport:
        """Rebuild a report from :meth:`to_dict`'s output."""
        if d.get("format") != "topo_neurons.RedundancyReport":
            raise ValueError(
                "not a RedundancyReport dictionary: its 'format' is "
                f"{d.get('format')!r}, expected 'topo_neurons.RedundancyReport'"
            )
        layers = [LayerRedundancy.from_dict(x) for x in d["layers"]]
        return cls(
            network=LayerRedundancy.from_dict(d["network"]),
            layers={entry.name: entry for entry in layers},
            kind=str(d["kind"]),
            n_examples=int(d["n_examples"]),
            thresholds=tuple(float(t) for t in d["thresholds"]),
            pair_threshold=float(d["pair_threshold"]),
            top_k=int(d["top_k"]),
            sampling=str(d.get("sampling", "")),
            meta=dict(d.get("meta", {})),
        )

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the report as JSON, atomically; returns the path.

        Floats are written with ``repr`` precision, so :meth:`from_json` returns an equal report.
        """
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False)
        return atomic_write_text(path, text + "\n")

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> RedundancyReport:
        """Read a report written by :meth:`to_json`."""
        target = Path(path)
        if not target.is_file():
            raise FileNotFoundError(f"no report file at {str(target)!r}")
        try:
            data = json.loads(target.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{str(target)!r} is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    def to_markdown(self) -> str:
        """A readable Markdown summary: per-layer table, clusters, most redundant pairs."""
        ts = self.thresholds
        lines = [
            "# Redundancy report",
            "",
            f"{self.network.n_neurons} neurons ({self.sampling}) in {len(self.layers)} layer(s), "
            f"correlations over {self.n_examples} examples, dissimilarity "
            f"`{_KIND_FORMULA[self.kind]}`."
            + (
                " Barcodes by the tiled engine (activations kept, no n × n matrix)."
                if self.meta.get("path") == "tiled"
                else ""
            ),
            "",
            "| layer | neurons | constant | min death | median | mean | std | total persistence"
            + "".join(f" | effective @ {t:g}" for t in ts)
            + "".join(f" | clusters @ {t:g}" for t in ts)
            + " |",
            "|---" * (8 + 2 * len(ts)) + "|",
        ]
        for entry in [*self.layers.values(), self.network]:
            s = entry.summary
            name = f"**{entry.name}**" if entry is self.network else f"`{entry.name}`"
            sizes = (
                f"{entry.n_neurons}"
                if entry.n_neurons == entry.total_neurons
                else f"{entry.n_neurons} of {entry.total_neurons}"
            )
            lines.append(
                f"| {name} | {sizes} | {len(entry.constant_neurons)} | {_fmt(s['min'])} | "
                f"{_fmt(s['q50'])} | {_fmt(s['mean'])} | {_fmt(s['std'])} | "
                f"{_fmt(s['total_persistence'])}"
                + "".join(f" | {entry.effective_neurons[t]}" for t in ts)
                + "".join(f" | {entry.n_clusters[t]}" for t in ts)
                + " |"
            )
        lines += [
            "",
            f"Whole-network MST edges joining different layers: {self.network.cross_layer_edges} "
            f"of {len(self.network.barcode)}.",
            "",
            "*Effective neurons @ t*: single-linkage clusters at scale t (each group of neurons "
            "chained by dissimilarity ≤ t counts once). *Clusters @ t*: those clusters with at "
            "least two neurons.",
            "",
        ]
        const = self.network.constant_neurons
        if const:
            shown = ", ".join(f"`{c}`" for c in const[:30]) + (" …" if len(const) > 30 else "")
            lines += [f"Constant (dead) neurons: {shown}.", ""]
        rho_min = _rho_of_death(self.pair_threshold, self.kind)
        pairs = self.network.redundant_pairs
        lines.append(
            f"## Most redundant pairs (MST edges with |ρ| ≥ {rho_min:.3g}, death ≤ "
            f"{self.pair_threshold:g})"
        )
        lines.append("")
        if pairs:
            lines += ["| neuron | neuron | ρ | death |", "|---|---|---|---|"]
            lines += [f"| `{p.a}` | `{p.b}` | {p.rho:.4f} | {p.death:.4f} |" for p in pairs]
        else:
            lines.append("None.")
        return "\n".join(lines) + "\n"


_KIND_FORMULA = {"abs": "1 − |ρ|", "sqrt": "sqrt(1 − ρ²)"}


def _fmt(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{x:.4g}"


def _json_float(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def _rho_of_death(d: float, kind: str) -> float:
    """The |ρ| at which the dissimilarity equals ``d``."""
    d = float(np.clip(d, 0.0, 1.0))
    return 1.0 - d if kind == "abs" else float(np.sqrt(1.0 - d * d))


# ----------------------------------------------------------------------------- computation
def death_summary(deaths: np.ndarray) -> dict[str, float]:
    """Statistics of a barcode's deaths (keys :data:`SUMMARY_KEYS`; NaN when empty)."""
    d = np.asarray(deaths, dtype=np.float64)
    if d.size == 0:
        out = dict.fromkeys(SUMMARY_KEYS, float("nan"))
        out["total_persistence"] = 0.0
        return out
    out = {"min": float(d.min())}
    for key, q in _QUANTILES.items():
        out[key] = float(np.quantile(d, q))
    out["max"] = float(d.max())
    out["mean"] = float(d.mean())
    out["std"] = float(d.std())
    out["total_persistence"] = float(d.sum())
    return {k: out[k] for k in SUMMARY_KEYS}


def _entry(
    name: str,
    cols: np.ndarray,
    D: np.ndarray | None,
    C: np.ndarray | Any,
    const: np.ndarray,
    labels: np.ndarray,
    point_layers: np.ndarray,
    total_neurons: int,
    thresholds: tuple[float, ...],
    pair_threshold: float,
    top_k: int,
    backend: str,
    barcode: Barcode | None = None,
) -> LayerRedundancy:
    bc = barcode if barcode is not None else zero_persistence(D[np.ix_(cols, cols)], backend)
    lab = labels[cols]
    lay = point_layers[cols]
    rho_of = C if callable(C) else C.__getitem__  # C: the matrix, or ρ(i, j) (tiled path)
    sel = np.flatnonzero(bc.deaths <= pair_threshold)[:top_k]
    pairs = tuple(
        RedundantPair(
            a=str(lab[bc.edges[k, 0]]),
            b=str(lab[bc.edges[k, 1]]),
            rho=float(rho_of((cols[bc.edges[k, 0]], cols[bc.edges[k, 1]]))),
            death=float(bc.deaths[k]),
        )
        for k in sel
    )
    n_clusters: dict[float, int] = {}
    effective: dict[float, int] = {}
    for t in thresholds:
        lbl = bc.clusters(t)
        sizes = np.bincount(lbl)
        effective[t] = int(sizes.size)
        n_clusters[t] = int(np.count_nonzero(sizes >= 2))
    cross = int(np.count_nonzero(lay[bc.edges[:, 0]] != lay[bc.edges[:, 1]])) if len(bc) else 0
    return LayerRedundancy(
        name=name,
        n_neurons=int(cols.size),
        total_neurons=int(total_neurons),
        labels=tuple(str(x) for x in lab),
        point_layers=tuple(str(x) for x in lay),
        constant_neurons=tuple(str(x) for x in lab[const[cols]]),
        barcode=bc,
        summary=death_summary(bc.deaths),
        redundant_pairs=pairs,
        n_clusters=n_clusters,
        effective_neurons=effective,
        cross_layer_edges=cross,
    )


def build_report(
    acc: StreamingCorrelation,
    labels: Sequence[str],
    point_layers: Sequence[str],
    layer_names: Sequence[str],
    layer_sizes: Mapping[str, int] | None = None,
    *,
    kind: str = "abs",
    thresholds: Sequence[float] = (0.1, 0.2, 0.5),
    top_k: int = 20,
    pair_threshold: float | None = None,
    backend: str = "auto",
    sampling: str = "AllNeurons()",
) -> RedundancyReport:
    """Turn accumulated correlations into a :class:`RedundancyReport`.

    Parameters
    ----------
    acc : StreamingCorrelation
        Correlations of the ``n`` analysed neurons.
    labels, point_layers : sequence of str, length n
        Name (``"layer[index]"``) and layer of each neuron (column of ``acc``).
    layer_names : sequence of str
        Layers in order; each must own at least one column.
    layer_sizes : mapping, optional
        Neurons of each layer before sampling (default: the analysed count).
    kind, thresholds, top_k, pair_threshold, backend, sampling
        See :func:`analyse`.
    """
    check_kind(kind)
    ts, pair_t, top_k = _check_options(thresholds, top_k, pair_threshold)
    labels_arr = np.asarray(list(labels), dtype=object)
    layers_arr = np.asarray(list(point_layers), dtype=object)
    if labels_arr.shape != (acc.n,) or layers_arr.shape != (acc.n,):
        raise ValueError(
            f"labels and point_layers must have {acc.n} entries; got {labels_arr.shape[0]} and "
            f"{layers_arr.shape[0]}"
        )
    C = acc.correlation()
    D = dissimilarity_from_correlation(torch.from_numpy(C), kind).numpy()
    np.fill_diagonal(D, 0.0)
    const = acc.constant()
    sizes = dict(layer_sizes) if layer_sizes is not None else {}
    entries: dict[str, LayerRedundancy] = {}
    for name in layer_names:
        cols = np.flatnonzero(layers_arr == name)
        if cols.size == 0:
            raise ValueError(f"layer {name!r} has no analysed neurons")
        entries[name] = _entry(
            name,
            cols,
            D,
            C,
            const,
            labels_arr,
            layers_arr,
            sizes.get(name, cols.size),
            ts,
            pair_t,
            top_k,
            backend,
        )
    everything = np.arange(acc.n)
    network = _entry(
        NETWORK,
        everything,
        D,
        C,
        const,
        labels_arr,
        layers_arr,
        sum(sizes.get(name, entries[name].n_neurons) for name in layer_names),
        ts,
        pair_t,
        top_k,
        backend,
        barcode=zero_persistence(D, backend=backend),
    )
    return RedundancyReport(
        network=network,
        layers=entries,
        kind=kind,
        n_examples=acc.n_examples,
        thresholds=ts,
        pair_threshold=pair_t,
        top_k=top_k,
        sampling=sampling,
    )


def build_report_tiled(
    A: torch.Tensor,
    labels: Sequence[str],
    point_layers: Sequence[str],
    layer_names: Sequence[str],
    layer_sizes: Mapping[str, int] | None = None,
    *,
    kind: str = "abs",
    thresholds: Sequence[float] = (0.1, 0.2, 0.5),
    top_k: int = 20,
    pair_threshold: float | None = None,
    sampling: str = "AllNeurons()",
    scheduler: Any = None,
    progress: bool = False,
) -> RedundancyReport:
    """:func:`build_report` from the activations themselves, with no ``n × n`` matrix.

    The barcodes come from :func:`~topo_neurons.correlation_persistence` (the tiled engine for
    the whole network, the dense path for layers small enough), the ``ρ`` of the listed pairs
    from one dot product each. ``report.meta["path"]`` is ``"tiled"``.

    Parameters
    ----------
    A : torch.Tensor, shape (m, n), float64
        Activations of all examples (rows) of the ``n`` analysed neurons.
    labels, point_layers, layer_names, layer_sizes, kind, thresholds, top_k, pair_threshold,
    sampling
        See :func:`build_report`.
    scheduler, progress
        See :func:`~topo_neurons.correlation_persistence`.
    """
    from .correlation import constant_neurons, normalized_activations
    from .persistence import correlation_persistence

    check_kind(kind)
    ts, pair_t, top_k = _check_options(thresholds, top_k, pair_threshold)
    n = A.shape[1]
    labels_arr = np.asarray(list(labels), dtype=object)
    layers_arr = np.asarray(list(point_layers), dtype=object)
    if labels_arr.shape != (n,) or layers_arr.shape != (n,):
        raise ValueError(
            f"labels and point_layers must have {n} entries; got {labels_arr.shape[0]} and "
            f"{layers_arr.shape[0]}"
        )
    const = np.zeros(n, dtype=bool)
    const[constant_neurons(A)] = True
    Z = normalized_activations(A)[0].numpy()

    def rho(ij: tuple[Any, Any]) -> float:
        i, j = int(ij[0]), int(ij[1])
        return 0.0 if const[i] or const[j] else float(np.clip(Z[:, i] @ Z[:, j], -1.0, 1.0))

    sizes = dict(layer_sizes) if layer_sizes is not None else {}
    common = (const, labels_arr, layers_arr)
    entries: dict[str, LayerRedundancy] = {}
    for name in layer_names:
        cols = np.flatnonzero(layers_arr == name)
        if cols.size == 0:
            raise ValueError(f"layer {name!r} has no analysed neurons")
        bc = correlation_persistence(A[:, cols], kind, scheduler=scheduler)
        entries[name] = _entry(
            name, cols, None, rho, *common, sizes.get(name, cols.size), ts, pair_t, top_k,
            "auto", barcode=bc,
        )  # fmt: skip
    bc = correlation_persistence(
        A, kind, block_size=DEFAULT_TILE_BLOCK, scheduler=scheduler, progress=progress
    )
    total = sum(sizes.get(name, entries[name].n_neurons) for name in layer_names)
    network = _entry(
        NETWORK, np.arange(n), None, rho, *common, total, ts, pair_t, top_k, "auto", barcode=bc
    )
    return RedundancyReport(
        network=network,
        layers=entries,
        kind=kind,
        n_examples=int(A.shape[0]),
        thresholds=ts,
        pair_threshold=pair_t,
        top_k=top_k,
        sampling=sampling,
        meta={"path": "tiled"},
    )


#: Block size of the tiled engine in :func:`analyse`.
DEFAULT_TILE_BLOCK = 1024
#: ``analyse(path="auto")`` keeps the activations and takes the tiled engine when the dense
#: path's float64 ``n × n`` arrays (``_ANALYSE_COPIES`` of them) would exceed this many bytes.
DENSE_ANALYSE_BYTES = 2 * 1024**3
ANALYSE_PATHS: tuple[str, ...] = ("auto", "dense", "tiled")


def _check_options(
    thresholds: Sequence[float], top_k: int, pair_threshold: float | None
) -> tuple[tuple[float, ...], float, int]:
    try:
        ts = tuple(float(t) for t in thresholds)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"thresholds must be a sequence of numbers; got {thresholds!r}") from exc
    if not ts or any(not (0.0 <= t <= 1.0) for t in ts):
        raise ValueError(f"thresholds must be a non-empty sequence in [0, 1]; got {thresholds!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 0:
        raise ValueError(f"top_k must be a non-negative int; got {top_k!r}")
    pt = max(ts) if pair_threshold is None else float(pair_threshold)
    if not 0.0 <= pt <= 1.0:
        raise ValueError(f"pair_threshold must lie in [0, 1]; got {pair_threshold!r}")
    return ts, pt, int(top_k)


def iter_batches(data: Any, batch_size: int) -> Iterator[torch.Tensor]:
    """Yield the input batches of ``data`` as torch tensors.

    ``data`` is a torch tensor or numpy array (split along its first axis into ``batch_size``
    rows), or any iterable of batches such as a ``DataLoader``; a tuple/list batch contributes
    its first element (the inputs); a mapping batch (e.g. a Hugging Face tokenizer's
    ``{"input_ids": …, "attention_mask": …}``) is passed whole, as keyword arguments.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be an int; got {type(batch_size).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1; got {batch_size}")
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(np.ascontiguousarray(data))
    if isinstance(data, torch.Tensor):
        if data.ndim == 0:
            raise ValueError("data must have a first axis of examples; got a 0-d tensor")
        return _slices(data, int(batch_size))
    if not isinstance(data, Iterable):
        raise TypeError(
            "data must be a torch.Tensor, a numpy array or an iterable of batches (DataLoader); "
            f"got {type(data).__name__}"
        )
    return _first_elements(data)


def _slices(data: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    for start in range(0, data.shape[0], batch_size):
        yield data[start : start + batch_size]


def _cast(x: torch.Tensor, dtype: Any, device: Any) -> torch.Tensor:
    if x.is_floating_point() and dtype is not None:
        x = x.to(dtype)
    return x.to(device) if device is not None else x


def _mask_batches(mask: Any, data: Any, batch_size: int) -> Iterator[torch.Tensor | None]:
    """The padding mask sliced like the data's batches (``None`` forever when no mask; the
    name of a model keyword argument, read by the recorder at each call, forever)."""
    if mask is None or isinstance(mask, str):
        return itertools.repeat(mask)
    if not isinstance(data, (np.ndarray, torch.Tensor)):
        raise TypeError(
            "mask= needs data as one tensor or array (the mask's rows are aligned with its "
            f"examples); got data of type {type(data).__name__}"
        )
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(mask)
    if not isinstance(mask, torch.Tensor) or mask.ndim < 1 or mask.shape[0] != data.shape[0]:
        shape = tuple(mask.shape) if hasattr(mask, "shape") else type(mask).__name__
        raise ValueError(
            f"mask must be a tensor with one row per example of data ({data.shape[0]}); got {shape}"
        )
    return _slices(mask, batch_size)


def _first_elements(data: Iterable[Any]) -> Iterator[torch.Tensor]:
    for k, batch in enumerate(data):
        if isinstance(batch, Mapping):  # keyword arguments of the model (Hugging Face style)
            yield {
                key: torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v
                for key, v in batch.items()
            }
            continue
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(np.ascontiguousarray(x))
        if not isinstance(x, torch.Tensor):
            raise TypeError(
                f"batch {k} of data holds {type(x).__name__}; expected a tensor or numpy array "
                "(or a tuple/list whose first element is one)"
            )
        yield x


def _model_dtype_device(model: torch.nn.Module) -> tuple[torch.dtype | None, torch.device | None]:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype, p.device
    return None, None


#: float64 ``n × n`` arrays alive at the peak of :func:`analyse` (accumulator, covariance,
#: correlation, dissimilarity, a layer's block): measured peak RSS ≈ 7.5 n² × 8 bytes.
_ANALYSE_COPIES = 7.0


def _check_device(device: torch.device | str | None) -> torch.device | None:
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a torch device (examples: 'cpu', 'cuda', 'cuda:1')"
        ) from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r}: CUDA is not available on this machine")
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
        dev = torch.device("cuda", index)
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r}: MPS is not available on this machine")
    return dev


def _run(model: torch.nn.Module, x: torch.Tensor, dtype: Any, device: Any) -> None:
    if isinstance(x, Mapping):
        kwargs = {
            k: _cast(v, dtype, device) if isinstance(v, torch.Tensor) else v for k, v in x.items()
        }
        try:
            model(**kwargs)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            shapes = {k: tuple(v.shape) for k, v in kwargs.items() if isinstance(v, torch.Tensor)}
            raise ValueError(f"the model failed on a batch of shapes {shapes}: {first}") from exc
        return
    if x.is_floating_point() and dtype is not None:
        x = x.to(dtype)
    if device is not None:
        x = x.to(device)
    try:
        model(x)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"the model failed on a batch of shape {tuple(x.shape)}: {first}") from exc


def analyse(
    model: torch.nn.Module,
    data: Any,
    layers: Sequence[str | torch.nn.Module] | None = None,
    sampling: Any = None,
    kind: str = "abs",
    batch_size: int = 256,
    thresholds: Sequence[float] = (0.1, 0.2, 0.5),
    top_k: int = 20,
    progress: bool = False,
    *,
    pair_threshold: float | None = None,
    backend: str = "auto",
    device: torch.device | str | None = None,
    point: str = "post",
    positions: str = "auto",
    batch_dim: int | dict[str, int] | None = None,
    mask: torch.Tensor | np.ndarray | str | None = None,
    path: str = "auto",
    scheduler: Any = None,
) -> RedundancyReport:
    """Analyse how redundant a model's neurons are over a whole data set.

    The model runs in eval mode under ``torch.no_grad()`` (its training mode is restored
    afterwards) over every example of ``data``; activations are recorded by
    :class:`~topo_neurons.ActivationRecorder` and their Pearson correlations accumulated in one
    streaming pass (:class:`StreamingCorrelation`, float64, memory ``O(n²)`` for ``n`` neurons,
    independent of the number of examples). When ``sampling`` depends on the data (importance or
    random sampling), the neurons are chosen on the first batch and then kept fixed
    (:class:`~topo_neurons.FixedSelection`). The correlation dissimilarity gives the barcode of the
    whole network and of each layer (each layer's is the persistence of its own block of the
    matrix).

    Definitions used in the report, at each threshold ``t`` of ``thresholds`` (a dissimilarity):

    * **effective number of neurons** ``E(t)``: the number of single-linkage clusters at scale
      ``t``, ``E(t) = n − #{k : d_k ≤ t}``. Neurons chained by steps of dissimilarity ``≤ t``
      (for ``kind="abs"``: ``|ρ| ≥ 1 − t``) count as one; ``E(t) = n`` means no redundancy at
      that scale.
    * **redundancy clusters** ``R(t)``: the clusters of at least two neurons among them.
    * **redundant pairs**: the MST edges with death ``≤ pair_threshold`` (default
      ``max(thresholds)``), the ``top_k`` smallest, with their signed ``ρ``.

    Constant (dead) neurons follow the correlation layer's default ``"uncorrelated"`` policy:
    ``d = 1`` to every other neuron; they are listed by name in ``constant_neurons``.

    Parameters
    ----------
    model : torch.nn.Module
    data : torch.Tensor, numpy.ndarray or iterable of batches
        Inputs, first axis = examples (any number ≥ 2), or a ``DataLoader``/iterable whose
        batches are tensors, tuples/lists starting with the input tensor, or mappings of the
        model's keyword arguments (``model(**batch)``). Floating inputs are cast to the dtype
        and device of the model's parameters.
    layers : sequence of str or modules, optional
        Layers to analyse (default: every leaf module with parameters, in forward order). An
        unknown name raises ``ValueError`` listing the valid ones.
    sampling : sampling strategy, optional
        :class:`~topo_neurons.AllNeurons` (default), :class:`~topo_neurons.ImportanceSampling`,
        :class:`~topo_neurons.RandomSampling`, …
    kind : {"abs", "sqrt"}, default "abs"
        ``1 − |ρ|`` or ``sqrt(1 − ρ²)``.
    batch_size : int, default 256
        Rows per forward pass for tensor/array data (a DataLoader keeps its own batches).
    thresholds : sequence of float in [0, 1], default (0.1, 0.2, 0.5)
        Scales of ``effective_neurons`` and ``n_clusters``.
    top_k : int, default 20
        Most redundant pairs listed per entry.
    progress : bool, default False
        Show a tqdm progress bar (stderr) over the batches.
    pair_threshold : float, optional
        Largest death of a redundant pair (default ``max(thresholds)``).
    backend : {"auto", "native", "giotto", "gudhi"}
        Persistence backend.
    device : torch.device or str, optional
        Where the model runs and the correlations accumulate (``"cpu"``, ``"cuda"``,
        ``"cuda:1"``, …). The model is moved there for the analysis and moved back to where its
        parameters were afterwards. Default: where the model's parameters are.
    point : {"post", "pre"}, default "post"
        A layer's neurons after its activation (what the next layer sees) or its own output;
        see :class:`~topo_neurons.ActivationRecorder`.
    positions : {"auto", "neurons", "examples"}, default "auto"
        Whether a convolution's pixels / a sequence's tokens are examples or parts of neurons;
        see :class:`~topo_neurons.ActivationRecorder`.
    batch_dim : int or dict of str to int, optional
        Batch axis of the layers' outputs (needed inside torch transformers built with
        ``batch_first=False``: ``batch_dim=1``).
    mask : bool tensor or array of shape (n_examples, positions...), or str, optional
        Padding mask aligned with ``data`` (tensor or array data only), ``True`` = keep: padded
        tokens are not examples (the model itself is called as ``model(x)``). A string names the
        keyword argument of the model that holds the mask, e.g. ``"attention_mask"`` with
        batches that are mappings (``model(**batch)``, Hugging Face style).
    path : {"auto", "dense", "tiled"}, default "auto"
        ``"dense"``: the streaming ``n × n`` float64 accumulator (memory ``O(n²)``, any number
        of examples). ``"tiled"``: the activations of all examples are kept (float64, ``m × n``)
        and the barcodes come from the tiled engine
        (:func:`~topo_neurons.correlation_persistence`, no ``n × n`` matrix). ``"auto"``:
        tiled when the dense path's matrices (about 7 float64 ``n × n`` arrays) would exceed
        2 GiB (``n ≳ 6200``). ``report.meta["path"]`` says which ran.
    scheduler : None, "threads", "sync" or dask.distributed.Client, optional
        Where the tiled engine's tasks run (see :func:`~topo_neurons.correlation_persistence`).

    Returns
    -------
    RedundancyReport
        ``report.barcode`` (whole network), ``report.layers[name]`` per layer.

    Warns
    -----
    UserWarning
        Once, when there are no more examples than analysed neurons (``m ≤ n``): ``n`` columns
        centred over ``m`` examples span at most ``m − 1`` dimensions, so the correlations are
        degenerate and the deaths are biased towards 0 (with ``m = 2`` every ``|ρ|`` is 1).

    Raises
    ------
    ValueError
        Unknown layer or kind, fewer than 2 examples, NaN/Inf activations (naming the neuron),
        a model that fails on the data (with the batch shape), bad thresholds, an unknown or
        unavailable ``device``.
    TypeError
        ``model`` is not a module, or ``data`` is not a tensor/array/iterable of them.
    MemoryError
        Before allocating, when the ``n × n`` matrices of ``n`` neurons cannot fit in the
        available memory (the message names ``n``, the bytes and the ways out: sampling, conv
        positions as examples, the tiled :func:`~topo_neurons.correlation_persistence`).

    Examples
    --------
    >>> import torch, topo_neurons as tn
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    >>> report = tn.analyse(model, torch.randn(500, 4), batch_size=128)
    >>> report.barcode.n_points, list(report.layers)
    (9, ['0', '2'])
    >>> report.layers["0"].effective_neurons[0.5] <= 6
    True
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    check_kind(kind)
    if path not in ANALYSE_PATHS:
        raise ValueError(f"path={path!r} is not valid; valid paths are {ANALYSE_PATHS}")
    _check_options(thresholds, top_k, pair_threshold)
    sampling = AllNeurons() if sampling is None else sampling
    target = _check_device(device)
    dtype, home = _model_dtype_device(model)
    if target is not None and home is not None and target != home:
        model.to(target)
        try:
            return analyse(
                model, data, layers, sampling, kind, batch_size, thresholds, top_k, progress,
                pair_threshold=pair_threshold, backend=backend, device=None, point=point,
                positions=positions, batch_dim=batch_dim, mask=mask, path=path,
                scheduler=scheduler,
            )  # fmt: skip
        finally:
            model.to(home)
    device = target if target is not None else home
    batches = iter_batches(data, batch_size)
    masks = _mask_batches(mask, data, batch_size)
    options = {"point": point, "positions": positions, "batch_dim": batch_dim, "detach": True}
    total = None
    if isinstance(data, (np.ndarray, torch.Tensor)):
        total = -(-int(data.shape[0]) // int(batch_size))
    elif hasattr(data, "__len__"):
        try:
            total = len(data)
        except TypeError:
            total = None
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, total=total, desc="analyse", unit="batch", leave=False)

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            it = iter(batches)
            try:
                first = next(it)
            except StopIteration:
                raise ValueError("data holds no examples; at least 2 are needed") from None
            rec = ActivationRecorder(model, layers=layers, sampling=sampling, **options)
            rec._warn_few_examples = False  # analyse warns on the whole data set below
            rec.mask = next(masks)
            with rec:
                _run(model, first, dtype, device)
            index = rec.neuron_index()
            A = rec.activations()
            # Data-dependent strategies choose on the first batch only; then the columns stay.
            fixed = (
                sampling if isinstance(sampling, AllNeurons) else FixedSelection(rec.selection())
            )
            rec.clear()
            layer_names = list(index.layers)
            labels = index.labels()
            point_layers = [layer_names[i] for i in np.asarray(index.layer)]
            n_cols = A.shape[1]
            tiled = path == "tiled" or (
                path == "auto" and 8.0 * _ANALYSE_COPIES * n_cols**2 > DENSE_ANALYSE_BYTES
            )
            if tiled:  # keep the activations: m × n float64, no n × n matrix
                acc = _KeptActivations(n_cols)
            else:
                # The accumulator, then the report's correlation, dissimilarity and per-layer
                # blocks: about 7 float64 n × n arrays at the peak (measured with ru_maxrss).
                check_square_fits(n_cols, 8, _ANALYSE_COPIES, what="analyse")
                acc = StreamingCorrelation(n_cols, labels=labels, device=device)
            acc.update(A)
            rec = ActivationRecorder(model, layers=layer_names, sampling=fixed, **options)
            rec._warn_few_examples = False
            with rec:
                for x in it:
                    rec.mask = next(masks)
                    _run(model, x, dtype, device)
                    acc.update(rec.activations())
                    rec.clear()
    finally:
        model.train(was_training)
    if acc.n_examples < 2:
        raise ValueError(f"data holds {acc.n_examples} example(s); at least 2 are needed")
    if acc.n_examples <= acc.n:
        warnings.warn(
            f"analyse: m = {acc.n_examples} examples for n = {acc.n} neurons (m ≤ n): the "
            f"correlations of n neurons over m examples span at most m − 1 dimensions, so the "
            f"deaths are biased towards 0 and the report overstates redundancy; use more "
            f"examples than neurons (or fewer neurons: sampling=, layers=)",
            UserWarning,
            stacklevel=2,
        )
    if isinstance(acc, _KeptActivations):
        return build_report_tiled(
            acc.stacked(),
            labels,
            point_layers,
            layer_names,
            index.sizes,
            kind=kind,
            thresholds=thresholds,
            top_k=top_k,
            pair_threshold=pair_threshold,
            sampling=repr(sampling),
            scheduler=scheduler,
            progress=progress,
        )
    report = build_report(
        acc,
        labels,
        point_layers,
        layer_names,
        index.sizes,
        kind=kind,
        thresholds=thresholds,
        top_k=top_k,
        pair_threshold=pair_threshold,
        backend=backend,
        sampling=repr(sampling),
    )
    report.meta["path"] = "dense"
    return report


class _KeptActivations:
    """The tiled path's stand-in for :class:`StreamingCorrelation`: keeps every batch."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.n_examples = 0
        self._parts: list[torch.Tensor] = []

    def update(self, batch: torch.Tensor) -> None:
        x = batch.detach().to("cpu", torch.float64)
        if x.ndim != 2 or x.shape[1] != self.n:
            raise ValueError(f"batch of shape {tuple(x.shape)}; expected (m, {self.n})")
        self._parts.append(x)
        self.n_examples += int(x.shape[0])

    def stacked(self) -> torch.Tensor:
        A = torch.cat(self._parts) if len(self._parts) > 1 else self._parts[0]
        self._parts = [A]
        return A
