"""Guards that turn silent or deep failures into clear errors or warnings (issue 11).

Each test is named after the failure it prevents and fails on the code before the guard.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch

import topo_neurons as tn
from topo_neurons._memory import ENV_VAR, available_memory, check_square_fits, format_bytes
from topo_neurons.analysis import StreamingCorrelation


def _mlp(n_in: int, hidden: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(n_in, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 3)
    )


# ----------------------------------------------------------------------------- memory
def test_available_memory_reads_psutil_and_the_override(monkeypatch):
    import psutil

    monkeypatch.delenv(ENV_VAR, raising=False)
    free = available_memory()
    assert 0 < free <= psutil.virtual_memory().total
    for text, expected in [("1000", 1000), ("512M", 512 * 1024**2), ("2GiB", 2 * 1024**3)]:
        monkeypatch.setenv(ENV_VAR, text)
        assert available_memory() == expected
    monkeypatch.setenv(ENV_VAR, "lots")
    with pytest.raises(ValueError, match=f"{ENV_VAR}='lots' is not a number of bytes"):
        available_memory()


def test_check_square_fits_counts_the_bytes(monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(3 * 100 * 100 * 8))
    assert check_square_fits(100, 8, 3.0) == 240_000  # exactly fits
    with pytest.raises(MemoryError, match=r"n = 100 neurons needs about 234.4 KiB") as info:
        check_square_fits(100, 8, 3.0, extra_bytes=1)
    msg = str(info.value)
    assert "234.4 KiB is available" in msg
    for way_out in ("ImportanceSampling", "positions='examples'", "correlation_persistence"):
        assert way_out in msg
    assert format_bytes(34 * 1024**3) == "34.0 GiB"


def test_small_requests_do_not_query_the_system(monkeypatch):
    import psutil

    monkeypatch.delenv(ENV_VAR, raising=False)
    calls = []

    class OneByte:
        available = 1

    def counted():
        calls.append(1)
        return OneByte()

    monkeypatch.setattr(psutil, "virtual_memory", counted)
    assert check_square_fits(1000, 8) == 8_000_000  # 7.6 MiB: no query (hot in training steps)
    assert calls == []
    with pytest.raises(MemoryError, match="only 1 B is available"):
        check_square_fits(4000, 8)  # 122 MiB: queried
    assert calls == [1]


def test_memory_guard_before_correlation_dissimilarity_of_too_many_neurons(monkeypatch, rng):
    A = rng.standard_normal((8, 3000)).astype(np.float32)
    monkeypatch.setenv(ENV_VAR, "16M")  # the (3000, 3000) float32 output needs 34.3 MiB
    for fn in (tn.correlation_dissimilarity, tn.correlation_matrix):
        with pytest.raises(MemoryError, match=r"n = 3000 neurons needs about 34\.3 MiB"):
            fn(A)
    monkeypatch.setenv(ENV_VAR, "40M")
    assert tn.correlation_dissimilarity(A).shape == (3000, 3000)  # fits: computed
    # The autograd path keeps several n × n arrays alive: it is refused where the plain one fits.
    At = torch.from_numpy(A).requires_grad_()
    with pytest.raises(MemoryError, match=r"5 × 3000² × 4 bytes"):
        tn.correlation_dissimilarity(At)


def test_memory_guard_on_a_64_channel_32x32_conv_layer_in_t1(monkeypatch):
    # 64 channels × 32 × 32 positions = 65 536 neurons: torch would try to allocate 16 GiB for
    # the ranking matrix (and more for the gradient path) and fail deep in its allocator.
    monkeypatch.setenv(ENV_VAR, "8G")
    conv = torch.nn.Conv2d(3, 64, 3, padding=1)
    x = torch.randn(4, 3, 32, 32)
    with tn.ActivationRecorder(conv) as rec:
        conv(x)
    A = rec.activations()
    assert A.shape == (4, 65536) and A.requires_grad
    with pytest.raises(MemoryError, match=r"n = 65536 neurons needs about 16\.0 GiB"):
        tn.TopologicalRedundancy()(A)


def test_memory_guard_before_analyse_allocates_its_accumulator(monkeypatch):
    model = torch.nn.Sequential(torch.nn.Linear(4, 2000))
    monkeypatch.setenv(ENV_VAR, "64M")  # 7 float64 (2000, 2000) arrays need 213.6 MiB
    with pytest.raises(MemoryError, match=r"^analyse for n = 2000 neurons needs about 213\.6 MiB"):
        tn.analyse(model, torch.randn(10, 4))
    acc = StreamingCorrelation(2000)
    with pytest.raises(MemoryError, match="streaming correlation accumulator for n = 2000"):
        acc.update(np.zeros((3, 2000)))
    assert acc.n_examples == 0  # nothing half-updated


# ----------------------------------------------------------------------------- giotto range
def test_giotto_on_entries_beyond_float32_is_a_clear_value_error():
    D = np.full((4, 4), 1e300)
    np.fill_diagonal(D, 0.0)
    D[0, 1] = D[1, 0] = 1.0
    with pytest.raises(ValueError, match=r"computes in float32.*D\[0, 2\] = 1e\+300"):
        tn.zero_persistence(D, backend="giotto")
    # The float64 backends agree with each other on the same matrix.
    native = tn.zero_persistence(D, backend="native")
    np.testing.assert_array_equal(native.deaths, tn.zero_persistence(D, backend="gudhi").deaths)
    np.testing.assert_array_equal(native.deaths, [1.0, 1e300, 1e300])
    # Just inside the float32 range giotto-ph still runs and agrees.
    D[D == 1e300] = 3e38
    np.testing.assert_allclose(
        tn.zero_persistence(D, backend="giotto").deaths, [1.0, 3e38, 3e38], rtol=1e-6
    )


# ----------------------------------------------------------------------------- barcode files
def test_barcode_load_on_corrupt_file_names_the_file(tmp_path, rng):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 not really a zip file")
    with pytest.raises(ValueError, match=re.escape(f"{str(junk)!r} is not a barcode file")):
        tn.Barcode.load(junk)
    acts = tmp_path / "acts.npy"
    np.save(acts, rng.standard_normal((10, 4)))
    with pytest.raises(ValueError, match=r"holds one array of shape \(10, 4\) \(a \.npy file"):
        tn.Barcode.load(acts)
    # A truncated copy of a valid barcode file.
    good = tmp_path / "good.npz"
    tn.zero_persistence(tn.correlation_dissimilarity(rng.standard_normal((20, 6)))).save(good)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(ValueError, match=re.escape(f"{str(cut)!r} is not a barcode file")):
        tn.Barcode.load(cut)


# ----------------------------------------------------------------------------- m ≤ n
def test_analyse_with_no_more_examples_than_neurons_warns_once(rng):
    model = _mlp(5, 16)
    X = torch.from_numpy(rng.standard_normal((12, 5)).astype(np.float32))
    with pytest.warns(
        tn.FewExamplesWarning, match=r"m = 12 examples for n = 19 neurons \(m ≤ n\)"
    ) as rec:
        tn.analyse(model, X, batch_size=4)
    ours = [w for w in rec if "analyse: m =" in str(w.message)]
    assert len(ours) == 1  # once, not once per batch
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="analyse: m =")
        tn.analyse(model, torch.from_numpy(rng.standard_normal((40, 5)).astype(np.float32)))


def test_regularized_on_a_batch_with_m_le_n_warns_drop_last():
    model = _mlp(4, 8)  # 8 + 3 = 11 regularised neurons
    reg = tn.Regularized(model, tn.TopologicalRedundancy(), weight=0.1)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Regularized:")
        reg(torch.randn(32, 4))  # m > n: silent
    with pytest.warns(tn.FewExamplesWarning, match=r"m = 5 examples for n = 11 neurons") as rec:
        reg(torch.randn(5, 4))
    assert any("drop_last=True" in str(w.message) for w in rec)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Regularized:")
        reg(torch.randn(5, 4))  # once per wrapper


def test_few_examples_warnings_share_one_category_that_a_filter_silences(rng):
    # The recorder, analyse and Regularized all warn with tn.FewExamplesWarning, so a deliberate
    # small batch (the paper's 256 examples for 1010 neurons) is silenced by category, not text.
    model = _mlp(5, 16)
    X = torch.from_numpy(rng.standard_normal((12, 5)).astype(np.float32))
    with pytest.warns(tn.FewExamplesWarning, match="12 examples for 19 neurons"):
        with tn.ActivationRecorder(model) as rec:
            model(X)
        rec.activations()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", tn.FewExamplesWarning)
        tn.analyse(model, X, batch_size=4)
        tn.Regularized(model, tn.TopologicalRedundancy(), weight=0.1)(X)
        with tn.ActivationRecorder(model) as rec:
            model(X)
        rec.activations()


def test_lightning_regularization_on_a_short_last_batch_warns_drop_last(tmp_path):
    pl = pytest.importorskip("lightning.pytorch", reason="the lightning extra is a dev dependency")
    from topo_neurons.integrations.lightning import TopologicalRegularization

    class Net(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = _mlp(4, 8)  # 8 + 3 = 11 regularised neurons

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(37, 4, generator=g), torch.arange(37) % 3)

    def fit(drop_last: bool) -> list[str]:
        loader = torch.utils.data.DataLoader(data, batch_size=16, drop_last=drop_last)
        trainer = pl.Trainer(
            accelerator="cpu", max_epochs=2, logger=False, enable_progress_bar=False,
            enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path,
            callbacks=[TopologicalRegularization(tn.TopologicalRedundancy(), weight=0.1)],
        )  # fmt: skip
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.fit(Net(), loader)
        return [str(w.message) for w in caught if "TopologicalRegularization:" in str(w.message)]

    # 37 = 16 + 16 + 5: the last batch has 5 examples for 11 neurons, once per epoch.
    (message,) = fit(drop_last=False)  # warned once, not every epoch
    assert "m = 5 examples for n = 11 neurons" in message and "drop_last=True" in message
    assert fit(drop_last=True) == []


# ----------------------------------------------------------------------------- device
def test_analyse_device_argument_checks_and_restores(rng):
    model = _mlp(5, 6)
    X = torch.from_numpy(rng.standard_normal((50, 5)).astype(np.float32))
    a = tn.analyse(model, X, device="cpu")
    np.testing.assert_array_equal(a.barcode.deaths, tn.analyse(model, X).barcode.deaths)
    with pytest.raises(ValueError, match=r"device='gpu0' is not a torch device"):
        tn.analyse(model, X, device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            tn.analyse(model, X, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_analyse_on_cuda_matches_cpu_and_moves_the_model_back(rng):
    model = _mlp(5, 6).double()
    X = torch.from_numpy(rng.standard_normal((300, 5)))
    cpu = tn.analyse(model, X)
    gpu = tn.analyse(model, X, device="cuda")
    assert next(model.parameters()).device.type == "cpu"
    np.testing.assert_allclose(gpu.barcode.deaths, cpu.barcode.deaths, atol=1e-9)
