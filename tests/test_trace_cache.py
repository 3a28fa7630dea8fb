"""The recorder's trace cache (issue 21): a second recorder on an unchanged model skips the
``torch.fx`` trace, and every change that could alter what the trace finds traces again.

Each invalidation test builds a recorder, changes the model in one way, builds another and
checks (a) that the set-up ran again (a counter around ``resolve_targets``) and (b) that the
recorded values are the ones the changed model computes, against a hand-written reference.
"""

from __future__ import annotations

import gc
import types
import weakref

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import topo_neurons as tn
from topo_neurons.capture import _trace_cache, clear_trace_cache


@pytest.fixture
def resolutions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the full set-ups (``resolve_targets``: the layers and the fx trace)."""
    calls: list[int] = []
    real = _trace_cache.resolve_targets

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(_trace_cache, "resolve_targets", counting)
    return calls


def x_batch(n_in: int = 5, m: int = 32) -> torch.Tensor:
    return torch.randn(m, n_in, generator=torch.Generator().manual_seed(3))


class Net(nn.Module):
    """``fc1 → F.relu or tanh (self.act) → fc2``: the activation is functional, found by fx."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(5, 7)
        self.fc2 = nn.Linear(7, 3)
        self.act = "relu"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        h = F.relu(h) if self.act == "relu" else torch.tanh(h)
        return self.fc2(h)


def record(model: nn.Module, x: torch.Tensor, **kw) -> tuple[dict, dict]:
    """``(record_points, per_layer)`` of one detached recording."""
    rec = tn.ActivationRecorder(model, detach=True, **kw)
    with rec:
        model(x)
    return rec.record_points, rec.per_layer()


def assert_records(got: dict, expected: dict) -> None:
    assert list(got) == list(expected)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name].detach())


def seq_mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))


# ------------------------------------------------------------------ hits


def test_second_construction_on_the_same_model_skips_the_trace(resolutions):
    model, x = Net(), x_batch()
    first = record(model, x)
    assert len(resolutions) == 1
    second = record(model, x)
    assert len(resolutions) == 1  # the cache answered
    assert first[0] == second[0] == {"fc1": "fc1 (Linear) → relu", "fc2": "fc2 (Linear)"}
    h = F.relu(model.fc1(x))
    assert_records(second[1], {"fc1": h, "fc2": model.fc2(h)})


def _hooked_bert_like() -> nn.Module:
    torch.manual_seed(0)
    return nn.TransformerEncoder(
        nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True), 2
    )


@pytest.mark.parametrize("which", ["sequential", "functional", "inplace", "transformer"])
def test_cache_hit_records_bitwise_the_same_activations_as_a_fresh_trace(which, resolutions):
    torch.manual_seed(0)
    if which == "sequential":
        model, x = seq_mlp(), x_batch()
    elif which == "functional":
        model, x = Net(), x_batch()
    elif which == "inplace":  # the out-of-place copy of an in-place activation is cached
        model = nn.Sequential(nn.Linear(5, 7), nn.LeakyReLU(0.1, inplace=True), nn.Linear(7, 3))
        model = nn.Sequential(model[0], model[1], model[2], model[1])  # shared: fn applied
        x = x_batch()
    else:
        model, x = _hooked_bert_like(), torch.randn(4, 6, 8)
    sampling = tn.ImportanceSampling(0.5)

    def run() -> tuple:
        rec = tn.ActivationRecorder(model, sampling=sampling)
        with rec:
            out = model(x)
        A = rec.activations()
        model.zero_grad(set_to_none=True)
        (A.square().sum() + out.sum()).backward()
        grads = [p.grad.clone() for p in model.parameters()]
        return rec.record_points, rec.neuron_index(), A.detach(), grads

    clear_trace_cache(model)
    fresh = run()
    hit = run()
    assert len(resolutions) == 1  # the second run was a hit
    assert hit[0] == fresh[0]
    assert hit[1].layers == fresh[1].layers
    assert torch.equal(torch.as_tensor(hit[1].neuron), torch.as_tensor(fresh[1].neuron))
    assert torch.equal(hit[2], fresh[2])
    assert all(torch.equal(a, b) for a, b in zip(hit[3], fresh[3], strict=True))


def test_each_recorder_gets_its_own_targets():
    model = Net()
    a = tn.ActivationRecorder(model, batch_dim=0)
    b = tn.ActivationRecorder(model, batch_dim=0)
    assert a._targets is not b._targets
    assert all(s is not t for s, t in zip(a._targets, b._targets, strict=True))


# ------------------------------------------------------------------ invalidation


def test_replaced_module_is_traced_again(resolutions):
    model, x = seq_mlp(), x_batch()
    record(model, x)
    model[1] = nn.Tanh()
    points, got = record(model, x)
    assert len(resolutions) == 2
    assert points["0"] == "1 (Tanh)"
    h = torch.tanh(model[0](x))
    assert_records(got, {"0": h, "2": model[2](h)})


def test_module_replaced_by_one_of_its_type_is_hooked(resolutions):
    model, x = seq_mlp(), x_batch()
    record(model, x)
    old = model[1]  # kept alive: the new module differs from it by identity only
    model[1] = nn.ReLU()
    points, got = record(model, x)
    assert old is not model[1]
    assert len(resolutions) == 2
    assert points["0"] == "1 (ReLU)"
    h = F.relu(model[0](x))
    assert_records(got, {"0": h, "2": model[2](h)})


def test_added_module_is_traced_again(resolutions):
    model, x = seq_mlp(), x_batch()
    record(model, x)
    torch.manual_seed(1)
    model.append(nn.Tanh())
    model.append(nn.Linear(3, 2))
    points, got = record(model, x)
    assert len(resolutions) == 2
    assert points == {"0": "1 (ReLU)", "2": "3 (Tanh)", "4": "4 (Linear)"}
    h = F.relu(model[0](x))
    g = torch.tanh(model[2](h))
    assert_records(got, {"0": h, "2": g, "4": model[4](g)})


def test_removed_module_is_traced_again(resolutions):
    model, x = seq_mlp(), x_batch()
    record(model, x)
    del model[1]
    points, got = record(model, x)
    assert len(resolutions) == 2
    assert points == {"0": "0 (Linear)", "1": "1 (Linear)"}
    h = model[0](x)
    assert_records(got, {"0": h, "1": model[1](h)})


def _tanh_forward(self: Net, x: torch.Tensor) -> torch.Tensor:
    return self.fc2(torch.tanh(self.fc1(x)))


def test_patched_instance_forward_is_traced_again(resolutions):
    model, x = Net(), x_batch()
    record(model, x)
    model.forward = types.MethodType(_tanh_forward, model)
    points, got = record(model, x)
    assert len(resolutions) == 2
    assert points["fc1"] == "fc1 (Linear) → tanh"
    h = torch.tanh(model.fc1(x))
    assert_records(got, {"fc1": h, "fc2": model.fc2(h)})


def test_patched_class_forward_is_traced_again(resolutions):
    class Local(Net):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(F.relu(self.fc1(x)))

    model, x = Local(), x_batch()
    record(model, x)
    old_forward = Local.forward  # kept alive: only the class's forward changes
    Local.forward = _tanh_forward
    assert old_forward is not Local.forward
    points, got = record(model, x)
    assert len(resolutions) == 2
    assert points["fc1"] == "fc1 (Linear) → tanh"
    h = torch.tanh(model.fc1(x))
    assert_records(got, {"fc1": h, "fc2": model.fc2(h)})


def test_changed_class_is_traced_again(resolutions):
    class Sigmoid(Net):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(torch.sigmoid(self.fc1(x)))

    model, x = Net(), x_batch()
    record(model, x)
    model.__class__ = Sigmoid
    points, got = record(model, x)
    assert len(resolutions) == 2
    assert points["fc1"] == "fc1 (Linear) → sigmoid"
    h = torch.sigmoid(model.fc1(x))
    assert_records(got, {"fc1": h, "fc2": model.fc2(h)})


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(5, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc(x))


class Outer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.block = Block()
        self.head = nn.Linear(7, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(x))


def test_patched_submodule_forward_is_traced_again(resolutions):
    model, x = Outer(), x_batch()
    points, _ = record(model, x)
    assert points["block.fc"] == "block.fc (Linear) → relu"

    def gelu_forward(self: Block, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.fc(x))

    model.block.forward = types.MethodType(gelu_forward, model.block)
    points, got = record(model, x)
    assert len(resolutions) == 2
    assert points["block.fc"] == "block.fc (Linear) → gelu"
    h = F.gelu(model.block.fc(x))
    assert_records(got, {"block.fc": h, "head": model.head(h)})


class ModeNet(Net):
    """A forward that branches on ``self.training`` (fx sees one branch per mode)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        return self.fc2(F.relu(h) if self.training else torch.tanh(h))


def test_train_and_eval_are_traced_apart(resolutions):
    model, x = ModeNet(), x_batch()
    model.train()
    assert record(model, x)[0]["fc1"] == "fc1 (Linear) → relu"
    model.eval()
    points, got = record(model, x)
    assert len(resolutions) == 2
    assert points["fc1"] == "fc1 (Linear) → tanh"
    h = torch.tanh(model.fc1(x))
    assert_records(got, {"fc1": h, "fc2": model.fc2(h)})
    model.train()
    points, got = record(model, x)
    assert len(resolutions) == 2  # both modes stay cached
    assert points["fc1"] == "fc1 (Linear) → relu"
    h = F.relu(model.fc1(x))
    assert_records(got, {"fc1": h, "fc2": model.fc2(h)})


def test_changed_plain_attribute_is_traced_again(resolutions):
    model, x = Net(), x_batch()
    record(model, x)
    model.act = "tanh"
    points, got = record(model, x)
    assert len(resolutions) == 2
    assert points["fc1"] == "fc1 (Linear) → tanh"
    h = torch.tanh(model.fc1(x))
    assert_records(got, {"fc1": h, "fc2": model.fc2(h)})


class FnNet(Net):
    """The activation is a function held in an attribute."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.act_fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act_fn(self.fc1(x)))


def test_replaced_attribute_object_is_traced_again(resolutions):
    model, x = FnNet(F.relu), x_batch()
    record(model, x)
    model.act_fn = torch.tanh
    points, got = record(model, x)
    assert len(resolutions) == 2
    assert points["fc1"] == "fc1 (Linear) → tanh"
    h = torch.tanh(model.fc1(x))
    assert_records(got, {"fc1": h, "fc2": model.fc2(h)})


def test_attribute_object_with_a_reused_identity_is_traced_again(resolutions):
    """A new object at a dead one's address (same ``id``) is not taken for it."""
    model, x = FnNet(lambda t: torch.relu(t)), x_batch()
    assert record(model, x)[0]["fc1"] == "fc1 (Linear) → relu"
    old = id(model.act_fn)
    model.act_fn = None  # the relu lambda dies; no recorder is built in between
    gc.collect()
    kept = []  # candidates at other addresses stay alive, so the address comes round
    for _ in range(10_000):
        fn = lambda t: torch.tanh(t)  # noqa: E731
        if id(fn) == old:
            break
        kept.append(fn)
    assert id(fn) == old, "premise: CPython reuses a freed function's address"
    model.act_fn = fn
    points, got = record(model, x)
    assert len(resolutions) == 2
    assert points["fc1"] == "fc1 (Linear) → tanh"
    h = torch.tanh(model.fc1(x))
    assert_records(got, {"fc1": h, "fc2": model.fc2(h)})


class Scale(nn.Module):
    """Elementwise scale; a layer with neurons only once it has a parameter."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self._parameters.get("w")
        return x if w is None else x * w


def test_registered_parameter_is_traced_again(resolutions):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), Scale(), nn.ReLU(), nn.Linear(7, 3))
    x = x_batch()
    assert list(record(model, x)[0]) == ["0", "3"]
    model[1].register_parameter("w", nn.Parameter(torch.linspace(0.5, 2.0, 7)))
    points, got = record(model, x)
    assert len(resolutions) == 2
    assert list(points) == ["0", "1", "3"]
    assert points["1"] == "2 (ReLU)"
    h = model[0](x)  # '0' is followed by Scale (not a pass-through): its own output
    g = F.relu(model[1](h))
    assert_records(got, {"0": h, "1": g, "3": model[3](g)})


def test_compiled_model_is_traced_again_and_records_what_the_model_records(resolutions):
    model, x = Net(), x_batch()
    plain = record(model, x)
    compiled = torch.compile(model)  # marks the model (_is_torch_compile): traced again
    got = record(compiled, x)
    assert len(resolutions) == 2
    assert got[0] == plain[0]
    assert_records(got[1], plain[1])
    assert record(model, x)[0] == plain[0]  # the wrapped module is the one traced: one plan
    assert len(resolutions) == 2
    clear_trace_cache(compiled)  # the wrapper names the model it wraps
    assert record(compiled, x)[0] == plain[0]
    assert len(resolutions) == 3


def test_different_arguments_are_planned_apart(resolutions):
    model, x = Net(), x_batch()
    post = record(model, x)
    pre = record(model, x, point="pre")
    one = record(model, x, layers="fc1")
    by_module = record(model, x, layers=[model.fc2])
    assert len(resolutions) == 4
    h = model.fc1(x)
    assert_records(post[1], {"fc1": F.relu(h), "fc2": model.fc2(F.relu(h))})
    assert_records(pre[1], {"fc1": h, "fc2": model.fc2(F.relu(h))})
    assert_records(one[1], {"fc1": F.relu(h)})
    assert_records(by_module[1], {"fc2": model.fc2(F.relu(h))})
    # again, each from the cache, each still right
    assert record(model, x, point="pre")[0] == pre[0]
    assert record(model, x, layers="fc1")[0] == one[0]
    assert record(model, x, layers=[model.fc2])[0] == by_module[0]
    assert len(resolutions) == 4


def test_layers_given_as_an_iterator_work_twice(resolutions):
    model, x = Net(), x_batch()
    for _ in range(2):
        points, got = record(model, x, layers=iter(["fc2", "fc1"]))
        assert list(points) == ["fc2", "fc1"]
        h = F.relu(model.fc1(x))
        assert_records(got, {"fc1": h, "fc2": model.fc2(h)})  # per_layer: call order
    assert len(resolutions) == 1


def test_bad_arguments_still_raise_on_a_cached_model():
    model = Net()
    tn.ActivationRecorder(model, select_output=0, batch_dim=1)
    with pytest.raises(TypeError, match="select_output for layer 'fc1' must be an index"):
        tn.ActivationRecorder(model, select_output=-1, batch_dim=1)
    with pytest.raises(ValueError, match="batch_dim for layer 'fc1' must be an axis index"):
        tn.ActivationRecorder(model, select_output=0, batch_dim=True)
    with pytest.raises(ValueError, match="layer 'nope' is not a module of Net"):
        tn.ActivationRecorder(model, layers=["nope"])
    with pytest.raises(ValueError, match="module Linear is not part of Net"):
        tn.ActivationRecorder(model, layers=[nn.Linear(2, 2)])


def test_select_output_of_a_hit_is_this_constructions():
    model, x = Net(), x_batch()
    picks: list[str] = []

    def pick(name: str):
        def f(out: torch.Tensor) -> torch.Tensor:
            picks.append(name)
            return out

        return f

    for name in ("a", "b"):
        rec = tn.ActivationRecorder(model, select_output={"fc1": pick(name)}, detach=True)
        with rec:
            model(x)
        rec.per_layer()
    assert picks == ["a", "b"]


def test_clear_trace_cache_traces_again_after_an_unwatched_change(resolutions):
    """A change inside an attribute object is not watched; clearing the cache sees it."""
    model, x = Net(), x_batch()
    model.cfg = types.SimpleNamespace(act="relu")
    model.forward = types.MethodType(
        lambda self, x: self.fc2(F.relu(self.fc1(x)) if self.cfg.act == "relu" else
                                 torch.tanh(self.fc1(x))),
        model,
    )  # fmt: skip
    record(model, x)
    model.cfg.act = "tanh"
    clear_trace_cache(model)
    points, got = record(model, x)
    assert len(resolutions) == 2
    assert points["fc1"] == "fc1 (Linear) → tanh"
    h = torch.tanh(model.fc1(x))
    assert_records(got, {"fc1": h, "fc2": model.fc2(h)})
    clear_trace_cache()
    record(model, x)
    assert len(resolutions) == 3


# ------------------------------------------------------------------ lifetime


@pytest.mark.parametrize("layers", [None, "root"])
def test_cache_entry_dies_with_the_model(layers):
    model = Net()
    model.forward = types.MethodType(_tanh_forward, model)  # the entry sees a bound method
    rec = tn.ActivationRecorder(model, layers=[model] if layers else None)
    with rec:
        model(x_batch())
    key = id(model)
    assert key in _trace_cache._CACHE
    ref = weakref.ref(model)
    del model, rec
    gc.collect()
    assert ref() is None
    assert key not in _trace_cache._CACHE


def test_unwatched_model_builds_without_the_cache(resolutions):
    """Arguments that cannot be keyed (a batch_dim mapping with an unhashable value) are
    resolved every time, and still raise."""
    model = Net()
    for _ in range(2):
        with pytest.raises(ValueError, match="batch_dim for layer 'fc1' must be an axis"):
            tn.ActivationRecorder(model, batch_dim={"fc1": [0]})
    assert len(resolutions) == 2


# ------------------------------------------------------------------ what is traced


def test_forward_bound_on_the_instance_is_traced_not_the_class_forward(resolutions):
    """torch.fx traces ``type(m).forward``; the recorder used to find the class's activation
    when a method bound to the model replaced ``forward`` (what runs): it now traces that."""
    model, x = Net(), x_batch()
    patched = types.MethodType(_tanh_forward, model)
    model.forward = patched
    before = dict(model.__dict__)
    points, got = record(model, x)
    assert points["fc1"] == "fc1 (Linear) → tanh"
    h = torch.tanh(model.fc1(x))
    assert_records(got, {"fc1": h, "fc2": model.fc2(h)})
    assert model.__dict__ == before and model.forward is patched  # traced on a view
    assert type(model) is Net


def test_bound_forward_that_cannot_be_traced_falls_back_to_the_class_forward():
    def fussy(self: Net, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 1e9:  # data-dependent: fx cannot trace it
            return x
        return Net.forward(self, x)

    model, x = Net(), x_batch()
    model.forward = types.MethodType(fussy, model)
    points, got = record(model, x)
    assert points["fc1"] == "fc1 (Linear) → relu"  # the class's forward, which fussy runs
    h = F.relu(model.fc1(x))
    assert_records(got, {"fc1": h, "fc2": model.fc2(h)})


class ConstNet(Net):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)) * torch.tensor(2.0))


def test_tensor_made_in_forward_does_not_defeat_the_cache(resolutions):
    """fx keeps such a tensor as an attribute of the traced model (``_tensor_constant0``):
    the plan is kept under the model as the trace left it, so the next recorder hits."""
    model, x = ConstNet(), x_batch()
    for _ in range(3):
        _, got = record(model, x)
    assert len(resolutions) == 1
    assert [k for k in model.__dict__ if k.startswith("_tensor_constant")] == ["_tensor_constant0"]
    h = F.relu(model.fc1(x))
    assert_records(got, {"fc1": h, "fc2": model.fc2(h * 2.0)})
