"""Barcodes recorded during training: :class:`BarcodeTracker` → :class:`BarcodeHistory`.

Every ``every`` training steps the tracker runs the model once more on a batch, in eval mode
and without gradient, records the activations of the chosen layers (detached), and keeps each
layer's 0-dimensional barcode (native backend). The history gives death quantiles over the
steps for :func:`~topo_neurons.plot_barcode_evolution` and saves to one ``.npz`` file.

Given a ``torch.utils.tensorboard.SummaryWriter`` (``writer=``), every record is also logged to
TensorBoard by :func:`log_barcodes`: a histogram of each layer's deaths, summary scalars, and
the barcode figure.

One module per part: ``_history`` (:class:`BarcodeHistory` and its file), ``_tensorboard``
(:func:`log_barcodes`, :func:`barcode_scalars`) and ``_tracker`` (:class:`BarcodeTracker`).
"""

from ._history import BarcodeHistory
from ._tensorboard import SUMMARY_SCALARS, SummaryWriterLike, barcode_scalars, log_barcodes
from ._tracker import NETWORK, BarcodeTracker

__all__ = [
    "NETWORK",
    "SUMMARY_SCALARS",
    "BarcodeHistory",
    "BarcodeTracker",
    "SummaryWriterLike",
    "barcode_scalars",
    "log_barcodes",
]
