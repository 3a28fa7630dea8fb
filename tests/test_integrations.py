"""Lightning callbacks and TensorBoard logging, with a real Trainer on CPU; missing extras."""

from __future__ import annotations

import copy
import csv
import importlib
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
from scipy.sparse.csgraph import minimum_spanning_tree
from torch import nn

import topo_neurons as tn

pl = pytest.importorskip("lightning.pytorch", reason="the lightning extra is a dev dependency")
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger  # noqa: E402

from topo_neurons.integrations.lightning import (  # noqa: E402
    BarcodeLogger,
    TopologicalRegularization,
)

LAYERS = ["net.act1", "net.act2", "net.out"]


class Classifier(pl.LightningModule):
    def __init__(self, lr: float = 0.1, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(
            OrderedDict(
                fc1=nn.Linear(8, 16),
                act1=nn.ReLU(),
                fc2=nn.Linear(16, 12),
                act2=nn.ReLU(),
                out=nn.Linear(12, 4),
            )
        )
        self.lr = lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def fixed_batch(m: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    base = torch.randn(m, 2, generator=g)  # correlated inputs: redundant neurons to decorrelate
    x = torch.cat([base, base @ torch.randn(2, 6, generator=g)], dim=1)
    x = x + 0.1 * torch.randn(m, 8, generator=g)
    return x, torch.randint(0, 4, (m,), generator=g)


def loader(x: torch.Tensor, y: torch.Tensor) -> torch.utils.data.DataLoader:
    ds = torch.utils.data.TensorDataset(x, y)
    return torch.utils.data.DataLoader(ds, batch_size=len(x), shuffle=False)


def trainer(tmp_path, callbacks, *, loggers=None, **kw) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        logger=TensorBoardLogger(tmp_path, name="tb") if loggers is None else loggers,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        log_every_n_steps=1,
        **kw,
    )


def events(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "histograms": 0, "images": 0})
    acc.Reload()
    return acc


def mst_deaths(A: np.ndarray) -> np.ndarray:
    """Deaths from np.corrcoef and scipy's MST (constant columns: d = 1)."""
    const = np.ptp(A, axis=0) == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.corrcoef(A, rowvar=False)
    rho[const, :] = 0.0
    rho[:, const] = 0.0
    D = 1.0 - np.abs(rho)
    np.fill_diagonal(D, 0.0)
    mst = minimum_spanning_tree(np.where(D > 0, D, 1e-300) * (1 - np.eye(len(D)))).toarray()
    d = mst[mst > 0]
    return np.sort(np.where(d < 1e-200, 0.0, d))


# ----------------------------------------------------------------------------- the loss
def test_the_callback_changes_the_gradient_exactly_as_a_manual_loop(tmp_path):
    x, y = fixed_batch()
    lam = 0.7
    module = Classifier()
    reference = copy.deepcopy(module.net)
    cb = TopologicalRegularization(tn.TopologicalRedundancy(reduction="mean"), lam, layers=LAYERS)
    trainer(tmp_path, [cb], max_steps=1).fit(module, loader(x, y))
    assert "training_step" not in vars(module)  # the wrapper is gone after the fit
    # the same step by hand: cross-entropy + λ·T1 of the post-ReLU outputs and the logits
    opt = torch.optim.SGD(reference.parameters(), lr=0.1)
    with tn.ActivationRecorder(reference, ["act1", "act2", "out"]) as rec:
        out = reference(x)
    t1 = tn.TopologicalRedundancy(reduction="mean")(rec.activations())
    (nn.functional.cross_entropy(out, y) + lam * t1).backward()
    opt.step()
    assert len(list(module.net.parameters())) == len(list(reference.parameters())) > 0
    for (name, p), q in zip(module.net.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p.detach(), q.detach(), msg=name)
    torch.testing.assert_close(cb.last_penalty, lam * t1.detach())
    # without the penalty the step differs: the callback did change the gradient
    plain = Classifier()
    trainer(tmp_path, [], max_steps=1).fit(plain, loader(x, y))
    assert not torch.allclose(plain.net.fc1.weight, module.net.fc1.weight)


def test_logged_penalty_is_finite_and_decreases_on_a_fixed_batch(tmp_path):
    x, y = fixed_batch()
    module = Classifier(lr=0.1)
    cb = TopologicalRegularization(tn.TopologicalRedundancy(reduction="mean"), 1.0, layers=LAYERS)
    tr = trainer(tmp_path, [cb], max_steps=25)
    tr.fit(module, loader(x, y))
    acc = events(tr.logger.log_dir)
    steps = [e.step for e in acc.Scalars("topo/penalty_step")]
    values = np.array([e.value for e in acc.Scalars("topo/penalty_step")])
    assert steps == list(range(25)) and np.isfinite(values).all()
    assert values[-5:].mean() < 0.9 * values[:5].mean()
    assert values[-1] < values[0]


def test_callback_state_keeps_the_cached_tree(tmp_path):
    x, y = fixed_batch()
    # a small weight: no neuron dies (a hub dying would make it search again, see below)
    cb = TopologicalRegularization(tn.TopologicalRedundancy(refresh_every=4), 0.01, layers=LAYERS)
    trainer(tmp_path, [cb], max_steps=3).fit(Classifier(), loader(x, y))
    assert cb.regularizer._age == 3
    state = cb.state_dict()
    fresh = TopologicalRegularization(tn.TopologicalRedundancy(refresh_every=4))
    fresh.load_state_dict(state)
    assert torch.equal(fresh.regularizer._edges, cb.regularizer._edges.cpu())
    assert fresh.regularizer._age == 3


def test_every_n_steps_and_dict_outputs(tmp_path):
    class DictOut(Classifier):
        def training_step(self, batch, batch_idx):
            return {"loss": super().training_step(batch, batch_idx), "extra": 1}

    x, y = fixed_batch()
    cb = TopologicalRegularization(
        tn.DeathSpread(), 1.0, layers=LAYERS, every_n_steps=3, log_name="t2"
    )
    tr = trainer(tmp_path, [cb], max_steps=7)
    tr.fit(DictOut(), loader(x, y))
    steps = [e.step for e in events(tr.logger.log_dir).Scalars("t2_step")]
    assert steps == [0, 3, 6]


def test_bad_callback_configuration_lists_what_is_valid():
    with pytest.raises(TypeError, match="activation loss module"):
        TopologicalRegularization(tn.L2Penalty())
    with pytest.raises(ValueError, match=r"weight=-1"):
        TopologicalRegularization(tn.DeCov(), -1)
    with pytest.raises(ValueError, match=r"every_n_steps=0 .* int ≥ 1"):
        TopologicalRegularization(tn.DeCov(), every_n_steps=0)
    with pytest.raises(ValueError, match=r"every_n_epochs=2.5"):
        BarcodeLogger(torch.randn(4, 8), every_n_epochs=2.5)
    with pytest.raises(ValueError, match=r"at least 2 examples; got shape \(1, 8\)"):
        BarcodeLogger(torch.randn(1, 8))
    with pytest.raises(ValueError, match="valid kinds"):
        BarcodeLogger(torch.randn(4, 8), kind="cos")


def test_a_training_step_returning_no_loss_is_a_clear_error(tmp_path):
    class NoLoss(Classifier):
        def training_step(self, batch, batch_idx):
            super().training_step(batch, batch_idx)
            return None

    x, y = fixed_batch()
    cb = TopologicalRegularization(tn.TopologicalRedundancy(), layers=LAYERS)
    with pytest.raises(TypeError, match="return the loss tensor or a dict"):
        trainer(tmp_path, [cb], max_steps=1).fit(NoLoss(), loader(x, y))


# ----------------------------------------------------------------------------- barcodes
def test_barcode_logger_writes_tensorboard_and_every_other_logger(tmp_path):
    x, y = fixed_batch()
    probe = x[:48]
    module = Classifier()
    bars = BarcodeLogger(probe, ["net.act2", "net.out"], every_n_epochs=2, tag="bars")
    tb = TensorBoardLogger(tmp_path, name="tb")
    csv_logger = CSVLogger(tmp_path, name="csv")
    trainer(tmp_path, [bars], loggers=[tb, csv_logger], max_epochs=4).fit(module, loader(x, y))
    assert bars.history.steps == [2, 4]  # end of epochs 2 and 4 (one step per epoch)
    acc = events(tb.log_dir)
    tags = acc.Tags()
    assert {"bars/net.act2/deaths", "bars/net.out/deaths"} <= set(tags["histograms"])
    assert {"bars/net.act2", "bars/net.out"} <= set(tags["images"])
    for layer in ("net.act2", "net.out"):
        deaths = [np.asarray(bc.deaths, np.float64) for bc in bars.history.barcodes[layer]]
        hist = acc.Histograms(f"bars/{layer}/deaths")
        assert [h.step for h in hist] == [2, 4]
        assert [h.histogram_value.num for h in hist] == [d.size for d in deaths]
        np.testing.assert_allclose([h.histogram_value.sum for h in hist], [d.sum() for d in deaths])
        mean = acc.Scalars(f"bars/{layer}/death_mean")
        np.testing.assert_allclose([e.value for e in mean], [d.mean() for d in deaths], rtol=1e-6)
    # the last record is the barcode of the trained network on the probe (independent MST)
    module.eval()
    with torch.no_grad():
        h = module.net[:4](probe)
    np.testing.assert_allclose(
        bars.history.barcodes["net.act2"][-1].deaths, mst_deaths(h.numpy()), atol=1e-5
    )
    # the CSV logger received the same scalars
    with open(csv_logger.log_dir + "/metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("bars/net.out/redundancy")]
    assert [int(r["step"]) for r in rows] == [2, 4]
    # the history survives the callback's state_dict
    again = BarcodeLogger(probe)
    again.load_state_dict(bars.state_dict())
    assert again.history == bars.history


# ----------------------------------------------------------------------------- extras
@pytest.mark.parametrize(
    ("blocked", "module", "extra"),
    [
        ("lightning", "topo_neurons.integrations.lightning", "lightning"),
        ("tensorboard", "topo_neurons.integrations.tensorboard", "tensorboard"),
    ],
)
def test_a_missing_extra_names_the_pip_install(monkeypatch, blocked, module, extra):
    for name in list(sys.modules):
        if name == blocked or name.startswith(blocked + "."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, blocked, None)
    monkeypatch.delitem(sys.modules, module, raising=False)
    match = rf"pip install topo_neurons\[{extra}\]"
    if extra == "lightning":
        with pytest.raises(ImportError, match=match):
            importlib.import_module(module)
    else:
        from topo_neurons.integrations.tensorboard import summary_writer

        with pytest.raises(ImportError, match=match):
            summary_writer()


def test_the_core_imports_without_the_optional_extras():
    code = (
        "import sys\n"
        "for m in ('lightning', 'pytorch_lightning', 'tensorboard', 'transformers', 'dask'):\n"
        "    sys.modules[m] = None\n"
        "import torch, topo_neurons as tn\n"
        "A = torch.randn(32, 6)\n"
        "print(float(tn.TopologicalRedundancy()(A)) > 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_summary_writer_feeds_the_tracker(tmp_path):
    from topo_neurons.integrations.tensorboard import summary_writer

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    with summary_writer(tmp_path) as writer:
        tracker = tn.BarcodeTracker(model, every=1, writer=writer, figures=False)
        tracker.step(torch.randn(16, 4))
    assert "barcodes/0/deaths" in events(tmp_path).Tags()["histograms"]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_callbacks_on_a_gpu(tmp_path):
    x, y = fixed_batch()
    cb = TopologicalRegularization(tn.TopologicalRedundancy(), layers=LAYERS)
    bars = BarcodeLogger(x[:32], ["net.act2"])
    pl.Trainer(
        accelerator="gpu",
        devices=1,
        max_steps=2,
        logger=TensorBoardLogger(tmp_path),
        callbacks=[cb, bars],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    ).fit(Classifier(), loader(x, y))
    assert cb.last_penalty.device.type == "cuda" and torch.isfinite(cb.last_penalty)
    assert len(bars.history) == 2


def test_a_resumed_fit_continues_the_barcode_history_and_the_cached_tree(tmp_path):
    x, y = fixed_batch()
    bars = BarcodeLogger(x[:32], ["net.act2"])
    reg = TopologicalRegularization(tn.TopologicalRedundancy(refresh_every=50), 0.01, layers=LAYERS)
    first = trainer(tmp_path, [bars, reg], max_epochs=2)
    first.fit(Classifier(), loader(x, y))
    ckpt = tmp_path / "two.ckpt"
    first.save_checkpoint(ckpt)
    bars2 = BarcodeLogger(x[:32], ["net.act2"])
    reg2 = TopologicalRegularization(
        tn.TopologicalRedundancy(refresh_every=50), 0.01, layers=LAYERS
    )
    trainer(tmp_path, [bars2, reg2], max_epochs=3).fit(Classifier(), loader(x, y), ckpt_path=ckpt)
    assert bars2.history.steps == [1, 2, 3]
    assert len(bars.history.barcodes["net.act2"]) == 2  # the two epochs resumed from
    for old, new in zip(bars.history.barcodes["net.act2"], bars2.history.barcodes["net.act2"]):
        np.testing.assert_array_equal(old.deaths, new.deaths)
    assert reg2.regularizer._age == 3  # the tree searched at step 0 was still in use at step 2
    assert torch.equal(reg2.regularizer._edges.cpu(), reg.regularizer._edges.cpu())
