"""TensorBoard: a ``SummaryWriter`` for :class:`~topo_neurons.BarcodeTracker` (optional extra).

>>> from topo_neurons.integrations.tensorboard import summary_writer  # doctest: +SKIP
>>> tracker = tn.BarcodeTracker(model, writer=summary_writer("runs/exp1"))  # doctest: +SKIP

What is logged is described in :func:`topo_neurons.tracking.log_barcodes`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from . import require

if TYPE_CHECKING:  # pragma: no cover
    from torch.utils.tensorboard import SummaryWriter

__all__ = ["summary_writer"]


def summary_writer(log_dir: str | os.PathLike[str] | None = None, **kwargs: Any) -> SummaryWriter:
    """A ``torch.utils.tensorboard.SummaryWriter`` writing to ``log_dir``.

    Parameters
    ----------
    log_dir : path-like, optional
        Directory of the event files (TensorBoard's default ``runs/…`` when omitted).
    **kwargs
        Passed to ``SummaryWriter``.

    Returns
    -------
    torch.utils.tensorboard.SummaryWriter

    Raises
    ------
    ImportError
        ``tensorboard`` is not installed (the message names
        ``pip install topo_neurons[tensorboard]``).
    """
    require("tensorboard", "tensorboard")
    tb = require("torch.utils.tensorboard", "tensorboard")
    return tb.SummaryWriter(None if log_dir is None else os.fspath(log_dir), **kwargs)
