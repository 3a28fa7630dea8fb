"""Review regressions: the recorder's torch.compile stance (topo_neurons.capture)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import topo_neurons as tn


def _stance() -> str:
    return torch._dynamo.eval_frame._stance.stance


def test_compile_stance_restored_when_recorders_exit_out_of_order():
    """Before: each recorder saved the stance it found, so r1 out before r2 left
    ``force_eager`` set for good (r2 restored r1's)."""
    torch._dynamo.reset()
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    compiled = torch.compile(model, backend="eager")
    before = _stance()
    r1, r2 = tn.ActivationRecorder(compiled), tn.ActivationRecorder(compiled)
    r1.__enter__()
    r2.__enter__()
    assert _stance() == "force_eager"
    r1.__exit__(None, None, None)
    assert _stance() == "force_eager"  # r2 still records
    compiled(torch.randn(6, 4))
    assert r2.activations().shape == (6, 11)
    r2.__exit__(None, None, None)
    assert _stance() == before
    try:  # and a block that raises
        with tn.ActivationRecorder(compiled):
            raise KeyError("x")
    except KeyError:
        pass
    assert _stance() == before


class _Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.out = nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc(torch.relu(self.fc(x)))))


def test_call_index_beyond_the_calls_of_a_forward_is_an_error():
    """Before: layers=['fc#5', 'out'] with fc called twice returned only 'out', the named
    layer silently left out (and alone, 'nothing was recorded' blamed the `with`)."""
    model = _Shared()
    ok = tn.ActivationRecorder(model, layers=["fc#0", "fc#1", "out"], point="pre")
    with ok:
        model(torch.randn(10, 4))
    assert list(ok.per_layer()) == ["fc#0", "fc#1", "out"]
    rec = tn.ActivationRecorder(model, layers=["fc#5", "out"], point="pre")
    with rec:
        model(torch.randn(10, 4))
    with pytest.raises(ValueError, match=r"no call 5 of module 'fc'.*\['fc#5'\]"):
        rec.per_layer()
    alone = tn.ActivationRecorder(model, layers=["fc#2"], point="pre")
    with alone:
        model(torch.randn(10, 4))
    with pytest.raises(RuntimeError, match=r"called fewer than k \+ 1 times"):
        alone.activations()


def test_fallback_warning_names_a_module_once_for_its_calls():
    """Before: layers=['fc#0', 'fc#1'] warned "layers 'fc' (Linear), 'fc' (Linear)"."""
    with pytest.warns(UserWarning, match=r"follows layer 'fc' \(Linear\), because") as got:
        tn.ActivationRecorder(_Shared(), layers=["fc#0", "fc#1", "out"])
    assert "'fc' (Linear), 'fc'" not in str(got[0].message)
