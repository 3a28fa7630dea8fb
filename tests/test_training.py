"""The Regularized helper and regularised training on real data (scikit-learn digits)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

import topo_neurons as tn


def small_mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 24), nn.ReLU(), nn.Linear(24, 10)
    )


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    X, y = load_digits(return_X_y=True)
    return torch.tensor(X / 16.0, dtype=torch.float32), torch.tensor(y)


@pytest.mark.parametrize("point", ["post", "pre"])
def test_output_is_unchanged_and_penalty_is_weight_times_loss(point):
    model = small_mlp()
    x, _ = digits()
    x = x[:64]
    reg = tn.Regularized(
        model, tn.DeathSpread(alpha=0.4), weight=0.3, layers=["0", "2"], point=point
    )
    out, penalty = reg(x)
    torch.testing.assert_close(out, model(x))
    # Independent: the two layers' neurons computed by hand, then the functional loss. By
    # default they are the values after each ReLU (what the next layer sees, as in the paper).
    h1 = x @ model[0].weight.T + model[0].bias
    h2 = torch.relu(h1) @ model[2].weight.T + model[2].bias
    if point == "post":
        h1, h2 = torch.relu(h1), torch.relu(h2)
    expected = 0.3 * tn.DeathSpread(alpha=0.4)(torch.cat([h1, h2], dim=1))
    torch.testing.assert_close(penalty, expected)
    # Gradient reaches the weights, equal to the hand-built graph's.
    (g,) = torch.autograd.grad(penalty, model[0].weight)
    (g_ref,) = torch.autograd.grad(expected, model[0].weight)
    torch.testing.assert_close(g, g_ref)
    assert float(g.abs().sum()) > 0


def test_recording_is_released_and_hooks_removed():
    model = small_mlp()
    reg = tn.Regularized(model, tn.TopologicalRedundancy())
    reg(torch.randn(8, 64))
    assert not reg.recorder.recording
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0
    with pytest.raises(RuntimeError, match="nothing was recorded"):
        reg.recorder.activations()
    with pytest.raises(RuntimeError):
        reg(torch.randn(8, 5))  # shape error inside the forward
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0


def test_weight_penalties_use_the_model():
    model = small_mlp()
    _, penalty = tn.Regularized(model, tn.L2Penalty(), weight=0.5)(torch.randn(4, 64))
    expected = 0.5 * sum((model[i].weight.detach() ** 2).sum() for i in (0, 2, 4))
    torch.testing.assert_close(penalty.detach(), expected)
    with pytest.raises(ValueError, match="layers= and sampling= apply only"):
        tn.Regularized(model, tn.L1Penalty(), layers=["0"])


def test_a_user_weight_penalty_is_applied_to_the_model():
    """Regularized recognises the public base, not a list of classes: a subclass works too."""

    class L4Penalty(tn.WeightPenalty):
        def forward(self, model):
            return torch.stack([p.pow(4).sum() for _, p in self.parameters_of(model)]).sum()

    model = small_mlp()
    reg = tn.Regularized(model, L4Penalty(), weight=2.0)
    assert reg.recorder is None
    _, penalty = reg(torch.randn(4, 64))
    expected = 2.0 * sum((model[i].weight.detach() ** 4).sum() for i in (0, 2, 4))
    torch.testing.assert_close(penalty.detach(), expected)


def test_bad_arguments():
    model = small_mlp()
    with pytest.raises(TypeError, match="regularizer must be a loss module"):
        tn.Regularized(model, "t1")
    with pytest.raises(ValueError, match=r"weight=-1\.0 must be finite and ≥ 0"):
        tn.Regularized(model, tn.DeCov(), weight=-1.0)
    with pytest.raises(TypeError, match="weight must be a number"):
        tn.Regularized(model, tn.DeCov(), weight="0.1")
    with pytest.raises(ValueError, match="valid names are"):
        tn.Regularized(model, tn.DeCov(), layers=["fc1"])


def train(weight: float, steps: int = 100) -> tuple[float, float]:
    """Train on digits with T1 (mean) at ``weight``; return (final T1, train accuracy)."""
    X, y = digits()
    model = small_mlp(1)
    reg = tn.Regularized(model, tn.TopologicalRedundancy(reduction="mean"), weight=weight)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(2)
    for _ in range(steps):
        idx = torch.randint(0, len(X), (128,), generator=gen)
        out, penalty = reg(X[idx])
        loss = nn.functional.cross_entropy(out, y[idx]) + penalty
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad(), tn.ActivationRecorder(model) as rec:
        out = model(X)
    t1 = tn.TopologicalRedundancy(reduction="mean")(rec.activations()).item()
    acc = (out.argmax(dim=1) == y).float().mean().item()
    return t1, acc


def test_t1_regularisation_lowers_t1_on_real_data():
    t1_plain, acc_plain = train(0.0)
    t1_reg, acc_reg = train(0.3)
    # Measured (post-ReLU neurons): T1 0.82 → 0.52, accuracy 0.90 → 0.88; a large weight (≥ 1)
    # would decorrelate further but stop the task from being learnt.
    assert t1_reg < 0.9 * t1_plain, (t1_reg, t1_plain)
    assert acc_plain > 0.85 and acc_reg > 0.85, (acc_plain, acc_reg)
    assert np.isfinite([t1_plain, t1_reg]).all()


def dropout_mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(64, 32),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(32, 24),
        nn.ReLU(),
        nn.Linear(24, 10),
    )


def test_penalty_pass_eval_matches_a_hand_written_second_pass():
    """``penalty_pass="eval"``: output in training mode, penalty from a dropout-off pass."""
    x, _ = digits()
    x = x[:96]
    model, ref_model = dropout_mlp(), dropout_mlp()
    model.train()
    ref_model.train()
    t1 = tn.TopologicalRedundancy()
    reg = tn.Regularized(model, t1, weight=0.2, layers=["1", "4"], penalty_pass="eval")
    assert "penalty_pass='eval'" in repr(reg)
    torch.manual_seed(5)
    out, penalty = reg(x)
    after = torch.rand(3)  # the random stream after the call
    # The reference: a training forward, then model.eval(); record; reg(A); model.train().
    rec = tn.ActivationRecorder(ref_model, ["1", "4"])
    torch.manual_seed(5)
    ref_out = ref_model(x)
    ref_model.eval()
    with rec:
        ref_model(x)
    expected = 0.2 * t1(rec.activations())
    ref_model.train()
    torch.testing.assert_close(out, ref_out)  # the output's dropout masks are the same
    torch.testing.assert_close(penalty, expected)
    torch.testing.assert_close(after, torch.rand(3))  # the eval pass drew no random numbers
    assert model.training and all(m.training for m in model.modules())
    (g,) = torch.autograd.grad(penalty, model[0].weight)
    (g_ref,) = torch.autograd.grad(expected, ref_model[0].weight)
    torch.testing.assert_close(g, g_ref)
    assert float(g.abs().sum()) > 0
    # The output has dropout on; the penalty is not the training pass's.
    same = tn.Regularized(ref_model, t1, weight=0.2, layers=["1", "4"])
    torch.manual_seed(5)
    _, penalty_same = same(x)
    assert not torch.allclose(penalty_same, penalty)


def test_penalty_pass_eval_restores_the_mode_and_releases_the_recording():
    model = dropout_mlp()
    reg = tn.Regularized(model, tn.DeCov(), penalty_pass="eval")
    model.eval()
    x = torch.randn(100, 64)
    out, _ = reg(x)
    assert not model.training
    torch.testing.assert_close(out, model(x))  # in evaluation mode both passes are the same

    class FailsInEval(nn.Module):
        def forward(self, h: torch.Tensor) -> torch.Tensor:
            if not self.training:
                raise RuntimeError("evaluation pass")
            return h

    failing = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), FailsInEval(), nn.Linear(16, 3))
    reg = tn.Regularized(failing, tn.DeCov(), penalty_pass="eval")
    failing.train()
    with pytest.raises(RuntimeError, match="evaluation pass"):
        reg(x)  # the error comes from the second, evaluation-mode forward
    assert failing.training and all(m.training for m in failing.modules())
    assert sum(len(m._forward_hooks) for m in failing.modules()) == 0
    assert not reg.recorder.recording


def test_penalty_pass_is_checked():
    model = dropout_mlp()
    with pytest.raises(
        ValueError, match=r"penalty_pass='train' is not valid; valid .* \('same', 'eval'\)"
    ):
        tn.Regularized(model, tn.DeCov(), penalty_pass="train")
    with pytest.raises(ValueError, match=r"penalty_pass='eval' applies only to activation"):
        tn.Regularized(model, tn.L2Penalty(), penalty_pass="eval")
