"""Integrations with training frameworks; optional extras, imported lazily.

* :mod:`topo_neurons.integrations.lightning` — Lightning callbacks
  (``pip install topo_neurons[lightning]``);
* :mod:`topo_neurons.integrations.tensorboard` — a ``SummaryWriter`` for
  :class:`~topo_neurons.BarcodeTracker` (``pip install topo_neurons[tensorboard]``);
* :mod:`topo_neurons.integrations.transformers` — the Hugging Face ``Trainer``: a regularised
  ``compute_loss`` and a barcode callback (``pip install topo_neurons[transformers]``).

Nothing here is imported by ``import topo_neurons``: the core runs without these extras. A
missing extra raises ``ImportError`` naming the ``pip install`` to run.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise ``ImportError`` naming the extra that provides it.

    Parameters
    ----------
    module : str
        Module to import, e.g. ``"lightning.pytorch"``.
    extra : str
        The ``topo_neurons`` extra that installs it, e.g. ``"lightning"``.

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    ImportError
        ``module`` (or a package it needs) is not installed; the message names
        ``pip install topo_neurons[extra]``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{module} is needed for this feature but could not be imported ({exc}); install "
            f"it with: pip install topo_neurons[{extra}]"
        ) from exc
