"""BarcodeTracker and BarcodeHistory: what is recorded, when, and saved."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from scipy.sparse.csgraph import minimum_spanning_tree
from torch import nn

import topo_neurons as tn
from topo_neurons.tracking import BarcodeHistory


def _model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        OrderedDict(
            [
                ("fc1", nn.Linear(4, 9)),
                ("bn", nn.BatchNorm1d(9)),
                ("act", nn.ReLU()),
                ("out", nn.Linear(9, 3)),
            ]
        )
    )


def _mst_deaths(A: np.ndarray) -> np.ndarray:
    D = 1.0 - np.abs(np.corrcoef(A, rowvar=False))
    np.fill_diagonal(D, 0.0)
    mst = minimum_spanning_tree(np.clip(D, 1e-300, None) * (1 - np.eye(len(D)))).toarray()
    return np.sort(mst[mst > 0])


def test_records_every_k_steps_the_barcodes_of_each_layer():
    model = _model()
    probe = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    tracker = tn.BarcodeTracker(model, layers=["fc1", "out"], every=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    recorded, reference = [], []
    for _ in range(8):
        recorded.append(tracker.step(probe))
        if recorded[-1]:  # the barcode by hand, on the same weights, in eval mode
            model.eval()
            with torch.no_grad():
                h = model.fc1(probe)
                out = model.out(model.act(model.bn(h)))
            model.train()
            reference.append((_mst_deaths(h.double().numpy()), _mst_deaths(out.double().numpy())))
        loss = model(probe).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert recorded == [True, False, False, True, False, False, True, False]
    hist = tracker.history
    assert hist.steps == [0, 3, 6] and hist.layers == ("fc1", "out")
    for k, (fc1, out) in enumerate(reference):
        np.testing.assert_allclose(hist.barcodes["fc1"][k].deaths, fc1, atol=1e-5)
        np.testing.assert_allclose(hist.barcodes["out"][k].deaths, out, atol=1e-5)
    q = hist.quantiles("fc1", [0.25, 0.5])
    assert q.shape == (3, 2)
    np.testing.assert_allclose(q[-1], np.quantile(reference[-1][0], [0.25, 0.5]), atol=1e-5)
    assert hist.barcodes["fc1"][0] != hist.barcodes["fc1"][-1]  # training changed them


def test_recording_uses_eval_mode_without_touching_batch_norm_statistics():
    model = _model(seed=2).train()
    probe = torch.randn(32, 4, generator=torch.Generator().manual_seed(3))
    stats = (model.bn.running_mean.clone(), model.bn.running_var.clone())
    tracked = model.bn.num_batches_tracked.clone()
    tracker = tn.BarcodeTracker(model, every=1)
    tracker.step(probe)
    assert model.training
    torch.testing.assert_close(model.bn.running_mean, stats[0])
    torch.testing.assert_close(model.bn.running_var, stats[1])
    assert int(model.bn.num_batches_tracked) == int(tracked)
    assert all(p.grad is None for p in model.parameters())
    # Default layers: every leaf module with parameters, normalisation layers excluded.
    assert tracker.history.layers == ("fc1", "out")


def test_record_activations_and_network_entry(rng):
    model = _model()
    tracker = tn.BarcodeTracker(model, every=2, network=True)
    A = {
        "fc1": torch.from_numpy(rng.standard_normal((40, 5))),
        "out": torch.from_numpy(rng.standard_normal((40, 3))),
    }
    got = tracker.record_activations(A, step=7)
    assert tracker.history.steps == [7]
    assert set(got) == {"fc1", "out", "network"}
    both = np.concatenate([A["fc1"].numpy(), A["out"].numpy()], axis=1)
    np.testing.assert_allclose(got["network"].deaths, _mst_deaths(both), atol=1e-12)
    np.testing.assert_allclose(got["fc1"].deaths, _mst_deaths(A["fc1"].numpy()), atol=1e-12)
    with pytest.raises(ValueError, match="earlier steps gave"):
        tracker.history.append(9, {"fc1": got["fc1"]})


def test_save_load_round_trip(tmp_path, rng):
    model = _model()
    tracker = tn.BarcodeTracker(model, every=1)
    for _ in range(3):
        tracker.step(torch.from_numpy(rng.standard_normal((30, 4)).astype(np.float32)))
    path = tracker.save(tmp_path / "hist.npz")
    back = tn.BarcodeTracker.load(path)
    assert back == tracker.history
    assert back.steps == [0, 1, 2]
    np.testing.assert_array_equal(back.quantiles("out"), tracker.history.quantiles("out"))
    assert [p.name for p in tmp_path.iterdir()] == ["hist.npz"]  # atomic, nothing left over
    with pytest.raises(ValueError, match=r"end in \.npz"):
        tracker.save(tmp_path / "hist.json")
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(ValueError, match="not a BarcodeHistory file"):
        BarcodeHistory.load(other)
    with pytest.raises(FileNotFoundError, match="no history file"):
        BarcodeHistory.load(tmp_path / "missing.npz")


def test_tracker_errors():
    model = _model()
    with pytest.raises(ValueError, match=r"layer 'fc7' is not a module .* valid names"):
        tn.BarcodeTracker(model, layers=["fc7"])
    with pytest.raises(ValueError, match="every must be a positive int"):
        tn.BarcodeTracker(model, every=0)
    with pytest.raises(ValueError, match="valid kinds"):
        tn.BarcodeTracker(model, kind="cosine")
    with pytest.raises(ValueError, match="the history is empty"):
        tn.BarcodeTracker(model).history.quantiles()
    with pytest.raises(ValueError, match="per_layer is empty"):
        tn.BarcodeTracker(model).record_activations({})
