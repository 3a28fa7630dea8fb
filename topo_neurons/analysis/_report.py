"""The report types and their JSON / Markdown: :class:`RedundancyReport` and its parts."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_write_text
from ..persistence import Barcode
from ._summary import SUMMARY_KEYS, death_summary, entry_fields, need

__all__ = [
    "NETWORK",
    "SUMMARY_KEYS",
    "LayerRedundancy",
    "RedundancyReport",
    "RedundantPair",
    "death_summary",
]

#: Name of the whole-network entry.
NETWORK = "network"


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


class _EqualByDict:
    """Equality of what :meth:`to_dict` writes (the JSON file's content); unhashable."""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, type(self)):
            return NotImplemented
        return json.dumps(self.to_dict(), sort_keys=True) == json.dumps(
            other.to_dict(), sort_keys=True
        )

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class LayerRedundancy(_EqualByDict):
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
        The *dead* neurons: constant over the whole data set (e.g. dead ReLUs; the test of
        :func:`~topo_neurons.constant_neurons`, maximum equal to minimum). They count as
        uncorrelated with every other neuron (``d = 1``, the largest death); their number is
        ``summary["dead_neurons"]``.
    barcode : Barcode
        0-dimensional barcode of the correlation dissimilarity of these neurons.
    summary : dict of str to float
        Death statistics, keys :data:`SUMMARY_KEYS`: ``min``, quantiles ``q05`` … ``q95``,
        ``max``, ``mean``, ``std`` (population, ddof 0), ``total_persistence`` (sum of deaths),
        NaN only when there are no finite bars (one neuron); and beside them ``dead_neurons``,
        the number of dead (constant) neurons (an int; each adds a death of 1 with
        ``d = 1 − |ρ|``). Always derived from ``barcode`` and ``constant_neurons``.
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
            "barcode": self.barcode.to_dict(),
            "summary": {k: _json_float(v) for k, v in self.summary.items()},
            "redundant_pairs": [
                {"a": p.a, "b": p.b, "rho": p.rho, "death": p.death} for p in self.redundant_pairs
            ],
            "n_clusters": {repr(float(t)): c for t, c in self.n_clusters.items()},
            "effective_neurons": {repr(float(t)): c for t, c in self.effective_neurons.items()},
            "cross_layer_edges": self.cross_layer_edges,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "entry") -> LayerRedundancy:
        """Inverse of :meth:`to_dict` (a barcode without ``backend`` reads as ``"native"``).

        Everything the barcode determines is derived from it and checked against what ``d``
        stores: the summary (a missing key, e.g. ``dead_neurons`` of an older file, is derived),
        ``n_neurons``, effective neurons, clusters and cross-layer edges.

        Raises
        ------
        ValueError
            A missing key or a value of the wrong type (named, with ``where``); a stored value
            that contradicts the barcode (the field, the stored and the derived value).
        """
        fields = entry_fields(d, where)
        pairs = tuple(RedundantPair(*p) for p in fields.pop("redundant_pairs"))
        return cls(**fields, redundant_pairs=pairs)


@dataclass(frozen=True, eq=False)
class RedundancyReport(_EqualByDict):
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
        """Rebuild a report from :meth:`to_dict`'s output.

        The summaries (and everything else the barcodes determine) are derived from the
        barcodes; a stored value that contradicts its barcode is refused.

        Raises
        ------
        ValueError
            Not a report dictionary; a missing key (named); a stored value that contradicts
            its barcode (the entry, the field, the stored and the derived value).
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"not a RedundancyReport dictionary: got {type(d).__name__}")
        if d.get("format") != "topo_neurons.RedundancyReport":
            raise ValueError(
                "not a RedundancyReport dictionary: its 'format' is "
                f"{d.get('format')!r}, expected 'topo_neurons.RedundancyReport'"
            )
        layers_data = need(d, "layers", "the report")
        if not isinstance(layers_data, list):
            kind = type(layers_data).__name__
            raise ValueError(f"the report's 'layers' must be a list; got {kind}")
        layers = [
            LayerRedundancy.from_dict(x, f"layer entry {i}") for i, x in enumerate(layers_data)
        ]
        network = LayerRedundancy.from_dict(need(d, "network", "the report"), "network entry")
        try:
            return cls(
                network=network,
                layers={entry.name: entry for entry in layers},
                kind=str(need(d, "kind", "the report")),
                n_examples=int(need(d, "n_examples", "the report")),
                thresholds=tuple(float(t) for t in need(d, "thresholds", "the report")),
                pair_threshold=float(need(d, "pair_threshold", "the report")),
                top_k=int(need(d, "top_k", "the report")),
                sampling=str(d.get("sampling", "")),
                meta=dict(d.get("meta", {})),
            )
        except (TypeError, ValueError) as exc:
            if "key (missing" in str(exc):
                raise
            raise ValueError(f"the report: invalid value ({type(exc).__name__}: {exc})") from None

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the report as JSON, atomically; returns the path.

        Floats are written with ``repr`` precision, so :meth:`from_json` returns an equal report.
        """
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False)
        return atomic_write_text(path, text + "\n")

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> RedundancyReport:
        """Read a report written by :meth:`to_json` (checked as :meth:`from_dict` does).

        Raises
        ------
        FileNotFoundError
            No file at ``path``.
        ValueError
            Not JSON, or not a consistent report (see :meth:`from_dict`); the message names
            the file.
        """
        target = Path(path)
        if not target.is_file():
            raise FileNotFoundError(f"no report file at {str(target)!r}")
        try:
            data = json.loads(target.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{str(target)!r} is not valid JSON: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise ValueError(f"{str(target)!r} is not a UTF-8 text file: {exc}") from None
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise ValueError(f"{str(target)!r} is not a valid report file: {exc}") from None

    def to_frame(self, kind: str = "layers") -> Any:
        """A pandas table: ``"layers"``, ``"pairs"`` or ``"neurons"`` (see ``_frames``)."""
        from ._frames import report_frame

        return report_frame(self, kind)

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
            "| layer | neurons | dead | min death | median | mean | std | total persistence"
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
                f"| {name} | {sizes} | {s['dead_neurons']} | {_fmt(s['min'])} | "
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
            "least two neurons. *Dead*: constant neurons (e.g. dead ReLUs), each a bar of death "
            "1, the largest.",
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
