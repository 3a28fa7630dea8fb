"""The figures of the experiments: the critical-difference diagram and the barcode comparison.

Each function draws what it is given (average ranks; trained networks and their data) and
trains nothing; :func:`~topo_neurons.experiments.reproduction.train_barcode_networks` trains the
networks of the barcode comparison.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from torch import nn

from ..io import atomic_path
from ._demsar import nemenyi_groups
from .data import Dataset
from .protocol import REGULARIZER_LABELS, _weight_label

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "layer_display_names",
    "plot_barcode_networks",
    "plot_barcode_profiles",
    "plot_cd_diagram",
    "save_figure",
]


def plot_cd_diagram(
    avg_ranks: np.ndarray | Sequence[float],
    names: Sequence[str],
    cd: float,
    *,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Critical-difference diagram (Demšar 2006, Fig. 1) of average ranks.

    An axis of ranks ``1 … k`` (best on the left); each method hangs from its average rank,
    labelled with its name and rank (the better half on the left, the rest on the right); a
    bar above the axis shows the length of the critical difference (within the axis: a CD
    longer than ``k − 1`` ends in an arrow at rank ``k`` and is said to be); thick bars under
    the axis join groups of methods not significantly different
    (:func:`~topo_neurons.experiments.stats.nemenyi_groups`).

    Parameters
    ----------
    avg_ranks : array-like, shape (k,)
        Average ranks (1 = best).
    names : sequence of str, length k
        Method names.
    cd : float
        Critical difference (e.g. from :func:`~topo_neurons.experiments.stats.critical_difference`).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is made when ``None``.
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    R = np.asarray(avg_ranks, dtype=np.float64)
    if R.ndim != 1 or len(R) < 2:
        raise ValueError(f"avg_ranks must be a vector of k ≥ 2 ranks; got shape {R.shape}")
    if len(names) != len(R):
        raise ValueError(f"names has {len(names)} entries but avg_ranks has {len(R)}")
    if not np.all(np.isfinite(R)):
        raise ValueError(f"avg_ranks must be finite; got {R.tolist()}")
    if not (np.isfinite(cd) and cd > 0):
        raise ValueError(f"cd must be a positive finite number; got {cd!r}")
    if ax is None:
        import matplotlib.pyplot as plt

        k = len(R)
        _, ax = plt.subplots(figsize=(7.0, 1.6 + 0.3 * ((k + 1) // 2)))
    k = len(R)
    lo, hi = 1.0, float(max(k, np.ceil(R.max())))
    order = np.argsort(R, kind="stable")
    n_left = (k + 1) // 2
    step = 0.45
    groups = nemenyi_groups(R, cd)
    group_depth = 0.25 + 0.2 * len(groups)

    ax.plot([lo, hi], [0, 0], color="black", lw=1.2)
    for t in range(int(lo), int(hi) + 1):
        ax.plot([t, t], [0, 0.12], color="black", lw=1.0)
        ax.text(t, 0.2, str(t), ha="center", va="bottom", fontsize=9)
    # critical difference bar, above the axis from rank 1; never past the rank axis: a CD
    # longer than the axis ends in an arrow at rank k and says so (no difference is significant)
    y_cd = 0.75
    end = min(lo + cd, hi)
    ax.plot([lo, end], [y_cd, y_cd], color="black", lw=1.5, gid="cd-bar")
    ax.plot([lo, lo], [y_cd - 0.07, y_cd + 0.07], color="black", lw=1.0)
    if lo + cd <= hi:
        ax.plot([end, end], [y_cd - 0.07, y_cd + 0.07], color="black", lw=1.0)
        label = f"CD = {cd:.2f}"
    else:
        ax.plot([end], [y_cd], marker=">", color="black", ms=5)
        label = f"CD = {cd:.2f}, longer than the rank axis: no difference can be significant"
    ax.text((lo + end) / 2, y_cd + 0.1, label, ha="center", va="bottom", fontsize=9)

    pad = 0.1 * (hi - lo) + 0.2
    for pos, idx in enumerate(order):
        r = R[idx]
        if pos < n_left:
            y = -(group_depth + step * (pos + 1))
            x_end, ha = lo - pad, "right"
        else:
            y = -(group_depth + step * (k - pos))
            x_end, ha = hi + pad, "left"
        ax.plot([r, r, x_end], [0, y, y], color="0.25", lw=0.9)
        gap = -0.05 if ha == "right" else 0.05
        ax.text(x_end + gap, y, f"{names[idx]} ({r:.2f})", ha=ha, va="center", fontsize=9)
    for g, members in enumerate(groups):
        y = -(0.15 + 0.2 * g)
        rs = R[list(members)]
        ax.plot(
            [rs.min() - 0.03, rs.max() + 0.03],
            [y, y],
            color="black",
            lw=3.0,
            solid_capstyle="round",
            gid="nemenyi-group",
        )
    ax.set_xlim(lo - pad - 0.15 * (hi - lo) - 1.0, hi + pad + 0.15 * (hi - lo) + 1.0)
    ax.set_ylim(-(group_depth + step * (n_left + 0.6)), 1.25)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def layer_display_names(model) -> dict[str, str]:
    """Names a reader knows for the recorded layers: ``hidden 1 (450)`` …, ``logits (10)``.

    Parameters
    ----------
    model : torch.nn.Module
        A model of :func:`~topo_neurons.experiments.models.make_model`.

    Returns
    -------
    dict
        ``{module name: display name}`` for :func:`~topo_neurons.experiments.models.neuron_layers`.
    """
    from .models import neuron_layers

    names = neuron_layers(model)
    modules = dict(model.named_modules())
    out = {}
    hidden = 0
    for i, name in enumerate(names):
        if i == len(names) - 1:
            out[name] = f"logits ({modules[name].out_features})"
        else:
            hidden += 1
            prev = [m for n, m in modules.items() if hasattr(m, "weight") and n < name]
            width = ""
            lin = [m for n, m in model.named_modules() if n == name.replace("relu", "fc")]
            if lin and hasattr(lin[0], "out_features"):
                width = f" ({lin[0].out_features})"
            elif prev and hasattr(prev[-1], "out_channels"):
                width = f" ({prev[-1].out_channels} ch)"
            out[name] = f"hidden {hidden}{width}"
    return out


def plot_barcode_profiles(
    barcodes: dict[str, tuple],
    *,
    axes=None,
    titles: dict[str, str] | None = None,
):
    """Barcodes of ~1000 bars drawn readably, one panel each, then their death distributions.

    Each panel is :func:`~topo_neurons.plot_barcode` on one barcode, on a death axis shared by
    all panels: above ``PROFILE_THRESHOLD`` (300) bars, the
    sorted-death profile (a filled curve) with a strip giving, in bins of ranks, the share of
    bars whose MST edge lies within each layer or between layers; below it, the bars. The
    infinite bar is drawn; bars at ``d = 1`` exactly (constant, dead neurons) and zero-length
    bars are marked. The last panel overlays the death distributions (ECDF), ``d = 1`` marked
    by a dotted line. One legend below the panels names the colours and marks (the
    Okabe–Ito palette); the y label is on the first panel only.

    Parameters
    ----------
    barcodes : dict
        ``{label: (Barcode, layer name of each point)}`` in panel order.
    axes : sequence of matplotlib Axes, optional
        ``len(barcodes) + 1`` axes; a new figure when ``None``.
    titles : dict, optional
        ``{label: panel title}``.

    Returns
    -------
    list of matplotlib Axes
    """
    import matplotlib.pyplot as plt

    from .. import plot_barcode, plot_death_distribution

    if axes is None:
        n = len(barcodes) + 1
        _, axes = plt.subplots(1, n, figsize=(2.7 * n, 3.1), layout="constrained")
    axes = list(axes)
    if len(axes) != len(barcodes) + 1:
        raise ValueError(
            f"need {len(barcodes) + 1} axes for {len(barcodes)} barcodes; got {len(axes)}"
        )
    xlabel = "death (1 − |ρ|)"
    x_max = max(float(np.max(bc.deaths)) if len(bc.deaths) else 0.0 for bc, _ in barcodes.values())
    handles: dict[str, object] = {}
    for i, (ax, (label, (bc, layers))) in enumerate(zip(axes, barcodes.items())):
        plot_barcode(bc, layers=layers, ax=ax, xlabel=xlabel, xmax=x_max or None)
        legend = ax.get_legend()
        if legend is not None:
            for h, t in zip(legend.legend_handles, legend.get_texts()):
                handles.setdefault(t.get_text(), h)
            legend.remove()
        n_dead = int(np.sum(np.asarray(bc.deaths) == 1.0))
        title = (titles or {}).get(label, label)
        ax.set_title(title + (f"\n{n_dead} dead neurons (d = 1)" if n_dead else ""))
        ax.set_ylabel(f"{len(bc)} finite bars, sorted by death" if i == 0 else "")
    ecdf = axes[-1]
    plot_death_distribution(
        {label: bc for label, (bc, _) in barcodes.items()}, ax=ecdf, xlabel=xlabel
    )
    curves = [ln for ln in ecdf.get_lines() if ln.get_gid() != "dead-line"]
    for line, ls in zip(curves, ("-", "--", ":", "-.")):
        line.set_linestyle(ls)
    ecdf.legend(fontsize="small", loc="upper left", frameon=False)
    ecdf.set_title("death distributions (ECDF)")
    if handles:
        # Layers in network order, then "between layers", then the marks.
        order = list(dict.fromkeys(str(x) for _, layers in barcodes.values() for x in layers))
        order.append("between layers")
        labels = sorted(handles, key=lambda t: order.index(t) if t in order else len(order))
        fig = axes[0].figure
        fig.legend(
            [handles[t] for t in labels],
            labels,
            loc="outside lower center",
            ncols=min(len(handles), 5),
            frameon=False,
            fontsize="small",
            title="finite bars: MST edge within a layer or between layers; strip: share per rank",
            title_fontsize="small",
        )
    return axes


def plot_barcode_networks(
    networks: Mapping[str, tuple[nn.Module, Mapping[str, object]]],
    dataset: Dataset,
    *,
    kind: str = "abs",
) -> Figure:
    """Barcodes of trained networks side by side (no regulariser, T1, T2), and their deaths.

    Each network's neurons (each hidden layer after its ReLU, and the logits) are recorded on
    the training set (no gradient; more examples than neurons, unlike mnist5k's 1000 test
    images), and the 0-dimensional persistence of ``1 − |ρ|`` (``kind``) is drawn by
    :func:`plot_barcode_profiles`: sorted deaths as filled profiles on a shared axis, bars
    coloured by layer (``hidden 1 (450)`` … ``logits (10)``), then the death distributions.

    Parameters
    ----------
    networks : mapping
        ``{regularizer: (model, row)}`` in panel order, e.g. from
        :func:`~topo_neurons.experiments.reproduction.train_barcode_networks`: a model of
        :func:`~topo_neurons.experiments.models.make_model` (trained; in eval mode) and its
        result row (``task``, ``model``, ``seed``, ``weight``, ``metric``, ``test_metric``;
        see :func:`~topo_neurons.experiments.protocol.train_network`).
    dataset : Dataset
        The task the networks were trained on (its training inputs are recorded).
    kind : {"abs", "sqrt"}
        Correlation dissimilarity.

    Returns
    -------
    matplotlib.figure.Figure
        ``len(networks) + 1`` panels sharing the death axis: one per network, then the death
        distributions (ECDF).
    """
    import matplotlib.pyplot as plt
    import torch

    from .. import ActivationRecorder, correlation_dissimilarity, paper_style, zero_persistence
    from .models import neuron_layers

    if not networks:
        raise ValueError("networks is empty; give at least one trained network")
    barcodes: dict[str, tuple] = {}
    titles: dict[str, str] = {}
    for reg, (model, row) in networks.items():
        names = layer_display_names(model)
        layers = neuron_layers(model)
        with ActivationRecorder(model, layers=layers, detach=True, positions="neurons") as rec:
            with torch.no_grad():
                model(torch.from_numpy(dataset.X_train))
        A = rec.activations()
        index = rec.neuron_index()
        layers = [names.get(n, n) for n in np.asarray(index.layers)[index.layer]]
        bc = zero_persistence(correlation_dissimilarity(A.double(), kind=kind))
        label = (
            "none"
            if reg == "none"
            else f"{REGULARIZER_LABELS[reg]} (λ = {_weight_label(row['weight'])})"
        )
        barcodes[label] = (bc, layers)
        titles[label] = f"{label}: test {row['metric']} {float(row['test_metric'] or 'nan'):.3f}"
    n = len(barcodes) + 1
    row = next(iter(networks.values()))[1]
    with paper_style(columns=2):  # the Okabe–Ito palette and font sizes of every figure
        fig, axes = plt.subplots(1, n, figsize=(2.7 * n, 3.3), layout="constrained")
        plot_barcode_profiles(barcodes, axes=axes, titles=titles)
        fig.suptitle(
            f"{row['task']} / {row['model']} / seed {row['seed']}: 0-dim persistence of the "
            f"neurons (hidden layers after ReLU, and logits) on the {len(dataset.y_train)} "
            "training examples"
        )
    return fig


def save_figure(fig: Figure, path_stem: Path) -> list[Path]:
    """Write ``fig`` as PDF (TrueType / Type 42 fonts embedded) and PNG, atomically."""
    import matplotlib

    out = []
    with matplotlib.rc_context({"pdf.fonttype": 42, "ps.fonttype": 42}):
        for ext in (".pdf", ".png"):
            target = path_stem.with_suffix(ext)
            with atomic_path(target) as tmp:
                fig.savefig(tmp, dpi=150, bbox_inches="tight", format=ext[1:])
            out.append(target)
    return out
