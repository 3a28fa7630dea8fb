"""A :class:`RedundancyReport` as pandas tables: layers, redundant pairs, neurons.

pandas is an optional extra (``pip install topo_neurons[pandas]``), imported when a table is
made. :meth:`RedundancyReport.to_frame <topo_neurons.RedundancyReport.to_frame>` and the
command line's ``analyse --formats csv`` use :func:`report_frame`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np

from .._options import check_choice

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["FRAME_KINDS", "report_frame", "threshold_column"]

#: Values of ``to_frame(kind=...)``.
FRAME_KINDS: tuple[str, ...] = ("layers", "pairs", "neurons")

_LABEL = re.compile(r"^(?P<layer>.*)\[(?P<index>\d+)\]$")


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError(
            f"tables of reports need pandas ({exc}); install it with: "
            "pip install topo_neurons[pandas]"
        ) from exc
    return pd


def threshold_column(name: str, t: float) -> str:
    """Column name of a per-threshold value: ``f"{name}@{t:g}"`` (e.g. ``n_clusters@0.05``)."""
    return f"{name}@{float(t):g}"


def _layer_rows(report: Any) -> list[dict[str, Any]]:
    rows = []
    for entry in [*report.layers.values(), report.network]:
        row: dict[str, Any] = {
            "layer": entry.name,
            "n_neurons": entry.n_neurons,
            "total_neurons": entry.total_neurons,
        }
        row.update(entry.summary)  # the death statistics and dead_neurons
        row["redundant_pairs"] = len(entry.redundant_pairs)
        row["cross_layer_edges"] = entry.cross_layer_edges
        for t in report.thresholds:
            row[threshold_column("n_clusters", t)] = entry.n_clusters[t]
        for t in report.thresholds:
            row[threshold_column("effective_neurons", t)] = entry.effective_neurons[t]
        rows.append(row)
    return rows


def _split_label(label: str) -> tuple[str, int | None]:
    m = _LABEL.match(label)
    return (m["layer"], int(m["index"])) if m else (label, None)


def _pair_rows(report: Any) -> list[dict[str, Any]]:
    rows = []
    for entry in [*report.layers.values(), report.network]:
        for p in entry.redundant_pairs:
            rows.append(
                {
                    "entry": entry.name,
                    "a": p.a,
                    "b": p.b,
                    "layer_a": _split_label(p.a)[0],
                    "layer_b": _split_label(p.b)[0],
                    "rho": p.rho,
                    "death": p.death,
                }
            )
    return rows


def _smallest_deaths(bc: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per point: the smallest death of its tree edges (NaN for one point) and its degree."""
    n = bc.n_points
    smallest = np.full(n, np.inf)
    ends = np.asarray(bc.edges).reshape(-1)
    np.minimum.at(smallest, ends, np.repeat(np.asarray(bc.deaths, np.float64), 2))
    smallest[np.isinf(smallest)] = np.nan
    return smallest, np.bincount(ends, minlength=n)


def _neuron_rows(report: Any) -> dict[str, Any]:
    net = report.network
    smallest, degree = _smallest_deaths(net.barcode)
    dead = set(net.constant_neurons)
    index = [_split_label(lab)[1] for lab in net.labels]
    layer_smallest = np.full(net.n_neurons, np.nan)
    position = {lab: k for k, lab in enumerate(net.labels)}
    for entry in report.layers.values():
        own, _ = _smallest_deaths(entry.barcode)
        for lab, value in zip(entry.labels, own):
            if lab in position:
                layer_smallest[position[lab]] = value
    columns: dict[str, Any] = {
        "neuron": list(net.labels),
        "layer": list(net.point_layers),
        "index": [i if i is not None else -1 for i in index],
        "dead": [lab in dead for lab in net.labels],
        "smallest_death": smallest,
        "layer_smallest_death": layer_smallest,
        "mst_degree": degree,
    }
    for t in report.thresholds:
        columns[threshold_column("cluster", t)] = net.barcode.clusters(t)
    return columns


def report_frame(report: Any, kind: str = "layers") -> pd.DataFrame:
    """One table of a :class:`~topo_neurons.RedundancyReport`.

    Parameters
    ----------
    report : RedundancyReport
    kind : {"layers", "pairs", "neurons"}, default "layers"
        * ``"layers"``: one row per layer, in forward order, then the whole network (``layer
          == "network"``): ``n_neurons``, ``total_neurons``, every death statistic of
          ``summary`` (``min``, ``q05`` … ``q95``, ``max``, ``mean``, ``std``,
          ``total_persistence``, ``dead_neurons``), ``redundant_pairs`` (listed),
          ``cross_layer_edges``, and per threshold ``t`` of the report
          ``n_clusters@t`` and ``effective_neurons@t``;
        * ``"pairs"``: one row per listed redundant pair of each entry (``entry``: the layer,
          or ``"network"`` for the pairs of the whole network's tree): ``a``, ``b``, their
          layers ``layer_a``, ``layer_b``, the signed ``rho`` and the ``death``;
        * ``"neurons"``: one row per analysed neuron, in the order of the network barcode's
          points: ``neuron`` (``"layer[index]"``), ``layer``, ``index`` (-1 where the label has
          none), ``dead`` (constant over the data), ``smallest_death`` (the smallest death of
          its edges in the whole network's minimum spanning tree: how close its nearest
          neighbour is; NaN for a one-neuron network), ``layer_smallest_death`` (the same in
          its layer's tree), ``mst_degree`` (its degree in the network's tree) and, per
          threshold ``t``, ``cluster@t``: its single-linkage cluster label at scale ``t``
          (:meth:`Barcode.clusters <topo_neurons.Barcode.clusters>`).

    Returns
    -------
    pandas.DataFrame
        A plain ``RangeIndex``; per-threshold columns are named by
        :func:`threshold_column` (``f"{name}@{t:g}"``).
    """
    check_choice("kind", kind, FRAME_KINDS)
    pd = _pandas()
    if kind == "layers":
        return pd.DataFrame(_layer_rows(report))
    if kind == "pairs":
        cols = ["entry", "a", "b", "layer_a", "layer_b", "rho", "death"]
        return pd.DataFrame(_pair_rows(report), columns=cols)
    return pd.DataFrame(_neuron_rows(report))
