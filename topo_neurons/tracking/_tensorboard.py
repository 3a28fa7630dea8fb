"""Barcodes to TensorBoard: summary scalars, death histograms and figures of each layer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..persistence import Barcode

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["SUMMARY_SCALARS", "SummaryWriterLike", "barcode_scalars", "log_barcodes"]


#: The scalars :func:`log_barcodes` logs per layer, each a function of the deaths ``d``.
SUMMARY_SCALARS: tuple[str, ...] = (
    "death_min",
    "death_median",
    "death_mean",
    "death_max",
    "redundancy",
)


class SummaryWriterLike(Protocol):
    """What :func:`log_barcodes` writes to: ``torch.utils.tensorboard.SummaryWriter``'s methods.

    A writer that only logs some of them is enough when the others are turned off
    (``histograms=False``, ``figures=False``).
    """

    def add_scalar(self, tag: str, scalar_value: float, global_step: int) -> object: ...

    def add_histogram(self, tag: str, values: np.ndarray, global_step: int) -> object: ...

    def add_figure(
        self, tag: str, figure: Figure, global_step: int, close: bool = True
    ) -> object: ...


def barcode_scalars(bc: Barcode) -> dict[str, float]:
    """Summary scalars of one barcode (see :data:`SUMMARY_SCALARS`); empty for one neuron.

    ``redundancy`` is the mean T1, ``mean(1 − d)``, in ``[0, 1]``.
    """
    d = np.asarray(bc.deaths, dtype=np.float64)
    if d.size == 0:
        return {}
    return {
        "death_min": float(d.min()),
        "death_median": float(np.median(d)),
        "death_mean": float(d.mean()),
        "death_max": float(d.max()),
        "redundancy": float(np.mean(1.0 - d)),
    }


def log_barcodes(
    writer: SummaryWriterLike,
    barcodes: Mapping[str, Barcode],
    step: int,
    *,
    tag: str = "barcodes",
    scalars: bool = True,
    histograms: bool = True,
    figures: bool = True,
) -> None:
    """Log barcodes to a TensorBoard ``SummaryWriter``.

    For each layer ``name``: the scalars ``{tag}/{name}/{s}`` for ``s`` in
    :data:`SUMMARY_SCALARS`, the histogram of the deaths ``{tag}/{name}/deaths``, and the
    barcode drawn by :func:`~topo_neurons.plot_barcode` as the figure ``{tag}/{name}``.

    Parameters
    ----------
    writer : torch.utils.tensorboard.SummaryWriter
        Or any object with its ``add_scalar``, ``add_histogram`` and ``add_figure`` methods
        (:class:`SummaryWriterLike`).
    barcodes : mapping of str to Barcode
        E.g. what :meth:`BarcodeTracker.record` returns.
    step : int
        The global step stored with every value.
    tag : str, default "barcodes"
        Prefix of every tag.
    scalars, histograms, figures : bool, default True
        Whether to log the summary scalars, the death histograms and the figures.

    Raises
    ------
    TypeError
        ``writer`` lacks one of the methods needed.
    """
    needed = ["add_scalar"] * scalars + ["add_histogram"] * histograms + ["add_figure"] * figures
    missing = [m for m in needed if not callable(getattr(writer, m, None))]
    if missing:
        raise TypeError(
            f"writer must be a torch.utils.tensorboard.SummaryWriter (or have {needed}); "
            f"{type(writer).__name__} has no {missing}"
        )
    for name, bc in barcodes.items():
        for key, value in barcode_scalars(bc).items() if scalars else ():
            writer.add_scalar(f"{tag}/{name}/{key}", value, step)
        if bc.deaths.size == 0:
            continue
        if histograms:
            writer.add_histogram(f"{tag}/{name}/deaths", np.asarray(bc.deaths), step)
        if figures:
            import matplotlib.pyplot as plt

            from ..plotting import plot_barcode

            # Constrained layout: TensorBoard rasterises the canvas as is (no tight bounding
            # box), so the axis labels must lie inside the figure.
            fig, ax = plt.subplots(figsize=(5, 3.5), layout="constrained")
            plot_barcode(bc, ax=ax, title=f"{name}, step {step}")
            writer.add_figure(f"{tag}/{name}", fig, step, close=True)
            plt.close(fig)
