"""Issue 16 (trust), the recording side: no silently ignored option, errors that say where.

Each test is named after the item it guards; each fails on the code before the fix (noted).
"""

from __future__ import annotations

import warnings
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

import topo_neurons as tn

transformers = pytest.importorskip("transformers", reason="transformers is a dev dependency")


def _tiny_bert():
    torch.manual_seed(0)
    config = transformers.BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=100,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return transformers.BertModel(config).eval()


def _hf_batches(n_batches: int = 2, m: int = 16, seq: int = 20, kept: int = 10):
    gen = torch.Generator().manual_seed(3)
    keep = torch.zeros(m, seq, dtype=torch.long)
    keep[:, :kept] = 1
    return [
        {"input_ids": torch.randint(0, 100, (m, seq), generator=gen), "attention_mask": keep}
        for _ in range(n_batches)
    ]


def _mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        OrderedDict(fc1=nn.Linear(4, 12), act1=nn.ReLU(), fc2=nn.Linear(12, 8), act2=nn.Tanh(),
                    out=nn.Linear(8, 3))
    )  # fmt: skip


# ----------------------------------------------------------------------------- 1. mask names
def test_mask_name_not_among_kwargs_is_an_error():
    """Before: mask="attn_mask" was ignored and the padded tokens counted (640, not 320)."""
    bert = _tiny_bert()
    batches = _hf_batches()
    # The right name drops the padding: 2 batches × 16 sequences × 10 kept tokens.
    assert tn.analyse(bert, batches, mask="attention_mask").n_examples == 320

    with pytest.raises(ValueError, match=r"mask='attn_mask'.*\['attention_mask', 'input_ids'\]"):
        with torch.no_grad(), tn.ActivationRecorder(bert, mask="attn_mask"):
            bert(**batches[0])
    with pytest.raises(ValueError, match=r"mask='attn_mask'.*attention_mask"):
        tn.analyse(bert, batches, mask="attn_mask")
    reg = tn.Regularized(bert, tn.TopologicalRedundancy(reduction="mean"), mask="attn_mask")
    with pytest.raises(ValueError, match=r"mask='attn_mask'.*attention_mask"):
        reg(**batches[0])
    # Only a layer called, never the model's forward: the keyword cannot be read; said so.
    rec = tn.ActivationRecorder(bert, mask="attention_mask")
    with pytest.raises(ValueError, match="the mask could not be read"), torch.no_grad(), rec:
        bert.encoder.layer[0](bert.embeddings(batches[0]["input_ids"]))
    # A positional call has no keyword arguments at all: said so, not ignored.
    rec = tn.ActivationRecorder(bert, mask="attention_mask")
    with pytest.raises(ValueError, match="keyword arguments are none"), torch.no_grad(), rec:
        bert(batches[0]["input_ids"])


# ----------------------------------------------------------------------------- 2. NaN index
def test_nan_error_names_the_example_index_in_the_data_set():
    """Before: a NaN in example 37 of batches of 16 was reported as "example 5"."""
    model = _mlp()
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    x[37, 2] = float("nan")
    with pytest.raises(tn.NonFiniteActivationsError, match=r"example 37 of the data set \(in "
                       r"batch 2, counting from 0\)") as err:  # fmt: skip
        tn.analyse(model, x, batch_size=16)
    assert err.value.example == 37 and err.value.layer == "fc1"
    # The same through a DataLoader of uneven batches (10, 10, 10, 10, …): batch 3.
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=10)
    with pytest.raises(tn.NonFiniteActivationsError, match=r"example 37 .*batch 3") as err:
        tn.analyse(model, loader)
    assert err.value.example == 37

    # Tokens as examples, padding dropped by a mask: the example and its position are named.
    seq = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5))
    xs = torch.randn(40, 7, 4, generator=torch.Generator().manual_seed(1))
    keep = torch.ones(40, 7, dtype=torch.bool)
    keep[:, 0] = False  # the first token of every sequence is padding
    keep[30:, 5:] = False
    xs[33, 4, 1] = float("nan")
    with pytest.raises(tn.NonFiniteActivationsError, match=r"example 33 .*batch 2.*position "
                       r"\(4,\)") as err:  # fmt: skip
        tn.analyse(seq, xs, batch_size=16, mask=keep)
    assert err.value.example == 33
    # The recorder alone: the example counted over the forwards of its `with` block.
    with tn.ActivationRecorder(model, detach=True) as rec:
        model(x[:32])
        model(x[32:])
    with pytest.raises(tn.NonFiniteActivationsError, match="at example 37, neuron") as err:
        rec.activations()
    assert err.value.example == 37


# ----------------------------------------------------------------------------- 3. torch.compile
def _counting_backend(compiled: list[int]):
    def backend(gm, example_inputs):
        compiled.append(1)
        return gm.forward

    return backend


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_compiled_model_records_like_the_original(backend):
    """Before: hooks added after compilation never fired ("nothing was recorded"), and
    torch.compile(Regularized(...)) failed ("modified in place … ReLU(inplace=True)")."""
    torch._dynamo.reset()
    model = _mlp()
    x = torch.randn(48, 4, generator=torch.Generator().manual_seed(2))
    with tn.ActivationRecorder(model) as ref:
        model(x)
    compiled = torch.compile(model, backend=backend)
    compiled(x[:5])  # compiled before any hook exists: the case that failed
    with tn.ActivationRecorder(compiled) as rec:
        out = compiled(x)
    assert rec.record_points == ref.record_points  # the original's names, no "_orig_mod."
    torch.testing.assert_close(rec.activations(), ref.activations())
    torch.testing.assert_close(out, model(x))

    data = torch.randn(300, 4, generator=torch.Generator().manual_seed(3))
    a, b = tn.analyse(model, data, batch_size=100), tn.analyse(compiled, data, batch_size=100)
    np.testing.assert_allclose(a.barcode.deaths, b.barcode.deaths, rtol=1e-6, atol=1e-9)

    t1 = tn.TopologicalRedundancy(reduction="mean")
    _, p_ref = tn.Regularized(model, t1)(x)
    (g_ref,) = torch.autograd.grad(p_ref, model.fc1.weight)
    for wrapped in (tn.Regularized(compiled, t1),
                    torch.compile(tn.Regularized(model, t1), backend=backend)):  # fmt: skip
        _, p = wrapped(x)
        torch.testing.assert_close(p, p_ref)
        (g,) = torch.autograd.grad(p, model.fc1.weight)
        torch.testing.assert_close(g, g_ref)


def test_compiled_model_runs_compiled_again_after_recording():
    """Eager only inside `with`: a new input shape compiles outside, not inside."""
    torch._dynamo.reset()
    model = _mlp()
    calls: list[int] = []
    compiled = torch.compile(model, backend=_counting_backend(calls), dynamic=False)
    compiled(torch.randn(8, 4))
    assert len(calls) == 1
    with tn.ActivationRecorder(compiled) as rec:
        compiled(torch.randn(30, 4))  # a new shape: would recompile, but runs eagerly
    assert len(calls) == 1 and rec.activations().shape == (30, 23)
    compiled(torch.randn(30, 4))
    assert len(calls) == 2  # compiled again once the recorder is gone


def test_compiled_model_records_like_the_original_with_inductor():
    """The default backend (inductor) too: recorded activations and penalties agree."""
    torch._dynamo.reset()
    model = _mlp()
    x = torch.randn(48, 4, generator=torch.Generator().manual_seed(4))
    compiled = torch.compile(model)
    compiled(x)
    with tn.ActivationRecorder(model) as ref:
        model(x)
    with tn.ActivationRecorder(compiled) as rec:
        compiled(x)
    torch.testing.assert_close(rec.activations(), ref.activations())
    t1 = tn.TopologicalRedundancy()
    torch.testing.assert_close(
        torch.compile(tn.Regularized(model, t1))(x).penalty, tn.Regularized(model, t1)(x).penalty
    )


# ----------------------------------------------------------------------------- 5. tuples, ALBERT
def _tiny_albert(layers: int = 3):
    torch.manual_seed(0)
    config = transformers.AlbertConfig(
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=100,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return transformers.AlbertModel(config)


def test_albert_shared_block_records_each_call_as_its_own_layer():
    """Before: the defaults fell back to every leaf (embeddings.position_embeddings
    included) and failed with a mask-shape error."""
    albert = _tiny_albert().eval()
    ids = torch.randint(0, 100, (12, 10), generator=torch.Generator().manual_seed(0))
    keep = torch.ones(12, 10, dtype=torch.long)
    keep[:, 7:] = 0
    act = albert.encoder.albert_layer_groups[0].albert_layers[0].activation
    seen: list[torch.Tensor] = []
    handle = act.register_forward_hook(lambda m, i, o: seen.append(o))  # the reference
    try:
        with torch.no_grad(), tn.ActivationRecorder(albert, mask="attention_mask") as rec:
            albert(input_ids=ids, attention_mask=keep)
    finally:
        handle.remove()
    name = "encoder.albert_layer_groups.0.albert_layers.0.activation"
    per = rec.per_layer()
    assert list(per) == [f"{name}#{k}" for k in range(3)] and len(seen) == 3
    for k, out in enumerate(seen):
        torch.testing.assert_close(per[f"{name}#{k}"], out[keep.bool()])
    # A block called once keeps its plain name.
    single = _tiny_albert(layers=1).eval()
    with torch.no_grad(), tn.ActivationRecorder(single, mask="attention_mask") as one:
        single(input_ids=ids, attention_mask=keep)
    assert list(one.per_layer()) == [name] and one.activations().shape == (84, 64)
    # One call by name; analyse and Regularized take the model as it is.
    with torch.no_grad(), tn.ActivationRecorder(albert, [f"{name}#1"], mask="attention_mask") as r:
        albert(input_ids=ids, attention_mask=keep)
    torch.testing.assert_close(r.activations(), seen[1][keep.bool()])
    batches = [{"input_ids": ids, "attention_mask": keep}] * 3
    report = tn.analyse(albert, batches, mask="attention_mask")
    assert report.n_examples == 3 * 84 and report.barcode.n_points == 3 * 64
    reg = tn.Regularized(albert.train(), tn.TopologicalRedundancy(reduction="mean"),
                         mask="attention_mask")  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tn.FewExamplesWarning)
        _, penalty = reg(input_ids=ids, attention_mask=keep)
    penalty.backward()
    assert float(albert.encoder.albert_layer_groups[0].albert_layers[0].ffn.weight.grad.abs().sum())


class _Recurrent(nn.Module):
    def __init__(self, cell: type[nn.Module], batch_first: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.rnn = cell(4, 8, batch_first=batch_first)
        self.head = nn.Linear(8, 3)
        self.batch_first = batch_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x if self.batch_first else x.transpose(0, 1))
        return self.head(out if self.batch_first else out.transpose(0, 1))


class _Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.attn(x, x, x)
        return self.head(out)


def test_tuple_output_layers_are_never_picked_by_default():
    """Before: the default layers included the LSTM, whose tuple output cannot be recorded."""
    x = torch.randn(16, 5, 4, generator=torch.Generator().manual_seed(0))
    for model in (_Recurrent(nn.LSTM), _Recurrent(nn.GRU), _Attention()):
        inputs = x.repeat(1, 1, 2) if isinstance(model, _Attention) else x
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rec = tn.ActivationRecorder(model)
        assert list(rec.record_points) == ["head"]
        if not isinstance(model, _Attention):
            assert any("leaves out the recurrent layers ['rnn']" in str(w.message) for w in caught)
        with rec:
            out = model(inputs)
        torch.testing.assert_close(rec.activations(), out.reshape(-1, 3))
    only = nn.Sequential(nn.LSTM(4, 8))
    with pytest.raises(ValueError, match=r"return tuples are not recorded by default: \['0'\]"):
        tn.ActivationRecorder(only)


def test_select_output_records_one_element_of_a_tuple_output():
    x = torch.randn(16, 5, 4, generator=torch.Generator().manual_seed(1))
    model = _Recurrent(nn.LSTM)
    with pytest.raises(TypeError, match=r"'rnn' \(LSTM\) returned tuple.*select_output=0"):
        with tn.ActivationRecorder(model, ["rnn"]) as rec:
            model(x)
    with tn.ActivationRecorder(model, ["rnn"], select_output=0) as rec:
        model(x)
    torch.testing.assert_close(rec.activations(), model.rnn(x)[0].reshape(-1, 8))
    # A callable, per layer: the GRU's final hidden state (batch, hidden).
    gru = _Recurrent(nn.GRU)
    rec = tn.ActivationRecorder(gru, ["rnn"], select_output={"rnn": lambda o: o[1][-1]})
    with rec:
        gru(x)
    torch.testing.assert_close(rec.per_layer()["rnn"], gru.rnn(x)[1][-1])
    # batch_first=False: the batch axis is asked for, then honoured.
    seq_first = _Recurrent(nn.LSTM, batch_first=False)
    with pytest.raises(ValueError, match=r"'rnn' \(LSTM, batch_first=False\).*batch_dim=1"):
        tn.ActivationRecorder(seq_first, ["rnn"], select_output=0)
    with tn.ActivationRecorder(seq_first, ["rnn"], select_output=0, batch_dim=1) as rec:
        seq_first(x)
    ref = seq_first.rnn(x.transpose(0, 1))[0].transpose(0, 1).reshape(-1, 8)
    torch.testing.assert_close(rec.activations(), ref)
    attn = _Attention()
    with tn.ActivationRecorder(attn, ["attn"], select_output=0) as rec:
        attn(x.repeat(1, 1, 2))
    torch.testing.assert_close(rec.activations(), attn.attn(*[x.repeat(1, 1, 2)] * 3)[0]
                               .reshape(-1, 8))  # fmt: skip
    with pytest.raises(ValueError, match=r"select_output=5 .*valid indices 0 … 1"):
        with tn.ActivationRecorder(model, ["rnn"], select_output=5):
            model(x)
    with pytest.raises(TypeError, match="select_output for layer 'rnn' must be an index"):
        tn.ActivationRecorder(model, ["rnn"], select_output=-1)
    with pytest.raises(ValueError, match="select_output names layers"):
        tn.ActivationRecorder(model, ["rnn"], select_output={"lstm": 0})


# ----------------------------------------------------------------------------- 6. dict batches
def test_tracker_takes_dict_batches():
    """Before: BarcodeTracker.step(batch) called model(batch) with the dict: a TypeError."""
    bert = _tiny_bert()
    batch = _hf_batches(1, m=12)[0]
    tracker = tn.BarcodeTracker(bert, every=2, mask="attention_mask")
    assert tracker.step(batch) and not tracker.step(batch)
    with torch.no_grad(), tn.ActivationRecorder(bert, mask="attention_mask", detach=True) as rec:
        bert(**batch)
    for name, a in rec.per_layer().items():
        assert a.shape[0] == 120  # padded tokens dropped
        ref = tn.zero_persistence(tn.correlation_dissimilarity(a.double()))
        np.testing.assert_allclose(tracker.history.barcodes[name][0].deaths, ref.deaths,
                                   rtol=1e-5, atol=1e-6)  # fmt: skip
    with pytest.raises(TypeError, match=r"a batch must be a tensor .* or a mapping"):
        tracker.record([batch["input_ids"]])


# ----------------------------------------------------------------------------- 7. regulariser
def test_regularized_rejects_a_task_loss_at_construction():
    """Before: nn.MSELoss was accepted and failed at the first forward with a raw TypeError."""
    model = _mlp()
    with pytest.raises(TypeError, match=r"MSELoss cannot be called as regularizer\(activations\)"
                       r".*TopologicalRedundancy.*L1Penalty"):  # fmt: skip
        tn.Regularized(model, nn.MSELoss())

    class MeanAbs(nn.Module):  # a user's one-argument activation loss is welcome
        def forward(self, A: torch.Tensor) -> torch.Tensor:
            return A.abs().mean()

    x = torch.randn(32, 4)
    _, penalty = tn.Regularized(model, MeanAbs(), weight=2.0)(x)
    with tn.ActivationRecorder(model) as rec:
        model(x)
    torch.testing.assert_close(penalty, 2.0 * rec.activations().abs().mean())


# ----------------------------------------------------------------------------- 8. dead neurons
def _with_dead_neurons() -> nn.Sequential:
    model = _mlp()
    with torch.no_grad():
        model.fc1.weight[[2, 5, 9]] = 0.0
        model.fc1.bias[[2, 5, 9]] = -1.0  # ReLU(−1) = 0 for every input: three dead neurons
    return model


class _Writer:
    """A SummaryWriter stand-in that keeps the scalars (the other methods do nothing)."""

    def __init__(self) -> None:
        self.scalars: dict[str, list[tuple[int, float]]] = {}

    def add_scalar(self, tag, value, global_step):
        self.scalars.setdefault(tag, []).append((global_step, float(value)))

    def add_histogram(self, *args, **kwargs):
        pass


def test_tracker_reports_dead_neurons_beside_the_death_statistics():
    model = _with_dead_neurons()
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(5))
    writer = _Writer()
    tracker = tn.BarcodeTracker(model, every=1, network=True, writer=writer, figures=False)
    tracker.step(x)
    tracker.step(x)
    with torch.no_grad():  # the reference: columns whose values never change
        hidden = torch.relu(model.fc1(x)).numpy()
    dead = int((hidden.max(axis=0) == hidden.min(axis=0)).sum())
    assert dead == 3
    assert tracker.dead_neurons == {"fc1": [3, 3], "fc2": [0, 0], "out": [0, 0], "network": [3, 3]}
    assert writer.scalars["barcodes/fc1/dead_neurons"] == [(0, 3.0), (1, 3.0)]
    assert "barcodes/fc1/death_min" in writer.scalars  # beside the death statistics


# ----------------------------------------------------------------------------- 4. Lightning
def _lightning():
    return pytest.importorskip("lightning.pytorch", reason="the lightning extra is a dev dep")


def _fit(pl, module, callbacks, tmp_path, epochs: int = 2):
    from lightning.pytorch.loggers import CSVLogger

    logger = CSVLogger(tmp_path, name="csv")
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=epochs, logger=logger, callbacks=callbacks,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
        log_every_n_steps=1,
    )  # fmt: skip
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(6))
    y = torch.randint(0, 3, (64,), generator=torch.Generator().manual_seed(7))
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    trainer.fit(module, data)
    return trainer, logger


def _logged(logger) -> list[dict[str, str]]:
    import csv

    with open(logger.experiment.metrics_file_path, newline="") as f:
        return list(csv.DictReader(f))


def test_barcode_logger_on_a_module_without_forward_fails_at_fit_start(tmp_path):
    """Before: the fit ran its first epoch, then crashed in Lightning's traceback after a
    garbled warning ("torch.fx cannot trace (model) (…): Proxy object cannot be iterated…")."""
    pl = _lightning()
    from topo_neurons.integrations.lightning import BarcodeLogger

    steps: list[int] = []

    class NoForward(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = _with_dead_neurons()

        def training_step(self, batch, batch_idx):
            steps.append(batch_idx)
            x, y = batch
            return nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    probe = torch.randn(48, 4, generator=torch.Generator().manual_seed(8))
    with pytest.raises(TypeError, match=r"NoForward defines no forward method.*forward_fn="):
        _fit(pl, NoForward(), [BarcodeLogger(probe)], tmp_path)
    assert steps == []  # checked before any training step

    module = NoForward()
    bars = BarcodeLogger(probe, forward_fn=lambda m, x: m.net(x), figures=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, logger = _fit(pl, module, [bars], tmp_path)
    fx = [str(w.message) for w in caught if "torch.fx" in str(w.message)]
    assert (
        fx
        and "torch.fx cannot trace the model (NoForward): it defines no forward method." in (fx[0])
    )
    assert len(bars.history) == 2 and steps
    # The last record is of the final weights: compare with an independent recording.
    with torch.no_grad(), tn.ActivationRecorder(module.net, detach=True) as rec:
        module.net.eval()(probe)
    for name, a in rec.per_layer().items():
        ref = tn.zero_persistence(tn.correlation_dissimilarity(a.double()))
        got = bars.history.barcodes[f"net.{name}"][-1]
        np.testing.assert_allclose(got.deaths, ref.deaths, rtol=1e-5, atol=1e-6)

    # Item 8: the dead neurons are logged beside the death statistics (3 dead in fc1: their
    # weights get no gradient through ReLU(−1) = 0, so they stay dead).
    hidden = rec.per_layer()["fc1"].numpy()
    dead = int((hidden.max(axis=0) == hidden.min(axis=0)).sum())
    assert dead == 3 and bars.dead_neurons["net.fc1"] == [3, 3]
    rows = [r for r in _logged(logger) if r.get("barcodes/net.fc1/dead_neurons")]
    assert [float(r["barcodes/net.fc1/dead_neurons"]) for r in rows] == [3.0, 3.0]
    assert all(r["barcodes/net.fc1/death_min"] for r in rows)
    assert bars.state_dict()["dead_neurons"]["net.fc1"] == [3, 3]


def test_barcode_logger_takes_dict_batches(tmp_path):
    """Before: a dict probe was refused ("probe must be a torch.Tensor batch")."""
    pl = _lightning()
    from topo_neurons.integrations.lightning import BarcodeLogger

    class Encoder(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.bert = _tiny_bert()
            self.head = nn.Linear(32, 3)

        def forward(self, **kwargs):
            return self.bert(**kwargs).last_hidden_state

        def training_step(self, batch, batch_idx):
            x, y = batch
            ids = (x.abs() * 30).long() % 100  # (32, 4) token ids made from the features
            return nn.functional.cross_entropy(self.head(self(input_ids=ids)[:, 0]), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    probe = _hf_batches(1, m=12)[0]
    module = Encoder()
    bars = BarcodeLogger(probe, mask="attention_mask", figures=False)
    _fit(pl, module, [bars], tmp_path, epochs=1)
    with torch.no_grad(), tn.ActivationRecorder(module, mask="attention_mask", detach=True) as rec:
        module.eval()(**probe)
    for name, a in rec.per_layer().items():
        assert a.shape[0] == 120  # padded tokens dropped
        ref = tn.zero_persistence(tn.correlation_dissimilarity(a.double()))
        np.testing.assert_allclose(bars.history.barcodes[name][-1].deaths, ref.deaths,
                                   rtol=1e-5, atol=1e-6)  # fmt: skip
