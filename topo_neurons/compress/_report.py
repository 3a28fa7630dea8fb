"""What :func:`~topo_neurons.fold_redundant` did: :class:`FoldReport`, its JSON and Markdown."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..io import atomic_write_text

__all__ = ["ClusterFold", "FoldReport", "LayerFold", "NeuronFold"]


@dataclass(frozen=True)
class NeuronFold:
    """One neuron of a cluster other than its representative: folded, or refused.

    Attributes
    ----------
    neuron : int
        Its index in the layer (of the input model).
    sources : tuple of int
        The kept neurons of its cluster its map reads (the representative first).
    coef : tuple of float
        ``a`` of the least-squares map ``h_neuron ≈ Σ a_k · h_sources[k] + intercept``.
    intercept : float
        ``c`` of the map.
    rel_error : float
        Relative RMS residual of the map over the calibration examples,
        ``‖h − ĥ‖ / ‖h − mean(h)‖`` (``= sqrt(1 − R²)``; 0 for an exact affine copy).
    max_abs_error : float
        Largest absolute residual ``max |h − ĥ|`` over the calibration examples.
    refused : bool
        ``True`` when ``rel_error`` of the map from the representative alone exceeded
        ``max_error``: the neuron is kept (and becomes a source of the others' maps).
    """

    neuron: int
    sources: tuple[int, ...]
    coef: tuple[float, ...]
    intercept: float
    rel_error: float
    max_abs_error: float
    refused: bool = False


@dataclass(frozen=True)
class ClusterFold:
    """One single-linkage cluster (of at least two neurons) at the threshold.

    Attributes
    ----------
    members : tuple of int
        Its neurons, ascending.
    representative : int
        The neuron kept for the cluster: the member of largest activation variance over the
        calibration examples (ties: the smallest index).
    folds : tuple of NeuronFold
        One per other member, ascending.
    """

    members: tuple[int, ...]
    representative: int
    folds: tuple[NeuronFold, ...]

    @property
    def removed(self) -> tuple[int, ...]:
        """The members folded away."""
        return tuple(f.neuron for f in self.folds if not f.refused)


@dataclass(frozen=True)
class LayerFold:
    """What was folded in one layer.

    Attributes
    ----------
    layer, consumer : str
        The producing module and the module that absorbed the folds.
    n_neurons : int
        Neurons of the layer before folding.
    n_examples : int
        Calibration examples (for a convolution: images × positions).
    clusters : tuple of ClusterFold
        The clusters of at least two neurons at the threshold, in order of their smallest member.
    constant : tuple of NeuronFold
        With ``fold_constant=True``: the neurons constant over the calibration examples (dead
        ReLUs), folded into the consumer's bias (``sources`` empty, ``intercept`` = the value).
    """

    layer: str
    consumer: str
    n_neurons: int
    n_examples: int
    clusters: tuple[ClusterFold, ...]
    constant: tuple[NeuronFold, ...] = ()

    @property
    def removed(self) -> tuple[int, ...]:
        """The neurons removed from this layer, ascending."""
        folded = [j for c in self.clusters for j in c.removed]
        return tuple(sorted(folded + [f.neuron for f in self.constant]))

    @property
    def n_removed(self) -> int:
        return len(self.removed)

    @property
    def n_refused(self) -> int:
        return sum(f.refused for c in self.clusters for f in c.folds)

    @property
    def n_kept(self) -> int:
        """Neurons of the folded layer."""
        return self.n_neurons - self.n_removed


@dataclass(frozen=True)
class FoldReport:
    """Everything :func:`~topo_neurons.fold_redundant` did (or, with ``dry_run``, would do).

    Attributes
    ----------
    threshold : float
        Clusters are single-linkage clusters of the dissimilarity ``1 − |ρ|`` at this scale.
    max_error : float or None
        Folds whose ``rel_error`` exceeded it were refused.
    dry_run : bool
        ``True``: no weight was changed.
    layers : tuple of LayerFold
        One per folded layer, in forward order.
    skipped : dict of str to str
        With ``layers=None``: Linear/Conv layers that cannot be folded, and why.
    """

    threshold: float
    max_error: float | None
    dry_run: bool
    layers: tuple[LayerFold, ...]
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def n_neurons(self) -> int:
        """Neurons of the folded layers before folding."""
        return sum(lf.n_neurons for lf in self.layers)

    @property
    def n_removed(self) -> int:
        return sum(lf.n_removed for lf in self.layers)

    @property
    def n_refused(self) -> int:
        return sum(lf.n_refused for lf in self.layers)

    @property
    def fraction_removed(self) -> float:
        """``n_removed / n_neurons`` (0 when no layer was folded)."""
        return self.n_removed / self.n_neurons if self.n_neurons else 0.0

    def layer_sizes(self) -> dict[str, int]:
        """Neurons of each folded layer after folding: ``{layer: n_kept}``."""
        return {lf.layer: lf.n_kept for lf in self.layers}

    def __getitem__(self, layer: str) -> LayerFold:
        for lf in self.layers:
            if lf.layer == layer:
                return lf
        raise KeyError(
            f"no layer {layer!r} in the report; layers: {[x.layer for x in self.layers]}"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (floats as ``repr``-exact numbers; counts included for readers)."""
        d = asdict(self)
        for lf, ld in zip(self.layers, d["layers"], strict=True):
            ld["n_removed"], ld["n_refused"] = lf.n_removed, lf.n_refused
        d["n_neurons"], d["n_removed"] = self.n_neurons, self.n_removed
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FoldReport:
        """The report of :meth:`to_dict`; the stored counts are checked against the clusters."""
        try:
            layers = []
            for ld in d["layers"]:
                clusters = tuple(
                    ClusterFold(
                        members=tuple(int(i) for i in c["members"]),
                        representative=int(c["representative"]),
                        folds=tuple(_neuron_fold(f) for f in c["folds"]),
                    )
                    for c in ld["clusters"]
                )
                lf = LayerFold(
                    str(ld["layer"]),
                    str(ld["consumer"]),
                    int(ld["n_neurons"]),
                    int(ld["n_examples"]),
                    clusters,
                    tuple(_neuron_fold(f) for f in ld.get("constant", [])),
                )
                if "n_removed" in ld and int(ld["n_removed"]) != lf.n_removed:
                    raise ValueError(
                        f"layer {lf.layer!r}: n_removed {ld['n_removed']} disagrees with its "
                        f"clusters ({lf.n_removed})"
                    )
                layers.append(lf)
            mx = d["max_error"]
            return cls(
                threshold=float(d["threshold"]),
                max_error=None if mx is None else float(mx),
                dry_run=bool(d["dry_run"]),
                layers=tuple(layers),
                skipped={str(k): str(v) for k, v in d.get("skipped", {}).items()},
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a fold report: missing or malformed field {exc}") from None

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the report as JSON, atomically (:func:`topo_neurons.io.atomic_write_text`)."""
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False)
        return atomic_write_text(path, text + "\n")

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> FoldReport:
        """Read a report written by :meth:`to_json`; a bad file is a ``ValueError`` naming it."""
        target = Path(path)
        if not target.is_file():
            raise FileNotFoundError(f"no fold report at {str(target)!r}")
        try:
            return cls.from_dict(json.loads(target.read_text(encoding="utf-8")))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"{str(target)!r} is not a valid fold report: {exc}") from None

    def to_markdown(self) -> str:
        """A readable summary: one row per layer, then each cluster's representative and folds."""
        head = "dry run: nothing changed" if self.dry_run else "folded"
        mx = "none" if self.max_error is None else f"{self.max_error:g}"
        lines = [
            "# Fold report",
            "",
            f"Threshold t = {self.threshold:g} (single-linkage clusters of 1 − |ρ|), max_error "
            f"{mx}; {head}. {self.n_removed} of {self.n_neurons} neurons removed "
            f"({100 * self.fraction_removed:.1f} %), {self.n_refused} fold(s) refused.",
            "",
            "| layer | consumer | neurons | clusters | removed | refused | kept | "
            "worst rel. error | examples |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for lf in self.layers:
            errs = [f.rel_error for c in lf.clusters for f in c.folds if not f.refused]
            worst = f"{max(errs):.3g}" if errs else "–"
            lines.append(
                f"| {lf.layer} | {lf.consumer} | {lf.n_neurons} | {len(lf.clusters)} | "
                f"{lf.n_removed} | {lf.n_refused} | {lf.n_kept} | {worst} | {lf.n_examples} |"
            )
        for lf in self.layers:
            if lf.constant:
                values = ", ".join(f"{f.neuron} (= {f.intercept:.3g})" for f in lf.constant)
                lines += ["", f"`{lf.layer}`: constant neurons folded into the bias: {values}"]
        for lf in self.layers:
            if not lf.clusters:
                continue
            lines += ["", f"## {lf.layer}", "", "| kept | folded (rel. error, max abs) | refused |"]
            lines.append("|---|---|---|")
            for c in lf.clusters:
                done = ", ".join(
                    f"{f.neuron} ({_fmt(f.rel_error)}, {_fmt(f.max_abs_error)})"
                    for f in c.folds
                    if not f.refused
                )
                refused = ", ".join(str(f.neuron) for f in c.folds if f.refused) or "–"
                lines.append(f"| {c.representative} | {done or '–'} | {refused} |")
        if self.skipped:
            lines += ["", "Not foldable:", ""]
            lines += [f"- `{k}`: {v}" for k, v in self.skipped.items()]
        return "\n".join(lines) + "\n"


def _neuron_fold(f: Mapping[str, Any]) -> NeuronFold:
    return NeuronFold(
        neuron=int(f["neuron"]),
        sources=tuple(int(i) for i in f["sources"]),
        coef=tuple(float(a) for a in f["coef"]),
        intercept=float(f["intercept"]),
        rel_error=float(f["rel_error"]),
        max_abs_error=float(f["max_abs_error"]),
        refused=bool(f["refused"]),
    )


def _fmt(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.2g}"
