"""Review regressions: the recorder's torch.compile stance (topo_neurons.capture)."""

from __future__ import annotations

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
