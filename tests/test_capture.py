"""ActivationRecorder, NeuronIndex and the sampling strategies."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import topo_neurons as tn


def mnist_mlp() -> nn.Sequential:
    """The paper's MNIST MLP, 784-450-350-200-10."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 450),
        nn.ReLU(),
        nn.Linear(450, 350),
        nn.ReLU(),
        nn.Linear(350, 200),
        nn.ReLU(),
        nn.Linear(200, 10),
    )


class Branchy(nn.Module):
    """Modules registered in one order, called in another."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(6, 2)
        self.body = nn.Linear(3, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(x)))


class Shared(nn.Module):
    """One module called twice per forward (weight sharing)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.out = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.fc(self.fc(x)))


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


# ----------------------------------------------------------------------------- the paper's MLP
@pytest.mark.parametrize(("p", "expected"), [(1.0, 1010), (0.1, 45 + 35 + 20 + 10)])
def test_mnist_mlp_neuron_counts(p, expected):
    model = mnist_mlp()
    x = torch.randn(32, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with tn.ActivationRecorder(model, sampling=tn.ImportanceSampling(p)) as rec:
        out = model(x)
    A = rec.activations()
    assert A.shape == (32, expected)
    ix = rec.neuron_index()
    assert ix.layers == ("1", "3", "5", "7")
    assert ix.sizes == {"1": 450, "3": 350, "5": 200, "7": 10}
    assert len(ix) == expected
    # The output layer is whole and is the last block of columns, equal to the model output.
    np.testing.assert_array_equal(ix.neuron[ix.columns("7")], np.arange(10))
    torch.testing.assert_close(A[:, ix.columns("7")], out)


@pytest.mark.parametrize("point", ["post", "pre"])
def test_importance_sampling_keeps_the_most_active_neurons(point):
    model = mnist_mlp()
    x = torch.randn(64, 784, generator=torch.Generator().manual_seed(2))
    with tn.ActivationRecorder(model, sampling=tn.ImportanceSampling(0.1), point=point) as rec:
        model(x)
    # Independent reference: the same layer outputs computed by hand, numpy top-k; the hidden
    # layers' neurons are their post-ReLU values by default, the Linear outputs with "pre".
    h = x
    full = {}
    for name in ("1", "3", "5", "7"):
        lin = model[int(name)]
        h_lin = (h @ lin.weight.T + lin.bias).detach()
        h = torch.relu(h_lin)
        full[name] = (h if point == "post" and name != "7" else h_lin).numpy()
    ix = rec.neuron_index()
    A = rec.activations().detach().numpy()
    for name, n in (("1", 450), ("3", 350), ("5", 200)):
        score = np.abs(full[name]).mean(axis=0)
        k = math.floor(0.1 * n)
        expected = np.sort(np.argsort(-score, kind="stable")[:k])
        np.testing.assert_array_equal(ix.neuron[ix.columns(name)], expected)
        np.testing.assert_allclose(
            A[:, ix.columns(name)], full[name][:, expected], rtol=1e-5, atol=1e-5
        )


def test_importance_sampling_keeps_at_least_one_neuron_and_breaks_ties_by_index():
    acts = {"h": torch.zeros(5, 8), "o": torch.zeros(5, 2)}
    sel = tn.ImportanceSampling(0.01).select(acts, "o")
    assert sel["h"].tolist() == [0]  # ⌊0.08⌋ = 0 → kept 1; all tied → smallest index
    assert sel["o"].tolist() == [0, 1]
    # 0.29 · 100 is 28.999… in floating point; the documented count is 29.
    assert (
        tn.ImportanceSampling(0.29)
        .select({"h": torch.rand(3, 100), "o": acts["o"]}, "o")["h"]
        .numel()
        == 29
    )


@pytest.mark.parametrize("p", [0.0, -0.5, 1.5, float("nan")])
def test_sampling_fraction_is_validated(p):
    with pytest.raises(ValueError, match=r"p must lie in \(0, 1\]"):
        tn.ImportanceSampling(p)
    with pytest.raises(ValueError, match=r"p must lie in \(0, 1\]"):
        tn.RandomSampling(p)


def test_sampling_fraction_type_is_checked():
    with pytest.raises(TypeError, match="needs a number"):
        tn.ImportanceSampling("0.5")
    with pytest.raises(TypeError, match="seed"):
        tn.RandomSampling(0.5, seed="x")


def test_random_sampling_is_seeded_and_keeps_output_whole():
    acts = {"h": torch.zeros(4, 100), "o": torch.zeros(4, 3)}
    a = tn.RandomSampling(0.2, seed=7).select(acts, "o")
    b = tn.RandomSampling(0.2, seed=7).select(acts, "o")
    c = tn.RandomSampling(0.2, seed=8).select(acts, "o")
    assert torch.equal(a["h"], b["h"])
    assert not torch.equal(a["h"], c["h"])
    assert a["h"].numel() == 20 and len(set(a["h"].tolist())) == 20
    assert torch.equal(a["h"], torch.sort(a["h"]).values)
    assert a["o"].tolist() == [0, 1, 2]


def test_fixed_selection_reuses_columns_across_batches():
    model = mnist_mlp()
    gen = torch.Generator().manual_seed(3)
    with tn.ActivationRecorder(model, sampling=tn.ImportanceSampling(0.1), detach=True) as rec:
        model(torch.randn(16, 784, generator=gen))
    sel = rec.selection()
    fixed = tn.ActivationRecorder(model, sampling=tn.FixedSelection(sel), detach=True)
    x2 = torch.randn(16, 784, generator=gen)
    with fixed:
        model(x2)
    with tn.ActivationRecorder(model, detach=True) as full:
        model(x2)
    cols = []
    ix_full = full.neuron_index()
    for name, idx in sel.items():
        cols.append(ix_full.columns(name)[idx.numpy()])
    torch.testing.assert_close(fixed.activations(), full.activations()[:, np.concatenate(cols)])
    assert not fixed.activations().requires_grad


def test_fixed_selection_errors():
    with pytest.raises(ValueError, match="missing"):
        tn.FixedSelection({"a": [0]}).select({"a": torch.zeros(2, 3), "b": torch.zeros(2, 2)}, "b")
    with pytest.raises(ValueError, match="layer 'a' has 3 neurons; index 5 is out of range"):
        tn.FixedSelection({"a": [0, 5]}).select({"a": torch.zeros(2, 3)}, "a")
    with pytest.raises(ValueError, match="repeated"):
        tn.FixedSelection({"a": [1, 1]})
    with pytest.raises(ValueError, match="negative"):
        tn.FixedSelection({"a": [-1, 1]})
    with pytest.raises(ValueError, match="integers"):
        tn.FixedSelection({"a": [0.5]})
    with pytest.raises(TypeError, match="mapping"):
        tn.FixedSelection([0, 1])


# ----------------------------------------------------------------------------- layers, order
def test_default_layers_follow_forward_call_order():
    torch.manual_seed(0)
    model = Branchy()
    with tn.ActivationRecorder(model) as rec:
        out = model(torch.randn(5, 3))
    assert rec.neuron_index().layers == ("body", "head")
    torch.testing.assert_close(rec.per_layer()["head"], out)


@pytest.mark.parametrize(
    "norm", [nn.BatchNorm1d(6), nn.LayerNorm(6), nn.GroupNorm(2, 6)], ids=lambda m: type(m).__name__
)
def test_default_layers_leave_normalisation_out_unless_named(norm):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), norm, nn.ReLU(), nn.Linear(6, 2))
    x = torch.randn(10, 3)
    with tn.ActivationRecorder(model) as rec:
        model(x)
    assert rec.neuron_index().layers == ("0", "3")
    assert rec.activations().shape == (10, 8)
    with tn.ActivationRecorder(model, layers=["0", "1"]) as rec:
        model(x)
    torch.testing.assert_close(rec.per_layer()["1"], norm(model[0](x)))


def test_layers_by_name_and_by_module():
    model = mnist_mlp()
    x = torch.randn(8, 784, generator=torch.Generator().manual_seed(4))
    with tn.ActivationRecorder(model, layers=["3", model[5]]) as rec:
        model(x)
    assert rec.neuron_index().layers == ("3", "5")
    assert rec.activations().shape == (8, 550)
    # A non-parametrised module can be recorded by name (e.g. the ReLU after fc1).
    with tn.ActivationRecorder(model, layers="2") as rec:
        model(x)
    assert rec.activations().min() >= 0 and rec.activations().shape == (8, 450)


def test_unknown_layer_lists_valid_names():
    model = mnist_mlp()
    with pytest.raises(
        ValueError,
        match=r"layer 'fc9' is not a module of Sequential; valid names"
        r" are: '0', '1', '2'",
    ):
        tn.ActivationRecorder(model, layers=["fc9"])
    with pytest.raises(ValueError, match="not part of Sequential"):
        tn.ActivationRecorder(model, layers=[nn.Linear(2, 2)])
    with pytest.raises(ValueError, match="listed twice"):
        tn.ActivationRecorder(model, layers=["1", model[1]])
    with pytest.raises(TypeError, match="module names"):
        tn.ActivationRecorder(model, layers=[1])
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        tn.ActivationRecorder("model")
    with pytest.raises(TypeError, match="select"):
        tn.ActivationRecorder(model, sampling=0.5)
    with pytest.raises(ValueError, match="no leaf module with parameters"):
        tn.ActivationRecorder(nn.ReLU())


def test_conv_outputs_are_channel_position_neurons():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 2, 3, stride=2),
        nn.Flatten(),
        nn.Linear(2 * 3 * 3, 5),
    )
    x = torch.randn(6, 1, 8, 8)
    with tn.ActivationRecorder(model, point="pre") as rec:
        model(x)
    ix = rec.neuron_index()
    assert ix.layers == ("0", "2", "4")
    assert ix.shapes == {"0": (4, 8, 8), "2": (2, 3, 3), "4": (5,)}
    assert ix.sizes == {"0": 256, "2": 18, "4": 5}
    A = rec.activations()
    assert A.shape == (6, 256 + 18 + 5)
    conv0 = model[0](x)
    # Column of channel c, row r, col q is c*64 + r*8 + q.
    c, r, q = 3, 5, 2
    k = c * 64 + r * 8 + q
    torch.testing.assert_close(A[:, ix.columns("0")[k]], conv0[:, c, r, q])
    # Conv units are named by channel and position (issue 10), not by flat index.
    assert ix.labels()[k] == "0[c=3, y=5, x=2]"
    assert ix.kinds == {"0": "units", "2": "units", "4": "features"}
    # Post-activation (the default): conv 0's neurons are the ReLU's outputs.
    with tn.ActivationRecorder(model) as rec:
        model(x)
    torch.testing.assert_close(rec.activations()[:, k], torch.relu(conv0[:, c, r, q]))


def test_importance_sampling_on_a_cnn_uses_positions():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 16, 3))
    with tn.ActivationRecorder(model, sampling=tn.ImportanceSampling(0.05)) as rec:
        model(torch.randn(4, 1, 4, 4))
    # ⌊0.05 · 128⌋ = 6 conv units, the 3 outputs whole.
    assert rec.activations().shape == (4, 6 + 3)


# ----------------------------------------------------------------------------- grad and hooks
def test_activations_carry_gradient_to_the_model():
    model = mnist_mlp()
    x = torch.randn(8, 784, generator=torch.Generator().manual_seed(5))
    with tn.ActivationRecorder(model, layers=["1"], point="pre") as rec:
        model(x)
    rec.activations().sum().backward()
    # d/dW of Σ (xWᵀ + b) is 1ᵀx per output row.
    expected = x.sum(dim=0).expand(450, 784)
    torch.testing.assert_close(model[1].weight.grad, expected)
    assert model[3].weight.grad is None


def test_detach_keeps_no_graph():
    model = mnist_mlp()
    with tn.ActivationRecorder(model, detach=True) as rec:
        model(torch.randn(4, 784))
    assert not rec.activations().requires_grad


def test_hooks_removed_on_exit_and_after_an_exception():
    model = mnist_mlp()
    before = hook_count(model)
    rec = tn.ActivationRecorder(model)
    with rec:
        assert hook_count(model) == before + 4
        assert rec.recording
    assert hook_count(model) == before and not rec.recording
    with pytest.raises(RuntimeError, match="boom"), rec:
        model(torch.randn(2, 784))
        raise RuntimeError("boom")
    assert hook_count(model) == before
    # A bad input inside the forward (shape error from torch) also leaves no hook behind.
    with pytest.raises(RuntimeError), rec:
        model(torch.randn(2, 5))
    assert hook_count(model) == before


def test_entering_again_starts_a_fresh_recording_and_clear_forgets():
    model = mnist_mlp()
    rec = tn.ActivationRecorder(model, detach=True)
    with rec:
        model(torch.randn(4, 784))
        model(torch.randn(4, 784))  # two forwards in one block: batches concatenated
        assert rec.activations().shape == (8, 1010)
        rec.clear()
        model(torch.randn(3, 784))
        assert rec.activations().shape == (3, 1010)
    with rec:
        model(torch.randn(5, 784))
    assert rec.activations().shape == (5, 1010)
    with pytest.raises(RuntimeError, match="already recording"), rec, rec:
        pass


def test_nothing_recorded_is_a_clear_error():
    model = mnist_mlp()
    rec = tn.ActivationRecorder(model)
    with pytest.raises(RuntimeError, match="nothing was recorded"):
        rec.activations()
    with rec:
        pass
    with pytest.raises(RuntimeError, match="nothing was recorded"):
        rec.neuron_index()


def test_module_called_twice_per_forward_is_a_clear_error():
    torch.manual_seed(0)
    model = Shared()
    with tn.ActivationRecorder(model) as rec:
        model(torch.randn(4, 4))
    with pytest.raises(ValueError, match=r"different numbers of examples.*'fc': 2"):
        rec.activations()
    # Recorded on its own, the shared module gives both calls as examples (documented).
    with tn.ActivationRecorder(model, layers=["fc"]) as rec:
        model(torch.randn(4, 4))
    assert rec.activations().shape == (8, 4)


def test_nan_in_a_layer_names_layer_example_and_neuron():
    model = mnist_mlp()
    with torch.no_grad():
        model[3].bias[17] = float("nan")
    with tn.ActivationRecorder(model) as rec:
        model(torch.randn(4, 784))
    with pytest.raises(ValueError, match=r"layer '3' output nan at example 0, neuron 17"):
        rec.activations()


def test_inf_in_a_conv_layer_is_reported():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.Flatten(), nn.Linear(8, 2))
    x = torch.ones(3, 1, 2, 2)
    x[1, 0, 1, 0] = float("inf")
    with tn.ActivationRecorder(model, layers=["0"]) as rec:
        model(x)
    with pytest.raises(ValueError, match=r"layer '0' output (-)?inf at example 1, neuron 2"):
        rec.activations()


def test_non_tensor_output_is_a_clear_error():
    class TupleOut(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            return self.lin(x), x

    class Wrap(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.t = TupleOut()

        def forward(self, x):
            return self.t(x)[0]

    model = Wrap()
    with pytest.raises(TypeError, match=r"layer 't' .* returned tuple"):
        with tn.ActivationRecorder(model, layers=["t"]):
            model(torch.randn(3, 2))
    assert hook_count(model) == 0


def test_dead_neurons_are_recorded_as_constant_columns():
    model = mnist_mlp()
    with torch.no_grad():
        model[1].bias[:50] = -1e3  # 50 dead ReLUs after fc1
    with tn.ActivationRecorder(model, layers=["2", "7"]) as rec:
        model(torch.randn(16, 784, generator=torch.Generator().manual_seed(6)))
    A = rec.activations()
    np.testing.assert_array_equal(tn.constant_neurons(A.detach()), np.arange(50))
    # Importance sampling ranks them last: with p = 0.5 none is chosen.
    with tn.ActivationRecorder(model, layers=["2", "7"], sampling=tn.ImportanceSampling(0.5)) as r:
        model(torch.randn(16, 784, generator=torch.Generator().manual_seed(6)))
    assert r.neuron_index().neuron[:225].min() >= 50


def test_labels_and_columns():
    ix = tn.NeuronIndex(("a", "b"), np.array([0, 1, 1]), np.array([4, 0, 2]), {"a": 5, "b": 3})
    assert ix.labels() == ["a[4]", "b[0]", "b[2]"]
    np.testing.assert_array_equal(ix.columns("b"), [1, 2])
    with pytest.raises(
        ValueError, match=r"layer 'c' was not recorded; recorded layers: \('a', 'b'\)"
    ):
        ix.columns("c")


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(1, 40),
    p=st.floats(0.01, 1.0, allow_nan=False),
)
def test_importance_selection_dominates_the_rest(seed, n, p):
    """Every kept neuron is at least as active as every dropped one; the count is documented."""
    rng = np.random.default_rng(seed)
    a = torch.from_numpy(rng.standard_normal((6, n)) * rng.uniform(0, 3, n))
    sel = tn.ImportanceSampling(p).select({"h": a, "o": a[:, :1]}, "o")["h"].numpy()
    assert sel.size == min(n, max(1, math.floor(p * n + 1e-9)))
    assert np.all(np.diff(sel) > 0)
    score = a.abs().mean(dim=0).numpy()
    dropped = np.setdiff1d(np.arange(n), sel)
    if dropped.size:
        assert score[sel].min() >= score[dropped].max()


def test_random_selection_is_consistent_within_one_recording():
    model = mnist_mlp()
    rec = tn.ActivationRecorder(model, sampling=tn.RandomSampling(0.05, seed=3), detach=True)
    x = torch.randn(8, 784, generator=torch.Generator().manual_seed(9))
    with rec:
        model(x)
    sel = rec.selection()
    A = rec.activations()
    ix = rec.neuron_index()
    assert all(torch.equal(sel[k], v) for k, v in rec.selection().items())
    with tn.ActivationRecorder(model, detach=True) as full:
        model(x)
    cols = np.concatenate([full.neuron_index().columns(k)[v.numpy()] for k, v in sel.items()])
    torch.testing.assert_close(A, full.activations()[:, cols])
    np.testing.assert_array_equal(ix.neuron, np.concatenate([v.numpy() for v in sel.values()]))
    with rec:
        model(x)
    assert any(not torch.equal(sel[k], v) for k, v in rec.selection().items())  # new draw


def test_output_modified_in_place_is_a_clear_error():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(inplace=True), nn.Linear(6, 2))
    x = torch.randn(8, 4)
    for detach in (False, True):
        with tn.ActivationRecorder(model, detach=detach, point="pre") as rec:
            model(x)
        with pytest.raises(ValueError, match=r"layer '0' output was modified in place"):
            rec.activations()
    # Recording the in-place module itself gives the post-ReLU values, checked by hand.
    with tn.ActivationRecorder(model, layers=["1", "2"]) as rec:
        model(x)
    expected = torch.relu(x @ model[0].weight.T + model[0].bias)
    torch.testing.assert_close(rec.per_layer()["1"], expected)
