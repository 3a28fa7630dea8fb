"""Which values are a layer's neurons (point=) and where the examples are (positions=, batch_dim=,
mask=): post-activation recording, conv channels and transformer tokens (issues 8, 10, 11)."""

from __future__ import annotations

import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import topo_neurons as tn


def _mlp(seed: int = 0, inplace: bool = False) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(6, 12), nn.ReLU(inplace), nn.Linear(12, 9), nn.ReLU(inplace), nn.Linear(9, 4)
    )


class FunctionalTwin(nn.Module):
    """The same network as :func:`_mlp` with its ReLUs applied functionally, in three spellings."""

    def __init__(self, seq: nn.Sequential, spelling: str) -> None:
        super().__init__()
        self.fc1, self.fc2, self.out = seq[0], seq[2], seq[4]
        self.spelling = spelling

    def act(self, h: torch.Tensor) -> torch.Tensor:
        if self.spelling == "F.relu":
            return F.relu(h)
        if self.spelling == "torch.relu":
            return torch.relu(h)
        if self.spelling == "method":
            return h.relu()
        return F.relu(h, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.fc2(self.act(self.fc1(x)))))


class Untraceable(nn.Module):
    """A forward with data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 8)
        self.out = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc(x))
        if h.sum() > 0:
            h = h * 1.0
        return self.out(h)


def _x(m: int = 40, n: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.randn(m, n, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- point (issue 8)
def test_hidden_columns_equal_the_relu_outputs():
    model = _mlp()
    x = _x()
    with tn.ActivationRecorder(model) as rec:
        out = model(x)
    h1 = torch.relu(x @ model[0].weight.T + model[0].bias)
    h2 = torch.relu(h1 @ model[2].weight.T + model[2].bias)
    torch.testing.assert_close(rec.activations(), torch.cat([h1, h2, out], dim=1))
    assert rec.neuron_index().layers == ("0", "2", "4")  # named by their Linear layer
    assert rec.record_points == {"0": "1 (ReLU)", "2": "3 (ReLU)", "4": "4 (Linear)"}


@pytest.mark.parametrize("spelling", ["F.relu", "torch.relu", "method", "F.relu(inplace)"])
def test_functional_relu_gives_the_same_columns_as_its_module_twin(spelling):
    model = _mlp()
    twin = FunctionalTwin(model, spelling)
    x = _x()
    with tn.ActivationRecorder(model) as rec:
        model(x)
    with tn.ActivationRecorder(twin) as rec_twin:
        twin(x)
    torch.testing.assert_close(rec_twin.activations(), rec.activations())
    assert rec_twin.neuron_index().layers == ("fc1", "fc2", "out")
    # Gradients through the functional path equal those through the module path.
    (g,) = torch.autograd.grad(rec.activations().square().sum(), model[0].weight)
    (g_twin,) = torch.autograd.grad(rec_twin.activations().square().sum(), twin.fc1.weight)
    torch.testing.assert_close(g_twin, g)


def test_point_pre_records_the_layer_outputs():
    model = _mlp()
    x = _x()
    with tn.ActivationRecorder(model, point="pre") as rec:
        out = model(x)
    h1 = x @ model[0].weight.T + model[0].bias
    h2 = torch.relu(h1) @ model[2].weight.T + model[2].bias
    torch.testing.assert_close(rec.activations(), torch.cat([h1, h2, out], dim=1))
    assert float(rec.activations().detach()[:, :12].min()) < 0  # really before the ReLU
    with pytest.raises(ValueError, match=r"point='middle' is not valid; valid options are"):
        tn.ActivationRecorder(model, point="middle")


def test_inplace_relu_works_with_the_post_default():
    model = _mlp(inplace=True)
    x = _x()
    with tn.ActivationRecorder(model) as rec:
        model(x)
    h1 = torch.relu(x @ model[0].weight.T + model[0].bias)
    torch.testing.assert_close(rec.per_layer()["0"], h1)


def test_post_looks_past_normalisation_and_dropout_but_records_before_a_later_dropout():
    torch.manual_seed(0)
    model = nn.Sequential(
        OrderedDict(
            [
                ("fc", nn.Linear(5, 8)),
                ("bn", nn.BatchNorm1d(8)),
                ("act", nn.LeakyReLU(0.1)),
                ("drop", nn.Dropout(0.5)),
                ("out", nn.Linear(8, 3)),
            ]
        )
    ).train()
    x = _x(32, 5)
    seen = {}
    model.out.register_forward_pre_hook(lambda m, a: seen.setdefault("in", a[0].detach()))
    with tn.ActivationRecorder(model) as rec:
        model(x)
    assert rec.record_points["fc"] == "act (LeakyReLU)"
    h = model.fc(x)
    bn = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + model.bn.eps)
    expected = F.leaky_relu(bn * model.bn.weight + model.bn.bias, 0.1)
    torch.testing.assert_close(rec.per_layer()["fc"], expected)
    # What the next layer saw had dropout applied; the recorded neurons do not.
    assert bool((seen["in"] == 0).any()) and not bool((rec.per_layer()["fc"] == 0).any())


def test_functional_activation_arguments_and_shared_activation_module():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.c = nn.Linear(4, 6), nn.Linear(6, 5), nn.Linear(5, 2)
            self.act = nn.Tanh()  # one module used after two layers

        def forward(self, x):
            h = F.leaky_relu(self.a(x), negative_slope=0.3)
            h = self.act(self.b(self.act(h)))
            return self.c(h)

    torch.manual_seed(0)
    net = Net()
    x = _x(20, 4)
    with tn.ActivationRecorder(net) as rec:
        net(x)
    ha = F.leaky_relu(net.a(x), 0.3)
    hb = torch.tanh(net.b(torch.tanh(ha)))
    per = rec.per_layer()
    torch.testing.assert_close(per["a"], ha)
    torch.testing.assert_close(per["b"], hb)


@pytest.mark.parametrize("functional", [False, True])
def test_shared_in_place_activation_keeps_values_and_gradients(functional):
    """A shared LeakyReLU(inplace=True) (its backward needs its input) after two BatchNorms."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.bn_a = nn.Linear(4, 6), nn.BatchNorm1d(6)
            self.b, self.bn_b = nn.Linear(6, 5), nn.BatchNorm1d(5)
            self.act = nn.LeakyReLU(0.2, inplace=True)
            self.out = nn.Linear(5, 2)

        def act_(self, h):
            return F.leaky_relu(h, 0.2, inplace=True) if functional else self.act(h)

        def forward(self, x):
            return self.out(self.act_(self.bn_b(self.b(self.act_(self.bn_a(self.a(x)))))))

    torch.manual_seed(0)
    net = Net().double()
    x = _x(30, 4).double()
    with tn.ActivationRecorder(net) as rec:
        net(x)
    A = rec.activations()
    ha = F.leaky_relu(net.bn_a(net.a(x)), 0.2)
    hb = F.leaky_relu(net.bn_b(net.b(ha)), 0.2)
    ref = torch.cat([ha, hb, net.out(hb)], dim=1)
    torch.testing.assert_close(A, ref)
    (g,) = torch.autograd.grad(A.square().sum(), net.a.weight)
    (g_ref,) = torch.autograd.grad(ref.square().sum(), net.a.weight)
    torch.testing.assert_close(g, g_ref)


def test_untraceable_forward_falls_back_to_the_layer_output_and_warns_once_naming_the_layer():
    torch.manual_seed(0)
    model = Untraceable()
    x = _x(20, 4)
    with pytest.warns(UserWarning) as caught:
        rec = tn.ActivationRecorder(model)
    assert len(caught) == 1  # one warning naming every such layer
    assert "cannot see which activation follows layers 'fc' (Linear), 'out' (Linear)" in str(
        caught[0].message
    )
    assert "torch.fx cannot trace the model (Untraceable)" in str(caught[0].message)
    with rec:
        model(x)
    torch.testing.assert_close(rec.per_layer()["fc"], model.fc(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tn.ActivationRecorder(model)  # once per model and layer
        tn.ActivationRecorder(model, point="pre")


# ----------------------------------------------------------------------------- positions
def test_conv_channels_as_neurons_equal_corrcoef_over_all_pixels():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 5, 3, padding=1), nn.ReLU(), nn.Conv2d(5, 3, 3))
    x = torch.randn(7, 2, 6, 6, generator=torch.Generator().manual_seed(3))
    with tn.ActivationRecorder(model, layers=["0"], positions="examples", detach=True) as rec:
        model(x)
    A = rec.activations()
    assert A.shape == (7 * 6 * 6, 5)  # m·H·W examples, C neurons
    h = torch.relu(model[0](x)).detach().numpy()
    channels = h.transpose(1, 0, 2, 3).reshape(5, -1)  # each channel over every pixel
    np.testing.assert_allclose(
        np.corrcoef(A.numpy(), rowvar=False), np.corrcoef(channels), rtol=1e-5, atol=1e-6
    )
    ix = rec.neuron_index()
    assert ix.labels() == [f"0[c={c}]" for c in range(5)] and ix.shapes == {"0": (5,)}
    # By unit (the default for convs, the paper's CNN choice): C·H·W neurons, m examples.
    with tn.ActivationRecorder(model, layers=["0"], detach=True) as rec:
        model(x)
    assert rec.activations().shape == (7, 5 * 36)
    assert rec.neuron_index().labels()[2 * 36 + 1 * 6 + 4] == "0[c=2, y=1, x=4]"


def test_sequence_outputs_make_every_token_an_example():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8))
    x = torch.randn(4, 5, 8)
    with tn.ActivationRecorder(model) as rec:
        out = model(x)
    A = rec.activations()
    assert A.shape == (20, 24)
    torch.testing.assert_close(A[:, 16:], out.reshape(20, 8))  # row = batch·5 + token
    torch.testing.assert_close(A[:, :16], F.gelu(model[0](x)).reshape(20, 16))
    assert rec.neuron_index().labels()[17] == "2[1]"
    with tn.ActivationRecorder(model, positions="neurons") as rec:
        model(x)
    assert rec.activations().shape == (4, 5 * 24)
    assert rec.neuron_index().labels()[17] == "0[1, 1]"  # token 1, feature 1


def test_layers_with_different_numbers_of_examples_are_a_clear_error():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 16, 2))
    with tn.ActivationRecorder(model, positions="examples") as rec:
        model(torch.randn(5, 1, 6, 6))
    with pytest.raises(ValueError, match=r"different numbers of examples \{'0': 80, '3': 5\}"):
        rec.activations()


def test_as_many_neurons_as_examples_warns_once_naming_m_and_n():
    model = _mlp()
    rec = tn.ActivationRecorder(model)
    with rec:
        model(_x(5))
    with pytest.warns(UserWarning, match=r"5 examples for 25 neurons.*drop_last=True"):
        rec.activations()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec.activations()  # once per recorder
        with tn.ActivationRecorder(model) as ok:
            model(_x(26))
        ok.activations()  # m > n: silent


def test_bad_options_are_clear_errors():
    model = _mlp()
    with pytest.raises(ValueError, match=r"positions='pixels' is not valid"):
        tn.ActivationRecorder(model, positions="pixels")
    with pytest.raises(ValueError, match=r"batch_dim names layers \['nope'\]"):
        tn.ActivationRecorder(model, batch_dim={"nope": 1})
    with pytest.raises(ValueError, match=r"batch_dim for layer '0' must be an axis index"):
        tn.ActivationRecorder(model, batch_dim=-1)
    with pytest.raises(TypeError, match=r"mask must be boolean or 0/1 integers"):
        tn.ActivationRecorder(model, mask=torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"values other than 0 and 1"):
        tn.ActivationRecorder(model, mask=torch.tensor([[0, 2]]))
    rec = tn.ActivationRecorder(model, mask=torch.ones(40, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask of shape \(40, 3\) does not match the positions"):
        with rec:
            model(_x())


# ----------------------------------------------------------------------------- transformers
def _ff_reference(layer: nn.TransformerEncoderLayer, src: torch.Tensor, pad=None) -> torch.Tensor:
    """relu(linear1(·)) of a post-norm encoder layer, built from its pieces without hooks."""
    h = layer.norm1(src + layer._sa_block(src, None, pad))
    return torch.relu(layer.linear1(h))


def test_transformer_encoder_layer_tokens_are_examples_and_padding_is_dropped():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(32, 2, 48, dropout=0.0, batch_first=True).eval()
    src = torch.randn(16, 10, 32, generator=torch.Generator().manual_seed(2))
    rec = tn.ActivationRecorder(layer)
    assert rec.record_points == {"linear1": "linear1 (Linear) → relu"}  # the MLP's hidden layer
    with torch.no_grad(), rec:
        layer(src)
    A = rec.activations()
    assert A.shape == (160, 48)
    with torch.no_grad():
        torch.testing.assert_close(A, _ff_reference(layer, src).reshape(160, 48))
    keep = torch.ones(16, 10, dtype=torch.bool)
    keep[:, -3:] = False  # 3 padded tokens per sequence
    with torch.no_grad(), tn.ActivationRecorder(layer, mask=keep) as rec:
        layer(src, src_key_padding_mask=~keep)
    A = rec.activations()
    assert A.shape == (112, 48)
    with torch.no_grad():
        ref = _ff_reference(layer, src, pad=~keep)[keep]
    torch.testing.assert_close(A, ref)


def test_transformer_encoder_layer_is_regularised_on_its_mlp_tokens():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, 24, dropout=0.0, batch_first=True).double()
    src = torch.randn(6, 9, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    reg = tn.Regularized(layer, tn.TopologicalRedundancy(reduction="mean"), weight=0.5)
    _, penalty = reg(src)
    (g,) = torch.autograd.grad(penalty, layer.linear1.weight)
    # Independent: the MLP's hidden tokens built from the layer's pieces, then the loss.
    expected = 0.5 * tn.TopologicalRedundancy(reduction="mean")(
        _ff_reference(layer, src).reshape(54, 24)
    )
    (g_ref,) = torch.autograd.grad(expected, layer.linear1.weight)
    torch.testing.assert_close(penalty, expected)
    torch.testing.assert_close(g, g_ref)
    assert float(g.abs().sum()) > 0


def test_batch_first_false_needs_an_explicit_batch_axis():
    torch.manual_seed(0)
    seq_first = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(32, 2, 48, dropout=0.0), 2, enable_nested_tensor=False
    ).eval()
    with pytest.raises(ValueError, match=r"batch_first=False.*pass batch_dim=1"):
        tn.ActivationRecorder(seq_first)
    batch_first = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(32, 2, 48, dropout=0.0, batch_first=True),
        2,
        enable_nested_tensor=False,
    ).eval()
    batch_first.load_state_dict(seq_first.state_dict())
    src = torch.randn(16, 10, 32)
    with torch.no_grad(), tn.ActivationRecorder(seq_first, batch_dim=1) as rec:
        seq_first(src.transpose(0, 1))
    with torch.no_grad(), tn.ActivationRecorder(batch_first) as ref:
        batch_first(src)
    assert rec.activations().shape == (160, 96)
    torch.testing.assert_close(rec.activations(), ref.activations())  # same rows, same order


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_recording_on_cuda_keeps_the_device_and_takes_a_host_mask():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(32, 2, 48, dropout=0.0, batch_first=True).eval()
    src = torch.randn(16, 10, 32)
    keep = torch.ones(16, 10, dtype=torch.bool)
    keep[:, -3:] = False
    with torch.no_grad(), tn.ActivationRecorder(layer, mask=keep) as ref:
        layer(src)
    gpu = layer.to("cuda")
    with torch.no_grad(), tn.ActivationRecorder(gpu, mask=keep) as rec:  # mask stays on host
        gpu(src.cuda())
    A = rec.activations()
    assert A.device.type == "cuda" and A.shape == (112, 48)
    torch.testing.assert_close(A.cpu(), ref.activations(), rtol=1e-4, atol=1e-4)


def _tiny_bert():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=100,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return BertModel(config)


def test_hugging_face_bert_records_the_mlp_hidden_activation_by_token():
    bert = _tiny_bert().eval()
    ids = torch.randint(0, 100, (16, 10), generator=torch.Generator().manual_seed(0))
    keep = torch.ones(16, 10, dtype=torch.long)
    keep[:, -3:] = 0
    rec = tn.ActivationRecorder(bert, mask="attention_mask")
    names = ("encoder.layer.0.intermediate.dense", "encoder.layer.1.intermediate.dense")
    assert tuple(rec.record_points) == names
    # Independent reference: the output of each BertIntermediate block (dense → GELU).
    seen = []
    hooks = [blk.intermediate.register_forward_hook(lambda m, i, o: seen.append(o)) for blk in
             bert.encoder.layer]  # fmt: skip
    try:
        with torch.no_grad(), rec:
            bert(ids, attention_mask=keep)
    finally:
        for h in hooks:
            h.remove()
    A = rec.activations()
    assert A.shape == (112, 128)
    ref = torch.cat([o[keep.bool()] for o in seen], dim=1)
    torch.testing.assert_close(A, ref)
    assert rec.neuron_index().labels()[64] == "encoder.layer.1.intermediate.dense[0]"


def test_hugging_face_bert_can_be_analysed_and_regularised():
    bert = _tiny_bert()
    ids = torch.randint(0, 100, (24, 10), generator=torch.Generator().manual_seed(1))
    report = tn.analyse(bert, ids, batch_size=12)
    assert report.n_examples == 240 and report.barcode.n_points == 128
    reg = tn.Regularized(bert, tn.TopologicalRedundancy(reduction="mean"), mask="attention_mask")
    keep = torch.ones(24, 10, dtype=torch.long)
    keep[:, 7:] = 0
    _, penalty = reg(ids, attention_mask=keep)
    penalty.backward()
    grad = bert.encoder.layer[0].intermediate.dense.weight.grad
    assert grad is not None and float(grad.abs().sum()) > 0
    assert bert.encoder.layer[0].attention.self.query.weight.grad is not None  # upstream too


def test_analyse_takes_hugging_face_style_batches_and_their_attention_mask():
    bert = _tiny_bert()
    gen = torch.Generator().manual_seed(3)
    batches = []
    for _ in range(3):
        keep = torch.ones(8, 10, dtype=torch.long)
        keep[:, 6 + int(torch.randint(0, 4, (), generator=gen)) :] = 0
        batches.append({"input_ids": torch.randint(0, 100, (8, 10), generator=gen),
                        "attention_mask": keep})  # fmt: skip
    report = tn.analyse(bert, batches, mask="attention_mask")
    assert report.n_examples == sum(int(b["attention_mask"].sum()) for b in batches)
    with torch.no_grad(), tn.ActivationRecorder(bert, mask="attention_mask", detach=True) as rec:
        for b in batches:
            bert(**b)
    ref = tn.zero_persistence(tn.correlation_dissimilarity(rec.activations().double()))
    np.testing.assert_allclose(report.barcode.deaths, ref.deaths, atol=1e-6)


def test_hugging_face_gpt2_records_the_mlp_activation():
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(0)
    config = GPT2Config(n_embd=32, n_layer=2, n_head=2, n_inner=64, vocab_size=100,
                        n_positions=16, eos_token_id=0, bos_token_id=0)  # fmt: skip
    gpt = GPT2Model(config).eval()
    rec = tn.ActivationRecorder(gpt, detach=True)
    assert rec.record_points == {
        f"h.{i}.mlp.c_fc": f"h.{i}.mlp.act (NewGELUActivation)" for i in range(2)
    }
    seen = []
    hook = gpt.h[1].mlp.act.register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        with torch.no_grad(), rec:
            gpt(torch.randint(0, 100, (12, 10), generator=torch.Generator().manual_seed(0)))
    finally:
        hook.remove()
    assert rec.activations().shape == (120, 128)
    torch.testing.assert_close(rec.per_layer()["h.1.mlp.c_fc"], seen[0].reshape(120, 64))


# ----------------------------------------------------------------------------- CLI
def test_cli_analyse_point_and_positions(tmp_path):
    from demo_models import digits_mlp, digits_standardized

    from topo_neurons.cli import main

    factory = f"{Path(__file__).resolve().parents[1] / 'examples' / 'demo_models.py'}:digits_mlp"
    X, _ = digits_standardized()
    np.save(tmp_path / "x.npy", X[:300])
    torch.manual_seed(0)
    model = digits_mlp()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    for point in ("post", "pre"):
        out = tmp_path / point
        args = ["analyse", "--model", factory, "--weights", str(tmp_path / "w.pt"), "--data",
                str(tmp_path / "x.npy"), "--quiet", "--point", point, "--positions", "neurons",
                "--out", str(out)]  # fmt: skip
        assert main(args) == 0
        report = tn.RedundancyReport.from_json(out / "report.json")
        expected = tn.analyse(model, X[:300], point=point)
        np.testing.assert_allclose(report.barcode.deaths, expected.barcode.deaths, atol=1e-6)
    with pytest.raises(SystemExit):
        main([*args[:-1], "--point", "middle", str(tmp_path / "bad")])


# ----------------------------------------------------------------------------- properties
@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(1, 5), min_size=2, max_size=4).map(tuple),
    m=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_unit_labels_and_channel_rows_follow_the_layout(shape, m, seed):
    """A conv unit's label gives back its flat index; by channel, row k is (example, pixel)."""
    conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[len(shape) - 2]
    c = shape[0]
    layer = conv(1, c, 1)
    x = torch.randn(m, 1, *shape[1:], generator=torch.Generator().manual_seed(seed))
    with tn.ActivationRecorder(layer, point="pre", detach=True) as rec:
        y = layer(x)
    labels = rec.neuron_index().labels()
    assert len(labels) == int(np.prod(shape))
    axes = ("c", *("z", "y", "x")[3 - (len(shape) - 1) :])
    for flat in {0, len(labels) - 1, seed % len(labels)}:
        parsed = dict(p.split("=") for p in labels[flat].split("[", 1)[1][:-1].split(", "))
        assert tuple(parsed) == axes
        assert np.ravel_multi_index([int(v) for v in parsed.values()], shape) == flat
    with tn.ActivationRecorder(layer, point="pre", positions="examples", detach=True) as rec:
        layer(x)
    A = rec.activations()
    assert A.shape == (m * int(np.prod(shape[1:])), c)
    torch.testing.assert_close(A, y.movedim(1, -1).reshape(-1, c))
