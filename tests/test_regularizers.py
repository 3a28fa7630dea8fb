"""T1, T2 and the baselines: values against numpy/scipy, gradients against autograd references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _compare import assert_same_tree, pairs
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import minimum_spanning_tree
from torch import nn

import topo_neurons as tn
from topo_neurons.regularizers import (
    correlation_penalty,
    death_spread,
    decov,
    edge_deaths,
    topological_redundancy,
)

KINDS = ("abs", "sqrt")


def reference_deaths(A: np.ndarray, kind: str) -> np.ndarray:
    """Deaths from numpy's corrcoef and scipy's MST (an implementation independent of ours)."""
    rho = np.corrcoef(A, rowvar=False)
    D = 1 - np.abs(rho) if kind == "abs" else np.sqrt(np.clip(1 - rho**2, 0, None))
    np.fill_diagonal(D, 0)
    assert (D[np.triu_indices_from(D, 1)] > 0).all()  # scipy reads 0 as "no edge"
    mst = minimum_spanning_tree(D).toarray()
    return np.sort(mst[mst > 0])


def brute_force_deaths(A: torch.Tensor, kind: str) -> torch.Tensor:
    """Autograd through the whole n × n matrix (the naive implementation)."""
    return tn.differentiable_deaths(tn.correlation_dissimilarity(A, kind))


def correlated(m: int, n: int, seed: int) -> np.ndarray:
    """Activations with a range of correlations (no |ρ| = 1, no ties)."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((m, 3))
    return base @ rng.standard_normal((3, n)) + 0.7 * rng.standard_normal((m, n))


# ----------------------------------------------------------------------------- values
@pytest.mark.parametrize("kind", KINDS)
def test_t1_and_t2_match_scipy_mst(kind):
    A = correlated(50, 30, 0)
    d = reference_deaths(A, kind)
    At = torch.from_numpy(A)
    np.testing.assert_allclose(edge_deaths(At, kind)[0].numpy(), d, rtol=1e-10)
    t1 = tn.TopologicalRedundancy(kind=kind)(At)
    np.testing.assert_allclose(t1.item(), np.sum(1 - d), rtol=1e-10)
    t1m = tn.TopologicalRedundancy(kind=kind, reduction="mean")(At)
    np.testing.assert_allclose(t1m.item(), np.mean(1 - d), rtol=1e-10)
    for alpha in (0.0, 0.3, 0.5, 1.0):
        t2 = tn.DeathSpread(alpha=alpha, kind=kind)(At)
        expected = alpha * np.std(d) - (1 - alpha) * np.mean(d)
        np.testing.assert_allclose(t2.item(), expected, rtol=1e-9, atol=1e-12)


def test_blocked_ranking_matrix_over_several_blocks_matches_scipy():
    """n = 600 > 256 rows per block: the no-grad matrix is assembled from mirrored blocks."""
    A = correlated(80, 600, 12)
    d = reference_deaths(A, "sqrt")
    ours = edge_deaths(torch.from_numpy(A), "sqrt")[0].numpy()
    np.testing.assert_allclose(np.sort(ours), d, rtol=1e-10)
    A32 = torch.from_numpy(A).float()
    np.testing.assert_allclose(
        topological_redundancy(A32).item(), np.sum(1 - reference_deaths(A, "abs")), rtol=1e-5
    )


def test_input_is_never_modified_even_as_a_transposed_view():
    """Regression: the transposed layout must be a copy when ``A.T`` is already contiguous."""
    B = torch.from_numpy(np.ascontiguousarray(correlated(30, 8, 13).T))  # (n, m) contiguous
    A = B.T  # (m, n) view whose transpose is contiguous
    before = A.clone()
    for loss in (topological_redundancy, death_spread):
        loss(A.requires_grad_(False))
    assert torch.equal(A, before)


def test_every_backend_gives_the_same_loss(backend):
    A = torch.from_numpy(correlated(40, 25, 1))
    ref = np.sum(1 - reference_deaths(A.numpy(), "abs"))
    np.testing.assert_allclose(topological_redundancy(A, backend=backend).item(), ref, rtol=1e-9)


def test_float32_is_kept_and_half_is_promoted():
    A = torch.from_numpy(correlated(40, 12, 2))
    t64 = tn.TopologicalRedundancy()(A)
    t32 = tn.TopologicalRedundancy()(A.float())
    assert t64.dtype == torch.float64 and t32.dtype == torch.float32
    np.testing.assert_allclose(t32.item(), t64.item(), rtol=1e-5)
    th = tn.DeathSpread()(A.half())
    assert th.dtype == torch.float32
    np.testing.assert_allclose(th.item(), tn.DeathSpread()(A).item(), atol=2e-3)


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "loss",
    [
        lambda A, k: topological_redundancy(A, k),
        lambda A, k: topological_redundancy(A, k, "mean"),
        lambda A, k: death_spread(A, 0.5, k),
        lambda A, k: death_spread(A, 0.9, k),
    ],
    ids=["t1-sum", "t1-mean", "t2-0.5", "t2-0.9"],
)
def test_gradcheck_float64(kind, loss):
    A = torch.from_numpy(correlated(12, 7, 3)).requires_grad_()
    assert torch.autograd.gradcheck(lambda a: loss(a, kind), (A,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_equals_brute_force_through_the_full_matrix(kind):
    A = torch.from_numpy(correlated(64, 40, 4))
    A[:, 5] = 2.0  # a dead neuron
    A[:, 17] = 0.0  # another
    A.requires_grad_()
    for ours, naive in [
        (topological_redundancy(A, kind), (1 - brute_force_deaths(A, kind)).sum()),
        (death_spread(A, 0.5, kind), None),
    ]:
        if naive is None:
            d = brute_force_deaths(A, kind)
            naive = 0.5 * d.std(unbiased=False) - 0.5 * d.mean()
        g_ours, g_naive = torch.autograd.grad(ours, A)[0], torch.autograd.grad(naive, A)[0]
        torch.testing.assert_close(ours, naive, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(g_ours, g_naive, rtol=1e-9, atol=1e-12)
        assert float(g_ours.abs().sum()) > 0


def test_gradient_moves_the_closest_pair_apart():
    """One descent step on T1 lowers |ρ| of the most correlated pair (direction is right)."""
    A = torch.from_numpy(correlated(30, 6, 5)).requires_grad_()
    rho0 = np.abs(np.corrcoef(A.detach().numpy(), rowvar=False))
    np.fill_diagonal(rho0, 0)
    i, j = np.unravel_index(np.argmax(rho0), rho0.shape)
    (g,) = torch.autograd.grad(topological_redundancy(A), A)
    A1 = (A - 1e-3 * g).detach().numpy()
    assert abs(np.corrcoef(A1[:, i], A1[:, j])[0, 1]) < rho0[i, j]


# ----------------------------------------------------------------------------- constant neurons
@pytest.mark.parametrize("kind", KINDS)
def test_constant_neurons_have_unit_deaths_and_no_gradient(kind):
    A = torch.from_numpy(correlated(20, 6, 6))
    A[:, 2] = 0.0
    A[:, 4] = -3.5
    A.requires_grad_()
    d, edges = edge_deaths(A, kind)
    touches = (edges == 2).any(dim=1) | (edges == 4).any(dim=1)
    assert int(touches.sum()) >= 2
    assert torch.equal(d[touches], torch.ones(int(touches.sum()), dtype=A.dtype))
    for loss in (topological_redundancy(A, kind), death_spread(A, 0.5, kind)):
        (g,) = torch.autograd.grad(loss, A)
        assert torch.isfinite(g).all()
        assert torch.equal(g[:, [2, 4]], torch.zeros(20, 2, dtype=A.dtype))
        assert float(g[:, [0, 1, 3, 5]].abs().sum()) > 0


def test_all_constant_neurons_give_finite_values_and_zero_gradient():
    A = torch.ones(8, 5, dtype=torch.float64, requires_grad=True)
    t2 = death_spread(A, 0.5)
    assert t2.item() == -0.5  # std 0, mean 1
    (g,) = torch.autograd.grad(t2, A)
    assert torch.equal(g, torch.zeros_like(A))
    assert topological_redundancy(A).item() == 0.0
    assert correlation_penalty(A).item() == 0.0
    (g,) = torch.autograd.grad(correlation_penalty(A) + decov(A), A)
    assert torch.equal(g, torch.zeros_like(A))


def test_sqrt_kind_has_a_finite_gradient_at_perfect_correlation():
    A = torch.from_numpy(correlated(20, 5, 7))
    A[:, 3] = 2 * A[:, 1] + 1  # |ρ| = 1
    A.requires_grad_()
    for kind in KINDS:
        (g,) = torch.autograd.grad(topological_redundancy(A, kind), A)
        assert torch.isfinite(g).all()


# ----------------------------------------------------------------------------- invariances
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), kind=st.sampled_from(KINDS))
def test_t1_is_invariant_to_neuron_order_scale_and_sign(seed, kind):
    rng = np.random.default_rng(seed)
    A = correlated(25, 9, seed)
    perm = rng.permutation(9)
    scale = rng.uniform(0.2, 5.0, 9) * rng.choice([-1.0, 1.0], 9)
    B = A[:, perm] * scale + rng.standard_normal(9)
    ta = topological_redundancy(torch.from_numpy(A), kind).item()
    tb = topological_redundancy(torch.from_numpy(B), kind).item()
    np.testing.assert_allclose(ta, tb, rtol=1e-9)
    ta2 = death_spread(torch.from_numpy(A), 0.4, kind).item()
    tb2 = death_spread(torch.from_numpy(B), 0.4, kind).item()
    np.testing.assert_allclose(ta2, tb2, rtol=1e-8, atol=1e-12)


# ----------------------------------------------------------------------------- baselines
def test_correlation_penalty_matches_numpy():
    A = correlated(30, 10, 8)
    A[:, 7] = 1.0  # constant: ρ = 0 with every other neuron
    rho = np.corrcoef(np.delete(A, 7, axis=1), rowvar=False)
    off = np.abs(rho[~np.eye(9, dtype=bool)]).sum()
    expected = off / (10 * 9)
    At = torch.from_numpy(A).requires_grad_()
    value = tn.CorrelationPenalty()(At)
    np.testing.assert_allclose(value.item(), expected, rtol=1e-12)
    A2 = torch.from_numpy(correlated(10, 5, 9)).requires_grad_()
    assert torch.autograd.gradcheck(correlation_penalty, (A2,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize(("m", "n"), [(8, 20), (40, 6)], ids=["m<n", "m>n"])
def test_decov_matches_the_paper_definition(m, n):
    A = correlated(m, n, 10)
    C = np.cov(A, rowvar=False, bias=True)  # 1/N, as in Cogswell et al.
    expected = 0.5 * (np.sum(C**2) - np.sum(np.diag(C) ** 2))
    At = torch.from_numpy(A).requires_grad_()
    np.testing.assert_allclose(tn.DeCov()(At).item(), expected, rtol=1e-10)
    assert torch.autograd.gradcheck(decov, (At,), eps=1e-6, atol=1e-6)


def test_weight_penalties_cover_weights_not_biases():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Conv1d(1, 2, 2))
    weights = [model[0].weight, model[2].weight]
    everything = list(model.parameters())
    l1 = tn.L1Penalty()(model)
    l2 = tn.L2Penalty()(model)
    np.testing.assert_allclose(l1.item(), sum(w.detach().abs().sum().item() for w in weights))
    np.testing.assert_allclose(l2.item(), sum((w.detach() ** 2).sum().item() for w in weights))
    np.testing.assert_allclose(
        tn.L2Penalty(include_biases=True)(model).item(),
        sum((w.detach() ** 2).sum().item() for w in everything),
        rtol=1e-6,
    )
    l2.backward()
    torch.testing.assert_close(model[0].weight.grad, 2 * model[0].weight.detach())
    assert model[0].bias.grad is None


def test_weight_penalty_errors():
    with pytest.raises(TypeError, match="takes the model"):
        tn.L1Penalty()(torch.ones(3, 3))
    with pytest.raises(ValueError, match="no weight with ≥ 2 dimensions"):
        tn.L2Penalty()(nn.BatchNorm1d(3))


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "loss",
    [tn.TopologicalRedundancy(), tn.DeathSpread(), tn.CorrelationPenalty(), tn.DeCov()],
    ids=lambda m: type(m).__name__,
)
def test_nan_and_inf_name_example_and_neuron(loss):
    A = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    A[3, 2] = float("nan")
    with pytest.raises(ValueError, match="contain nan at example 3, neuron 2"):
        loss(A)
    A[3, 2] = float("-inf")
    with pytest.raises(ValueError, match="contain -inf at example 3, neuron 2"):
        loss(A)
    with pytest.raises(ValueError, match=r"shape \(m examples, n neurons\); got shape \(6, 2, 2\)"):
        loss(torch.zeros(6, 2, 2))
    with pytest.raises(ValueError, match=r"at least 2 examples and 2 neurons; .*\(1, 4\)"):
        loss(torch.zeros(1, 4))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        loss(np.zeros((6, 4)))


def test_bad_options_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"kind='cos'.*valid kinds are \('abs', 'sqrt'\)"):
        tn.TopologicalRedundancy(kind="cos")
    with pytest.raises(ValueError, match=r"reduction='max'.*\('sum', 'mean'\)"):
        tn.TopologicalRedundancy(reduction="max")
    with pytest.raises(ValueError, match=r"backend='ripser'.*'native', 'giotto', 'gudhi'"):
        tn.DeathSpread(backend="ripser")
    with pytest.raises(ValueError, match=r"alpha=1.5 must lie in \[0, 1\]"):
        tn.DeathSpread(alpha=1.5)
    with pytest.raises(ValueError, match="True, False and 'auto'"):
        tn.DeCov(distributed="yes")
    with pytest.raises(ValueError, match=r"needs an initialised torch\.distributed"):
        tn.CorrelationPenalty(distributed=True)(torch.randn(4, 3))
    with pytest.raises(ValueError, match="reduction"):
        topological_redundancy(torch.randn(4, 3), reduction="none")


def test_distributed_auto_is_a_no_op_in_one_process():
    A = torch.from_numpy(correlated(10, 5, 11))
    for cls in (tn.TopologicalRedundancy, tn.CorrelationPenalty, tn.DeCov):
        assert cls(distributed="auto")(A).item() == cls()(A).item()


# ----------------------------------------------------------------------------- refresh_every
def reference_matrix(A: np.ndarray) -> np.ndarray:
    """``1 − |corrcoef|`` by numpy (both kinds share the tree)."""
    D = 1 - np.abs(np.corrcoef(A, rowvar=False))
    np.fill_diagonal(D, 0)
    return D


def reference_tree(A: np.ndarray) -> set[tuple[int, int]]:
    """MST edges of 1 − |corrcoef| by scipy (both kinds share the tree)."""
    i, j = np.nonzero(minimum_spanning_tree(reference_matrix(A)).toarray())
    return {(min(a, b), max(a, b)) for a, b in zip(i.tolist(), j.tolist())}


def on_edges(A: np.ndarray, tree: set[tuple[int, int]], kind: str) -> np.ndarray:
    """Dissimilarities of the given edges from np.corrcoef."""
    rho = np.corrcoef(A, rowvar=False)
    r = np.array([rho[i, j] for i, j in sorted(tree)])
    return 1 - np.abs(r) if kind == "abs" else np.sqrt(1 - r**2)


def drifting(steps: int, m: int = 40, n: int = 15, seed: int = 0) -> list[np.ndarray]:
    """Activations that drift enough between steps for the tree to change."""
    rng = np.random.default_rng(seed)
    A = correlated(m, n, seed)
    out = []
    for _ in range(steps):
        out.append(A.copy())
        A = A + 0.6 * rng.standard_normal((m, n))
    return out


def test_refresh_every_1_is_exactly_todays_loss():
    seq = drifting(4)
    assert len(seq) == 4
    for A in seq:
        At = torch.from_numpy(A).requires_grad_()
        for mod, fun in [
            (tn.TopologicalRedundancy(refresh_every=1), lambda a: topological_redundancy(a)),
            (tn.DeathSpread(alpha=0.3, refresh_every=1), lambda a: death_spread(a, 0.3)),
        ]:
            ours, ref = mod(At), fun(At)
            assert torch.equal(ours, ref)
            assert torch.equal(torch.autograd.grad(ours, At)[0], torch.autograd.grad(ref, At)[0])
            assert mod._edges is None  # nothing cached


@pytest.mark.parametrize("kind", KINDS)
def test_between_refreshes_the_value_is_the_loss_on_the_cached_tree(kind):
    seq = drifting(7, seed=1)
    t1 = tn.TopologicalRedundancy(kind=kind, refresh_every=3)
    t2 = tn.DeathSpread(alpha=0.4, kind=kind, refresh_every=3)
    trees = [reference_tree(A) for A in seq]
    assert trees[0] != trees[1] and trees[0] != trees[2]  # the cache really is stale
    ours = {}
    for step, A in enumerate(seq):
        At = torch.from_numpy(A)
        v1, v2 = t1(At).item(), t2(At).item()
        searched = 3 * (step // 3)  # searched at steps 0, 3, 6
        tree = ours.setdefault(searched, pairs(t1._edges))
        assert pairs(t1._edges) == pairs(t2._edges) == tree  # cached until the next search
        # scipy's tree on np.corrcoef: the same up to edges tied to rounding
        assert_same_tree(tree, trees[searched], reference_matrix(seq[searched]), atol=1e-12)
        d = on_edges(A, tree, kind)
        np.testing.assert_allclose(v1, np.sum(1 - d), rtol=1e-10)
        np.testing.assert_allclose(v2, 0.4 * np.std(d) - 0.6 * np.mean(d), rtol=1e-10, atol=1e-14)
        if step in (0, 3, 6):  # a search: exact deaths of this step's own tree
            np.testing.assert_allclose(np.sort(d), reference_deaths(A, kind), rtol=1e-10)
    # the number of changed edges reported at the last search (step 6 against step 3)
    assert t1.changed_edges == len(ours[6] - ours[3]) > 0


@pytest.mark.parametrize("kind", KINDS)
def test_cached_tree_gradient_gradcheck_and_full_matrix_reference(kind):
    seq = drifting(2, m=12, n=7, seed=2)
    mod = tn.TopologicalRedundancy(kind=kind, reduction="mean", refresh_every=10**9)
    mod(torch.from_numpy(seq[0]))  # caches the tree of step 0
    tree = torch.tensor(sorted(reference_tree(seq[0])))
    A = torch.from_numpy(seq[1]).requires_grad_()
    assert torch.autograd.gradcheck(mod, (A,), eps=1e-6, atol=1e-6)
    # against autograd through the whole matrix, gathered at the cached edges
    D = tn.correlation_dissimilarity(A, kind)
    ref = (1 - D[tree[:, 0], tree[:, 1]]).mean()
    g_ref = torch.autograd.grad(ref, A)[0]
    ours = mod(A)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.autograd.grad(ours, A)[0], g_ref, rtol=1e-9, atol=1e-12)
    t2 = tn.DeathSpread(kind=kind, refresh_every=10**9)
    t2(torch.from_numpy(seq[0]))
    assert torch.autograd.gradcheck(t2, (A,), eps=1e-6, atol=1e-6)


def test_new_neurons_eval_mode_and_refresh_search_a_new_tree():
    seq = drifting(3, n=15, seed=3)
    t1 = tn.TopologicalRedundancy(refresh_every=100)
    A0, A1 = (torch.from_numpy(a) for a in seq[:2])
    exact1 = topological_redundancy(A1).item()
    t1(A0)
    stale = t1(A1).item()
    assert stale != pytest.approx(exact1, rel=1e-6)  # the cache is in use ...
    t1.eval()
    assert t1(A1).item() == exact1  # ... eval mode is exact
    assert t1._age == 2
    assert_same_tree(t1._edges, reference_tree(seq[0]), reference_matrix(seq[0]), atol=1e-12)
    t1.train()
    # fewer neurons: a new tree at once
    assert t1(A1[:, :10]).item() == pytest.approx(topological_redundancy(A1[:, :10]).item())
    assert t1.changed_edges is None  # no comparable earlier tree
    # same shape, other neurons (a new selection): a new tree
    t1(A0[:, :10], selection={"fc": torch.arange(10)})
    value = t1(A1[:, 5:], selection={"fc": torch.arange(5, 15)}).item()
    assert value == pytest.approx(topological_redundancy(A1[:, 5:]).item(), rel=1e-12)
    t1(A0[:, :10], selection={"fc": torch.arange(10)})
    t1.refresh()
    assert t1(A1[:, :10], selection={"fc": torch.arange(10)}).item() == pytest.approx(
        topological_redundancy(A1[:, :10]).item(), rel=1e-12
    )


def test_cached_tree_survives_state_dict():
    seq = drifting(2, seed=4)
    A0, A1 = (torch.from_numpy(a) for a in seq)
    t1 = tn.TopologicalRedundancy(refresh_every=5)
    t1(A0)
    expected = t1(A1).item()
    restored = tn.TopologicalRedundancy(refresh_every=5)
    restored.load_state_dict(t1.state_dict())
    assert restored._age == 2 and restored(A1).item() == expected
    with pytest.raises(ValueError, match="cached-tree state"):
        restored.set_extra_state({"edges": None})


def test_checkpoint_without_cached_tree_loads_strictly():
    # Regression: a Regularized checkpoint saved before refresh_every had no `_extra_state`.
    net = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 4))
    old = {k: v for k, v in tn.Regularized(net, tn.TopologicalRedundancy()).state_dict().items()}
    old = {k: v for k, v in old.items() if not k.endswith("_extra_state")}
    t1 = tn.TopologicalRedundancy(refresh_every=3)
    t1(torch.randn(32, 5, dtype=torch.float64))
    reg = tn.Regularized(nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 4)), t1)
    result = reg.load_state_dict(old, strict=True)
    assert result.missing_keys == [] and t1._edges is None and t1._age == 0
    partial = {k: v for k, v in old.items() if not k.endswith("weight")}
    with pytest.raises(RuntimeError, match="Missing key"):
        reg.load_state_dict(partial, strict=True)


def test_regularized_passes_the_selection_to_a_cached_tree():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 4))
    t1 = tn.TopologicalRedundancy(refresh_every=4)
    reg = tn.Regularized(net, t1, sampling=tn.ImportanceSampling(0.5))
    x = torch.randn(32, 6)
    reg(x)
    keys = t1._key
    assert keys[1][0][0] == "0" and len(keys[1][0][1]) == 6  # layer "0": ⌊0.5·12⌋ neurons kept
    kept = torch.tensor(keys[1][0][1])
    with torch.no_grad():  # silence the kept neurons: the others become the most active
        net[0].weight[kept] = 0.0
        net[0].bias[kept] = 0.0
    reg(x)
    assert set(t1._key[1][0][1]).isdisjoint(keys[1][0][1])
    assert t1._key != keys and t1._age == 1


def test_bad_refresh_every_and_bad_edges():
    for bad in (0, -1, 2.5, True, "5"):
        with pytest.raises(ValueError, match=r"refresh_every=.* int ≥ 1"):
            tn.TopologicalRedundancy(refresh_every=bad)
        with pytest.raises(ValueError, match=r"refresh_every="):
            tn.DeathSpread(refresh_every=bad)
    A = torch.randn(8, 4)
    with pytest.raises(ValueError, match=r"shape \(k ≥ 1, 2\); got shape \(3,\)"):
        topological_redundancy(A, edges=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"neuron 4, outside \[0, 4\)"):
        topological_redundancy(A, edges=torch.tensor([[0, 4]]))
    with pytest.raises(ValueError, match=r"edge 1 joins neuron 2 to itself"):
        death_spread(A, edges=[[0, 1], [2, 2]])
    with pytest.raises(TypeError, match="integer tensor"):
        edge_deaths(A, edges=torch.tensor([[0.0, 1.0]]))


# ----------------------------------------------------------------------------- devices
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_loss_keeps_dtype_and_device(dtype):
    A = torch.from_numpy(correlated(40, 12, 5)).to(dtype).requires_grad_()
    for loss in (
        tn.TopologicalRedundancy(),
        tn.TopologicalRedundancy(refresh_every=3),
        tn.DeathSpread(),
        tn.CorrelationPenalty(),
        tn.DeCov(),
    ):
        out = loss(A)
        assert out.dtype == dtype and out.device == A.device and out.shape == ()
        (g,) = torch.autograd.grad(out, A)
        assert g.dtype == dtype and g.device == A.device
    d, e = edge_deaths(A)
    assert d.dtype == dtype and e.dtype == torch.long and e.device == A.device


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_losses_equal_the_cpu_ones_and_stay_on_the_device(dtype):
    A_cpu = torch.from_numpy(correlated(64, 40, 6)).to(dtype)
    A_cpu[:, 3] = 1.0  # a dead neuron
    A = A_cpu.cuda().requires_grad_()
    Ac = A_cpu.clone().requires_grad_()
    tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == torch.float32 else {}
    for make in (
        tn.TopologicalRedundancy,
        lambda: tn.TopologicalRedundancy(kind="sqrt", reduction="mean"),
        tn.DeathSpread,
        tn.CorrelationPenalty,
        tn.DeCov,
    ):
        gpu, cpu = make()(A), make()(Ac)
        assert gpu.device.type == "cuda" and gpu.dtype == dtype
        (g_gpu,) = torch.autograd.grad(gpu, A)
        (g_cpu,) = torch.autograd.grad(cpu, Ac)
        assert g_gpu.device.type == "cuda" and g_gpu.dtype == dtype
        torch.testing.assert_close(gpu.cpu(), cpu, **tol)
        torch.testing.assert_close(g_gpu.cpu(), g_cpu, **tol)
    d, e = edge_deaths(A)
    assert d.device.type == "cuda" and e.device.type == "cuda"
    # the cached tree stays on the device and gives the CPU value
    t1_gpu, t1_cpu = (
        tn.TopologicalRedundancy(refresh_every=5),
        tn.TopologicalRedundancy(refresh_every=5),
    )
    t1_gpu(A), t1_cpu(Ac)
    B = A_cpu + 0.5 * torch.from_numpy(np.random.default_rng(7).standard_normal((64, 40)))
    B = B.to(dtype)
    torch.testing.assert_close(t1_gpu(B.cuda()).cpu(), t1_cpu(B), **tol)
    assert t1_gpu._edges.device.type == "cuda"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_given_edges_equal_the_searched_tree_with_dead_neurons(dtype):
    """The fused CPU path for known edges against the path that searches them (value, grad)."""
    A0 = torch.from_numpy(correlated(48, 20, 8))
    A0[:, 4] = 0.0  # dead neurons
    A0[:, 11] = 3.0
    A = A0.to(dtype).requires_grad_()
    d_search, edges = edge_deaths(A, "sqrt")
    d_given, same = edge_deaths(A, "sqrt", edges=edges)
    assert torch.equal(same, edges) and d_given.dtype == dtype
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 0}
    torch.testing.assert_close(d_given, d_search, **tol)
    touches = (edges == 4).any(dim=1) | (edges == 11).any(dim=1)
    assert touches.any() and (d_given[touches] == 1.0).all()
    w = torch.linspace(0.5, 2.0, len(edges), dtype=dtype)
    g_search = torch.autograd.grad((w * d_search).sum(), A)[0]
    g_given = torch.autograd.grad((w * d_given).sum(), A)[0]
    torch.testing.assert_close(g_given, g_search, **(tol if dtype == torch.float32 else {}))
    assert (g_given[:, [4, 11]] == 0).all()


def test_a_hub_of_the_cached_tree_turning_constant_forces_a_search():
    rng = np.random.default_rng(9)
    base = rng.standard_normal(60)
    A0 = rng.standard_normal((60, 15))
    A0[:, 1:7] = base[:, None] + 0.5 * rng.standard_normal((60, 6))
    A0[:, 0] = base  # the closest neighbour of neurons 1..6: a hub of the tree
    tree = reference_tree(A0)
    assert sum(0 in e for e in tree) >= 5
    leaf = next(v for v in range(7, 15) if sum(v in e for e in tree) == 1)
    t1 = tn.TopologicalRedundancy(refresh_every=100)
    t1(torch.from_numpy(A0))
    # a leaf dies: a fresh tree would hold it by one edge too, the cache is kept
    A1 = A0.copy()
    A1[:, leaf] = 0.0
    d = on_edges(A1, tree, "abs")
    d[np.isnan(d)] = 1.0  # np.corrcoef of a constant column; our convention: d = 1
    assert t1(torch.from_numpy(A1)).item() == pytest.approx(np.sum(1 - d), rel=1e-10)
    assert t1._age == 2
    # the hub dies: its edges would all read d = 1, so a new tree is searched
    A2 = A0.copy()
    A2[:, 0] = 3.0
    exact = topological_redundancy(torch.from_numpy(A2)).item()
    assert t1(torch.from_numpy(A2)).item() == pytest.approx(exact, rel=1e-12)
    assert t1._age == 1 and t1.changed_edges >= 4


@pytest.mark.parametrize(
    "make",
    [
        lambda d: tn.TopologicalRedundancy(distributed=d),
        lambda d: tn.DeathSpread(distributed=d),
        lambda d: tn.CorrelationPenalty(distributed=d),
        lambda d: tn.DeCov(distributed=d),
    ],
)
def test_every_activation_loss_validates_its_options_in_the_shared_base(make):
    assert make("auto").distributed == "auto"
    with pytest.raises(ValueError, match=r"distributed='yes' is not valid"):
        make("yes")


def test_weight_penalties_share_the_public_base_and_keep_their_state_dict_keys():
    assert issubclass(tn.L1Penalty, tn.WeightPenalty)
    assert issubclass(tn.L2Penalty, tn.WeightPenalty)
    assert not issubclass(tn.TopologicalRedundancy, tn.WeightPenalty)
    assert list(tn.L1Penalty().state_dict()) == []
    assert list(tn.TopologicalRedundancy().state_dict()) == ["_extra_state"]
    assert list(tn.DeathSpread().state_dict()) == ["_extra_state"]


# ----------------------------------------------------------------------------- extreme columns
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "make",
    [
        lambda: tn.TopologicalRedundancy(),
        lambda: tn.DeathSpread(),
        lambda: tn.CorrelationPenalty(),
        lambda: tn.TopologicalRedundancy(refresh_every=3),
    ],
    ids=["T1", "T2", "Corr", "T1-cached"],
)
def test_extreme_columns_give_the_loss_of_the_unscaled_activations(make, dtype):
    """A column of a diverging network (float32 magnitude 1e37) or a nearly flat one (1e-30)
    used to make the tree search fail on NaN distances ("distance matrix contains nan"), which
    stopped a whole sweep; the losses are scale-invariant per neuron, so the value equals that
    of the unscaled activations and the gradient is the unscaled one divided by the scale."""
    torch.manual_seed(0)
    A = torch.randn(64, 12, dtype=dtype)
    big, tiny = (3e37, 1e-30) if dtype == torch.float32 else (1e300, 1e-300)
    scale = torch.ones(12, dtype=dtype)
    scale[5], scale[7] = big, tiny
    loss = make().train()
    ref_in = A.clone().requires_grad_(True)
    ref = loss(ref_in)
    (g_ref,) = torch.autograd.grad(ref, ref_in)
    loss = make().train()
    x = (A * scale).requires_grad_(True)
    for _ in range(2):  # the cached T1: a search, then a step on the cached tree
        value = loss(x)
        (g,) = torch.autograd.grad(value, x)
        torch.testing.assert_close(value, ref, rtol=1e-5, atol=1e-6)
        assert bool(torch.isfinite(g).all())
        torch.testing.assert_close(g * scale, g_ref, rtol=1e-4, atol=1e-5)
