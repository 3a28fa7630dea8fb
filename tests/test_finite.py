"""One NaN/Inf check: every entry point raises NonFiniteActivationsError naming where."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import topo_neurons as tn
from topo_neurons._finite import check_finite_activations


def _describe(ex, neuron, value, bad):
    return f"{value} at {ex},{neuron} in {bad}"


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(1, 6),
    n=st.integers(1, 6),
    cells=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=5),
    bad=st.sampled_from([float("nan"), float("inf"), -float("inf")]),
)
def test_the_first_bad_value_in_row_major_order_is_named(m, n, cells, bad):
    A = torch.randn(m, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cells = sorted({(i % m, j % n) for i, j in cells})
    for i, j in cells:
        A[i, j] = bad
    with pytest.raises(tn.NonFiniteActivationsError) as info:
        check_finite_activations(A, _describe, layer="fc")
    err = info.value
    first = np.argwhere(~np.isfinite(A.numpy()))[0]  # numpy as the reference
    assert (err.example, err.neuron) == tuple(int(v) for v in first)
    assert str(err.value) == str(bad) and err.layer == "fc"
    assert str(err).endswith(f"in {sorted({j for _, j in cells})}")


def test_finite_values_whose_sum_overflows_pass():
    A = torch.full((4, 3), torch.finfo(torch.float32).max)
    check_finite_activations(A, _describe)  # the sum is inf, every value is finite


def test_the_error_is_a_value_error_and_survives_pickling():
    err = tn.NonFiniteActivationsError("x", layer="l", example=1, neuron=2, value=float("nan"))
    assert isinstance(err, ValueError)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is tn.NonFiniteActivationsError and str(back) == "x"
    assert (back.layer, back.example, back.neuron) == ("l", 1, 2) and np.isnan(back.value)


def _with_nan() -> torch.Tensor:
    A = torch.randn(8, 5, generator=torch.Generator().manual_seed(1))
    A[6, 3] = float("nan")
    return A


@pytest.mark.parametrize(
    "call",
    [
        tn.correlation_matrix,
        tn.correlation_dissimilarity,
        tn.correlation_persistence,
        tn.TopologicalRedundancy(),
        tn.DeathSpread(),
        tn.CorrelationPenalty(),
        tn.DeCov(),
        lambda A: tn.StreamingCorrelation(5).update(A),
    ],
    ids=lambda c: getattr(c, "__name__", type(c).__name__),
)
def test_every_entry_point_raises_the_type(call):
    with pytest.raises(tn.NonFiniteActivationsError, match=r"nan") as info:
        call(_with_nan())
    assert (info.value.example, info.value.neuron) == (6, 3)


def test_the_recorder_names_the_layer_on_the_error():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        model[2].bias[1] = float("inf")
    with tn.ActivationRecorder(model) as rec:
        model(torch.randn(5, 3))
    with pytest.raises(tn.NonFiniteActivationsError, match=r"layer '2' output inf") as info:
        rec.activations()
    assert (info.value.layer, info.value.example, info.value.neuron) == ("2", 0, 1)
