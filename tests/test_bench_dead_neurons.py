"""benchmarks/dead_neurons.py: its T1 variants against independent references, and a smoke run."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.sparse.csgraph import minimum_spanning_tree

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "bench_dead_neurons", ROOT / "benchmarks" / "dead_neurons.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _activations(seed: int = 0, m: int = 64, n: int = 12, dead=(3, 7)) -> torch.Tensor:
    """ReLU-like activations with the columns ``dead`` constant (zero)."""
    rng = np.random.default_rng(seed)
    A = np.maximum(rng.standard_normal((m, n)) @ rng.standard_normal((n, n)), 0.0)
    A[:, list(dead)] = 0.0
    return torch.tensor(A, dtype=torch.float64)


def _mst_deaths(A: np.ndarray) -> np.ndarray:
    """Deaths of the MST of ``1 − |corrcoef|`` (scipy), every column non-constant."""
    D = 1.0 - np.abs(np.corrcoef(A, rowvar=False))
    np.fill_diagonal(D, 0.0)
    # scipy drops zero entries as "no edge": shift every off-diagonal entry (the tree is the same)
    T = minimum_spanning_tree(np.where(np.eye(len(D), dtype=bool), 0.0, D + 1.0)).toarray()
    return T[T > 0] - 1.0


def test_drop_mean_is_t1_mean_of_the_non_constant_neurons(bench):
    A = _activations().requires_grad_(True)
    loss = bench.CountingT1(constant="drop", reduction="mean")(A)
    kept = [j for j in range(A.shape[1]) if j not in (3, 7)]
    d = _mst_deaths(A.detach().numpy()[:, kept])
    assert len(d) == len(kept) - 1
    assert loss.item() == pytest.approx(float(np.mean(1.0 - d)), rel=1e-9, abs=1e-12)
    loss.backward()
    assert torch.all(A.grad[:, [3, 7]] == 0)
    assert A.grad[:, kept].abs().sum() > 0


def test_default_counts_constant_neurons_as_uncorrelated(bench):
    A = _activations(dead=(5,))
    reg = bench.CountingT1(constant="uncorrelated", reduction="sum")
    kept = [j for j in range(A.shape[1]) if j != 5]
    # the constant neuron joins the tree by one edge of d = 1: its term is 0
    expected = float(np.sum(1.0 - _mst_deaths(A.numpy()[:, kept])))
    assert reg(A).item() == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert (reg.steps, reg.steps_with_constant, reg.max_constant) == (1, 1, 1)


def test_drop_mean_at_the_matched_weight_equals_the_default_without_constant_neurons(bench):
    A = _activations(seed=1, dead=()).requires_grad_(True)
    n = A.shape[1]
    default = bench.CountingT1(constant="uncorrelated", reduction="sum")(A)
    (g_default,) = torch.autograd.grad(default, A)
    drop = (n - 1) * bench.CountingT1(constant="drop", reduction="mean")(A)
    (g_drop,) = torch.autograd.grad(drop, A)
    torch.testing.assert_close(drop, default, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g_drop, g_default, rtol=1e-10, atol=1e-12)


def test_skip_step_has_no_gradient_on_a_batch_with_a_constant_neuron(bench):
    reg = bench.CountingT1(constant="skip_step", reduction="sum")
    A = _activations(dead=(2,)).requires_grad_(True)
    value = reg(A)
    assert not value.requires_grad
    full = bench.CountingT1(constant="uncorrelated", reduction="sum")(A)
    assert value.item() == full.item()  # the same calls: the value is kept
    B = _activations(seed=2, dead=()).requires_grad_(True)
    (g,) = torch.autograd.grad(reg(B), B)
    assert g.abs().sum() > 0
    assert (reg.steps, reg.steps_with_constant, reg.max_constant) == (2, 1, 1)


def test_unknown_constant_policy_is_an_error(bench):
    with pytest.raises(ValueError, match="'uncorrelated', 'drop', 'skip_step'"):
        bench.CountingT1(constant="zero", reduction="sum")


def test_dead_counts_per_hidden_layer(bench):
    from topo_neurons.experiments.models import make_model

    torch.manual_seed(0)
    model = make_model("trapezium", (8,), 3).eval()
    with torch.no_grad():  # kill neurons 0 and 5 of fc2 and 1 of fc3: bias −1e3, zero weights
        for name, idx in (("fc2", [0, 5]), ("fc3", [1])):
            layer = getattr(model.net, name)
            layer.weight[idx] = 0.0
            layer.bias[idx] = -1e3
    X = torch.randn(50, 8, generator=torch.Generator().manual_seed(1))
    counts, A = bench.dead_counts(model, X)
    h1 = torch.relu(model.net.fc1(X))
    h2 = torch.relu(model.net.fc2(h1))
    h3 = torch.relu(model.net.fc3(h2))
    ref = [int((h.max(0).values == h.min(0).values).sum()) for h in (h1, h2, h3)]
    assert counts == ref and ref[1] >= 2 and ref[2] >= 1
    assert A.shape == (50, 450 + 350 + 200 + 3)


def test_smoke_run_writes_rows_and_resumes_without_training(bench, tmp_path, monkeypatch, capsys):
    out = tmp_path / "dead.csv"
    assert bench.main(["--smoke", "--out", str(out)]) == 0
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["variant"] for r in rows] == list(bench.VARIANTS)
    assert tuple(rows[0]) == bench.FIELDS
    for r in rows:
        assert r["task"] == "digits" and r["max_epochs"] == "2"
        assert len(r["dead_train"].split("/")) == 3
        assert float(r["t1_test"]) >= 0
    assert rows[1]["weight"] == "1" and rows[2]["weight"] == "1009"  # λ and λ·(n − 1)
    text = out.read_text()

    def must_not_train(*args, **kwargs):
        raise AssertionError("a finished row was trained again")

    monkeypatch.setattr(bench, "train_one", must_not_train)
    assert bench.main(["--smoke", "--out", str(out)]) == 0
    assert out.read_text() == text
    assert "drop_mean" in capsys.readouterr().out
