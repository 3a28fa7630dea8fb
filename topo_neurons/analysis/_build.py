"""Reports from correlations or activations: death summaries, entries, pairs, effective neurons."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..correlation import check_kind, dissimilarity_from_correlation
from ..persistence import Barcode, zero_persistence
from ._report import (
    _QUANTILES,
    NETWORK,
    SUMMARY_KEYS,
    LayerRedundancy,
    RedundancyReport,
    RedundantPair,
)
from ._streaming import StreamingCorrelation

__all__ = [
    "DEFAULT_TILE_BLOCK",
    "build_report",
    "build_report_tiled",
    "check_options",
    "death_summary",
]


#: Block size of the tiled engine in :func:`analyse`.
DEFAULT_TILE_BLOCK = 1024


def check_options(
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
    ts, pair_t, top_k = check_options(thresholds, top_k, pair_threshold)
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
    from ..correlation import constant_neurons, normalized_activations
    from ..persistence import correlation_persistence

    check_kind(kind)
    ts, pair_t, top_k = check_options(thresholds, top_k, pair_threshold)
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
        NETWORK,
        np.arange(n),
        None,
        rho,
        *common,
        total,
        ts,
        pair_t,
        top_k,
        "auto",
        barcode=bc,
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
