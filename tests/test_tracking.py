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
            with torch.no_grad():  # fc1's neurons: after its BatchNorm and ReLU (point="post")
                h = model.act(model.bn(model.fc1(probe)))
                out = model.out(h)
            model.train()
            reference.append((_mst_deaths(h.double().numpy()), _mst_deaths(out.double().numpy())))
        loss = model(probe).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert recorded == [True, False, False, True, False, False, True, False]
    assert len(reference) == 3
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


# ----------------------------------------------------------------------------- TensorBoard
def _events(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "histograms": 0, "images": 0})
    acc.Reload()
    return acc


def test_tracker_logs_histograms_scalars_and_figures_to_tensorboard(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    model = _model()
    probe = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    with SummaryWriter(tmp_path) as writer:
        tracker = tn.BarcodeTracker(
            model, layers=["act", "out"], every=2, writer=writer, tag="topo"
        )
        for _ in range(5):
            tracker.step(probe)
    acc = _events(tmp_path)
    tags = acc.Tags()
    assert set(tags["histograms"]) == {"topo/act/deaths", "topo/out/deaths"}
    assert set(tags["images"]) == {"topo/act", "topo/out"}
    for layer in ("act", "out"):
        deaths = [np.asarray(bc.deaths) for bc in tracker.history.barcodes[layer]]
        assert len(deaths) == 3
        assert [e.step for e in acc.Histograms(f"topo/{layer}/deaths")] == [0, 2, 4]
        for event, d in zip(acc.Histograms(f"topo/{layer}/deaths"), deaths):
            h = event.histogram_value
            assert h.num == d.size
            # TensorBoard sums in float64; a float32 sum's last bit depends on numpy's SIMD
            h_sum = d.astype(np.float64).sum()
            np.testing.assert_allclose([h.min, h.max, h.sum], [d.min(), d.max(), h_sum], rtol=1e-12)
        for name, ref in [
            ("death_min", np.min),
            ("death_median", np.median),
            ("death_mean", np.mean),
            ("death_max", np.max),
            ("redundancy", lambda d: np.mean(1 - d)),
        ]:
            events = acc.Scalars(f"topo/{layer}/{name}")
            assert [e.step for e in events] == [0, 2, 4]
            np.testing.assert_allclose(
                [e.value for e in events], [ref(d) for d in deaths], rtol=1e-6
            )
        images = acc.Images(f"topo/{layer}")
        assert [im.step for im in images] == [0, 2, 4] and images[0].width > 100
    # the barcodes themselves are those of the recorded activations
    first = tracker.history.barcodes["act"][0]
    with torch.no_grad():
        model.eval()
        act = torch.relu(model.bn(model.fc1(probe)))
    # float32 deaths against a float64 reference: to float32 rounding (as above)
    np.testing.assert_allclose(first.deaths, _mst_deaths(act.numpy()), atol=1e-5)


def test_tracker_writer_options_and_errors(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    from topo_neurons.tracking import log_barcodes

    with pytest.raises(TypeError, match="SummaryWriter"):
        tn.BarcodeTracker(_model(), writer=object())
    with pytest.raises(ValueError, match="tag"):
        tn.BarcodeTracker(_model(), tag="")
    bc = tn.Barcode(np.array([0.1, 0.4]), np.array([[0, 1], [1, 2]]), 3)
    with pytest.raises(TypeError, match=r"no \['add_figure'\]"):
        log_barcodes(type("W", (), {"add_scalar": print, "add_histogram": print})(), {"x": bc}, 0)
    with SummaryWriter(tmp_path) as writer:
        log_barcodes(writer, {"x": bc}, 7, histograms=False, figures=False)
    tags = _events(tmp_path).Tags()
    assert tags["histograms"] == [] and tags["images"] == []
    assert "barcodes/x/redundancy" in tags["scalars"]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_tracker_on_a_gpu_model_gives_the_cpu_barcodes():
    model = _model()
    probe = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    cpu = tn.BarcodeTracker(model, layers=["act", "out"]).record(probe)
    gpu = tn.BarcodeTracker(model.cuda(), layers=["act", "out"]).record(probe.cuda())
    for name in ("act", "out"):
        np.testing.assert_allclose(gpu[name].deaths, cpu[name].deaths, atol=1e-5)


def test_tracker_passes_recorder_options():
    model = _model()
    probe = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    pre = tn.BarcodeTracker(model, layers=["fc1"], point="pre").record(probe)["fc1"]
    with torch.no_grad():
        model.eval()
        h = model.fc1(probe)
    np.testing.assert_allclose(pre.deaths, _mst_deaths(h.numpy()), atol=1e-5)
    with pytest.raises(ValueError, match="detached"):
        tn.BarcodeTracker(model, detach=False)
