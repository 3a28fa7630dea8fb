"""Review regressions: a single layer name given to the barcode callbacks."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_barcode_callback_takes_one_layer_name_as_a_str():
    """Before: a name given as a str was split into its letters ("layer 'h' is not a
    module ...") at the first evaluation."""
    pytest.importorskip("transformers")
    from topo_neurons.integrations.transformers import BarcodeCallback

    model = nn.Sequential()
    model.add_module("hidden", nn.Linear(4, 8))
    model.add_module("act", nn.ReLU())
    model.add_module("out", nn.Linear(8, 3))
    probe = torch.randn(32, 4, generator=torch.Generator().manual_seed(1))
    cb = BarcodeCallback(probe, "hidden")
    cb.record(model, step=1)
    assert list(cb.history.barcodes) == ["hidden"]
    assert cb.history.barcodes["hidden"][0].n_points == 8


def test_barcode_logger_takes_one_layer_name_as_a_str():
    pytest.importorskip("lightning.pytorch")
    import topo_neurons as tn
    from topo_neurons.integrations.lightning import BarcodeLogger

    probe = torch.randn(32, 4, generator=torch.Generator().manual_seed(1))
    logger = BarcodeLogger(probe, "fc")
    model = nn.Sequential()
    model.add_module("fc", nn.Linear(4, 8))
    tracker = tn.BarcodeTracker(model, logger.layers)  # what setup builds
    tracker.record(probe)
    assert list(tracker.history.barcodes) == ["fc"]
