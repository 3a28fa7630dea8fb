"""Reports from correlations or activations: death summaries, entries, pairs, effective neurons."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..correlation import check_kind, dissimilarity_from_correlation
from ..persistence import Barcode, resolve_backend, zero_persistence
from ._report import (
    NETWORK,
    LayerRedundancy,
    RedundancyReport,
    RedundantPair,
    death_summary,
)
from ._streaming import StreamingCorrelation

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client

__all__ = [
    "DEFAULT_TILE_BLOCK",
    "NeuronLayout",
    "ReportOptions",
    "build_report",
    "build_report_tiled",
    "death_summary",
]


#: Block size of the tiled engine in :func:`analyse`.
DEFAULT_TILE_BLOCK = 1024


@dataclass(frozen=True)
class _Neurons:
    """The ``n`` analysed neurons: name and layer of each, which are constant, and ``ρ(i, j)``."""

    labels: np.ndarray  # object, shape (n,)
    layers: np.ndarray  # object, shape (n,)
    constant: np.ndarray  # bool, shape (n,)
    rho: Callable[[int, int], float]


@dataclass(frozen=True)
class ReportOptions:
    """The options of a report, validated (see :func:`analyse` for each).

    Build it with :meth:`checked`, which raises on a bad option.
    """

    kind: str
    thresholds: tuple[float, ...]
    pair_threshold: float
    top_k: int
    sampling: str = "AllNeurons()"

    @classmethod
    def checked(
        cls,
        *,
        kind: str = "abs",
        thresholds: Sequence[float] = (0.1, 0.2, 0.5),
        top_k: int = 20,
        pair_threshold: float | None = None,
        sampling: str = "AllNeurons()",
    ) -> ReportOptions:
        """Validate the options; ``pair_threshold=None`` becomes ``max(thresholds)``.

        Raises
        ------
        TypeError, ValueError
            A bad option, named in the message.
        """
        check_kind(kind)
        try:
            ts = tuple(float(t) for t in thresholds)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"thresholds must be a sequence of numbers; got {thresholds!r}"
            ) from exc
        if not ts or any(not (0.0 <= t <= 1.0) for t in ts):
            raise ValueError(
                f"thresholds must be a non-empty sequence in [0, 1]; got {thresholds!r}"
            )
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 0:
            raise ValueError(f"top_k must be a non-negative int; got {top_k!r}")
        pt = max(ts) if pair_threshold is None else float(pair_threshold)
        if not 0.0 <= pt <= 1.0:
            raise ValueError(f"pair_threshold must lie in [0, 1]; got {pair_threshold!r}")
        return cls(kind, ts, pt, int(top_k), sampling)


@dataclass(frozen=True)
class NeuronLayout:
    """Which layer each analysed neuron (column) belongs to, and its name.

    Attributes
    ----------
    labels, point_layers : sequence of str, length n
        Name (``"layer[index]"``) and layer of each neuron.
    layer_names : sequence of str
        Layers in order; each must own at least one column.
    layer_sizes : mapping of str to int, optional
        Neurons of each layer before sampling (default: the analysed count).
    """

    labels: Sequence[str]
    point_layers: Sequence[str]
    layer_names: Sequence[str]
    layer_sizes: Mapping[str, int] | None = None

    def arrays(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``labels`` and ``point_layers`` as object arrays, checked to have ``n`` entries."""
        labels_arr = np.asarray(list(self.labels), dtype=object)
        layers_arr = np.asarray(list(self.point_layers), dtype=object)
        if labels_arr.shape != (n,) or layers_arr.shape != (n,):
            raise ValueError(
                f"labels and point_layers must have {n} entries; got {labels_arr.shape[0]} "
                f"and {layers_arr.shape[0]}"
            )
        return labels_arr, layers_arr


def _entry(
    name: str,
    cols: np.ndarray,
    bc: Barcode,
    neurons: _Neurons,
    options: ReportOptions,
    *,
    total_neurons: int,
) -> LayerRedundancy:
    """The report entry of the neurons ``cols`` (indices into ``neurons``) and their barcode."""
    lab = neurons.labels[cols]
    lay = neurons.layers[cols]
    sel = np.flatnonzero(bc.deaths <= options.pair_threshold)[: options.top_k]
    pairs = tuple(
        RedundantPair(
            a=str(lab[bc.edges[k, 0]]),
            b=str(lab[bc.edges[k, 1]]),
            rho=float(neurons.rho(cols[bc.edges[k, 0]], cols[bc.edges[k, 1]])),
            death=float(bc.deaths[k]),
        )
        for k in sel
    )
    n_clusters: dict[float, int] = {}
    effective: dict[float, int] = {}
    for t in options.thresholds:
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
        constant_neurons=tuple(str(x) for x in lab[neurons.constant[cols]]),
        barcode=bc,
        summary=death_summary(bc.deaths, int(np.count_nonzero(neurons.constant[cols]))),
        redundant_pairs=pairs,
        n_clusters=n_clusters,
        effective_neurons=effective,
        cross_layer_edges=cross,
    )


def _assemble(
    neurons: _Neurons,
    layout: NeuronLayout,
    options: ReportOptions,
    *,
    layer_barcode: Callable[[np.ndarray], Barcode],
    network_barcode: Callable[[], Barcode],
    n_examples: int,
) -> RedundancyReport:
    """One entry per layer (its barcode from ``layer_barcode(columns)``), then the network's."""
    sizes = dict(layout.layer_sizes) if layout.layer_sizes is not None else {}
    entries: dict[str, LayerRedundancy] = {}
    for name in layout.layer_names:
        cols = np.flatnonzero(neurons.layers == name)
        if cols.size == 0:
            raise ValueError(f"layer {name!r} has no analysed neurons")
        entries[name] = _entry(
            name,
            cols,
            layer_barcode(cols),
            neurons,
            options,
            total_neurons=sizes.get(name, cols.size),
        )
    network = _entry(
        NETWORK,
        np.arange(neurons.labels.shape[0]),
        network_barcode(),
        neurons,
        options,
        total_neurons=sum(sizes.get(name, entries[name].n_neurons) for name in layout.layer_names),
    )
    return RedundancyReport(
        network=network,
        layers=entries,
        kind=options.kind,
        n_examples=n_examples,
        thresholds=options.thresholds,
        pair_threshold=options.pair_threshold,
        top_k=options.top_k,
        sampling=options.sampling,
    )


def build_report(
    acc: StreamingCorrelation,
    layout: NeuronLayout,
    options: ReportOptions,
    *,
    backend: str = "auto",
) -> RedundancyReport:
    """Turn accumulated correlations into a :class:`RedundancyReport`.

    Parameters
    ----------
    acc : StreamingCorrelation
        Correlations of the ``n`` analysed neurons.
    layout : NeuronLayout
        Name and layer of each of the ``n`` neurons (columns of ``acc``), the layers in order.
    options : ReportOptions
        Dissimilarity, thresholds, pairs, sampling description.
    backend : {"auto", "native", "giotto", "gudhi", "torch"}
        Persistence backend. ``"torch"`` (what ``"auto"`` picks when ``acc``'s sums are on a
        device): the correlation, the dissimilarity and every tree computed where the sums
        live; only the barcodes and the correlation (for the ``ρ`` of the listed pairs) come
        back to the host.
    """
    labels, layers = layout.arrays(acc.n)
    if resolve_backend(backend, acc._s1) == "torch":
        Cd = _correlation_on_device(acc)
        Dd = dissimilarity_from_correlation(Cd, options.kind)
        Dd.fill_diagonal_(0.0)
        C = Cd.cpu().numpy()

        def layer_barcode(cols: np.ndarray) -> Barcode:
            idx = torch.as_tensor(cols, device=Dd.device)
            return zero_persistence(Dd[idx][:, idx], backend="torch")

        def network_barcode() -> Barcode:
            return zero_persistence(Dd, backend="torch")
    else:
        C = acc.correlation()
        D = dissimilarity_from_correlation(torch.from_numpy(C), options.kind).numpy()
        np.fill_diagonal(D, 0.0)

        def layer_barcode(cols: np.ndarray) -> Barcode:
            return zero_persistence(D[np.ix_(cols, cols)], backend)

        def network_barcode() -> Barcode:
            return zero_persistence(D, backend=backend)

    return _assemble(
        _Neurons(labels, layers, acc.constant(), rho=lambda i, j: float(C[i, j])),
        layout,
        options,
        layer_barcode=layer_barcode,
        network_barcode=network_barcode,
        n_examples=acc.n_examples,
    )


def _correlation_on_device(acc: StreamingCorrelation) -> torch.Tensor:
    """``acc.correlation()`` computed where its sums live: the same operations in the same
    order (elementwise, correctly rounded), so the same values as the host's."""
    acc._check_ready()
    m = float(acc.n_examples)
    cov = (acc._s2 - torch.outer(acc._s1, acc._s1) / m) / m
    cov = 0.5 * (cov + cov.T)
    const = acc._max == acc._min
    var = torch.where(const, torch.ones_like(cov.diagonal()), cov.diagonal())
    var = torch.clamp_min(var, torch.finfo(torch.float64).tiny)
    scale = 1.0 / torch.sqrt(var)
    C = cov * scale[:, None] * scale[None, :]
    C.clamp_(-1.0, 1.0)
    C.masked_fill_(const[:, None] | const[None, :], 0.0)
    return C.fill_diagonal_(1.0)


def build_report_tiled(
    A: torch.Tensor,
    layout: NeuronLayout,
    options: ReportOptions,
    *,
    scheduler: str | Client | None = None,
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
    layout, options
        See :func:`build_report`.
    scheduler, progress
        See :func:`~topo_neurons.correlation_persistence`.
    """
    from ..correlation import constant_neurons, normalized_activations
    from ..persistence import correlation_persistence

    n = A.shape[1]
    labels, layers = layout.arrays(n)
    const = np.zeros(n, dtype=bool)
    const[constant_neurons(A)] = True
    Z = normalized_activations(A)[0].cpu().numpy()  # m × n: the pairs' ρ on the host

    def rho(i: int, j: int) -> float:
        return 0.0 if const[i] or const[j] else float(np.clip(Z[:, i] @ Z[:, j], -1.0, 1.0))

    kind = options.kind
    report = _assemble(
        _Neurons(labels, layers, const, rho),
        layout,
        options,
        layer_barcode=lambda cols: correlation_persistence(A[:, cols], kind, scheduler=scheduler),
        network_barcode=lambda: correlation_persistence(
            A, kind, block_size=DEFAULT_TILE_BLOCK, scheduler=scheduler, progress=progress
        ),
        n_examples=int(A.shape[0]),
    )
    report.meta["path"] = "tiled"
    return report
