"""Figures of folding: accuracy against the fraction of neurons removed, and per-layer counts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._style import OKABE_ITO

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_fold_accuracy", "plot_fold_layers"]

_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def plot_fold_accuracy(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    baseline: float | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    percent: bool = True,
) -> Axes:
    """Accuracy against the fraction of neurons removed, one line per method.

    Parameters
    ----------
    curves : mapping of str to (fractions, accuracies)
        For each method (``"fold"``, ``"magnitude"``, ``"random"``, …), the fractions of the
        neurons removed, shape (k,), in [0, 1], and the accuracies after removal, shape (k,),
        in [0, 1]. Points are drawn in order of the fraction.
    baseline : float, optional
        The unfolded model's accuracy: a dotted horizontal line.
    ax : matplotlib Axes, optional
        Drawn on; a new figure when omitted.
    title : str, optional
    percent : bool, default True
        Axes in percent.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        No curve, or a curve whose two sequences differ in length.
    """
    import matplotlib.pyplot as plt

    if not curves:
        raise ValueError("curves is empty: give at least one method's (fractions, accuracies)")
    if ax is None:
        _, ax = plt.subplots()
    scale = 100.0 if percent else 1.0
    for k, (name, (frac, acc)) in enumerate(curves.items()):
        f, a = np.asarray(frac, dtype=float), np.asarray(acc, dtype=float)
        if f.shape != a.shape or f.ndim != 1:
            raise ValueError(
                f"curve {name!r}: fractions {f.shape} and accuracies {a.shape} must be two "
                "sequences of one length"
            )
        order = np.argsort(f, kind="stable")
        ax.plot(
            scale * f[order],
            scale * a[order],
            marker=_MARKERS[k % len(_MARKERS)],
            markersize=3,
            color=OKABE_ITO[k % len(OKABE_ITO)],
            label=name,
        )
    if baseline is not None:
        ax.axhline(scale * baseline, color="0.5", linestyle=":", linewidth=0.8, label="unfolded")
    unit = " (%)" if percent else ""
    ax.set_xlabel(f"hidden neurons removed{unit}")
    ax.set_ylabel(f"accuracy{unit}")
    ax.legend(frameon=False)
    if title:
        ax.set_title(title)
    return ax


def plot_fold_layers(report: Any, *, ax: Axes | None = None, title: str | None = None) -> Axes:
    """Kept and removed neurons of each folded layer (stacked bars).

    Parameters
    ----------
    report : FoldReport
        Anything with ``layers``, each with ``layer``, ``n_kept`` and ``n_removed``
        (a :class:`~topo_neurons.FoldReport`).
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    layers = list(getattr(report, "layers", ()))
    if ax is None:
        _, ax = plt.subplots()
    names = [lf.layer for lf in layers]
    kept = np.array([lf.n_kept for lf in layers], dtype=float)
    removed = np.array([lf.n_removed for lf in layers], dtype=float)
    x = np.arange(len(names))
    ax.bar(x, kept, color=OKABE_ITO[0], label="kept")
    ax.bar(x, removed, bottom=kept, color=OKABE_ITO[1], label="removed")
    ax.set_xticks(x, names)
    ax.set_xlabel("layer")
    ax.set_ylabel("neurons")
    ax.legend(frameon=False)
    if title:
        ax.set_title(title)
    return ax
