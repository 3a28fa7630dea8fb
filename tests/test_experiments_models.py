"""The registry of networks: widths, dropout, CNN, recorded neurons, errors."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

import topo_neurons as tn
from topo_neurons.experiments.models import MODELS, make_model


def _linear_widths(model):
    return [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize(
    ("name", "hidden"),
    [
        ("trapezium", [450, 350, 200]),
        ("trapezium_dropout", [450, 350, 200]),
        ("deep_trapezium", [300, 250, 200, 150, 100]),
    ],
)
def test_mlp_widths_follow_the_paper(name, hidden):
    model = make_model(name, 64, 10)
    widths = [64, *hidden, 10]
    assert _linear_widths(model) == list(itertools.pairwise(widths))
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == sum(a * b + b for a, b in itertools.pairwise(widths))
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    if name == "trapezium_dropout":
        assert len(drops) == 3 and all(d.p == 0.5 for d in drops)
    else:
        assert drops == []


def test_mlp_flattens_any_input_shape_and_records_every_layer():
    torch.manual_seed(0)
    model = make_model("trapezium", (1, 8, 8), 10)
    x = torch.randn(32, 1, 8, 8)
    with tn.ActivationRecorder(model) as rec:
        out = model(x)
    assert out.shape == (32, 10)
    assert rec.activations().shape == (32, 450 + 350 + 200 + 10)  # 1009 deaths in the paper's T1
    assert [n.split(".")[-1] for n in rec.neuron_index().layers] == ["fc1", "fc2", "fc3", "out"]
    # the first layer sees the flattened image; its neurons are its post-ReLU values (default)
    lin = model.net.fc1
    torch.testing.assert_close(
        rec.per_layer()[rec.neuron_index().layers[0]],
        torch.relu(x.reshape(32, -1) @ lin.weight.T + lin.bias),
    )


def test_dropout_active_in_train_mode_only():
    torch.manual_seed(0)
    model = make_model("trapezium_dropout", 20, 3)
    x = torch.randn(16, 20)
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    assert not torch.allclose(model(x), model(x))


def test_cnn_on_images():
    torch.manual_seed(0)
    model = make_model("cnn", (3, 32, 32), 10)
    x = torch.randn(4, 3, 32, 32)
    with tn.ActivationRecorder(model) as rec:
        out = model(x)
    assert out.shape == (4, 10)
    # conv1 16·32·32, conv2 32·16·16, fc1 64, out 10 neurons
    assert list(rec.neuron_index().sizes.values()) == [16 * 32 * 32, 32 * 16 * 16, 64, 10]
    assert make_model("cnn", (1, 8, 8), 10)(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_seeded_construction_is_reproducible():
    torch.manual_seed(5)
    a = make_model("deep_trapezium", 30, 2)
    torch.manual_seed(5)
    b = make_model("deep_trapezium", 30, 2)
    assert len(list(a.parameters())) == len(list(b.parameters())) == 12  # 6 layers
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("resnet", 64, 10), r"unknown model 'resnet'; valid models are trapezium, "),
        (("cnn", 64, 10), r"model 'cnn' needs image inputs.*use an MLP: trapezium"),
        (("trapezium", 64, 0), r"out_features must be a positive int; got 0"),
        (("trapezium", (0,), 3), r"in_features must be positive"),
    ],
)
def test_errors(args, match):
    with pytest.raises(ValueError, match=match):
        make_model(*args)


def test_registry_names():
    assert set(MODELS) == {"trapezium", "trapezium_dropout", "deep_trapezium", "cnn"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("trapezium", ["net.relu1", "net.relu2", "net.relu3", "net.out"]),
        ("trapezium_dropout", ["net.relu1", "net.relu2", "net.relu3", "net.out"]),
        ("deep_trapezium", [f"net.relu{i}" for i in range(1, 6)] + ["net.out"]),
    ],
)
def test_neuron_layers_are_the_relus_and_the_logits(name, expected):
    """The paper's neurons: each hidden layer after its ReLU (what the next layer sees) and the
    logits; recorded by name, they equal the ReLU outputs computed by hand."""
    import topo_neurons as tn
    from topo_neurons.experiments.models import neuron_layers

    torch.manual_seed(0)
    model = make_model(name, 784, 10).eval()
    assert neuron_layers(model) == expected
    x = torch.rand(300, 784)
    with tn.ActivationRecorder(model, layers=expected, detach=True) as rec, torch.no_grad():
        out = model(x)
    h, cols = x, []
    for layer in model.net:
        h = layer(h)
        if isinstance(layer, nn.ReLU):
            cols.append(h)
    torch.testing.assert_close(rec.activations(), torch.cat([*cols, out], dim=1))


def test_keras_init_is_glorot_uniform_with_zero_biases():
    from topo_neurons.experiments.models import keras_init_

    torch.manual_seed(0)
    model = keras_init_(make_model("trapezium", 784, 10))
    for lin in [m for m in model.modules() if isinstance(m, nn.Linear)]:
        fan_out, fan_in = lin.weight.shape
        bound = (6 / (fan_in + fan_out)) ** 0.5
        w = lin.weight.detach()
        assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
        # uniform on [-bound, bound]: variance bound² / 3
        assert w.var().item() == pytest.approx(bound**2 / 3, rel=0.05)
        assert torch.count_nonzero(lin.bias) == 0
