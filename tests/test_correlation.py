"""Correlation space: values against numpy, autograd, constant neurons, bad input, blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import topo_neurons as tn
from topo_neurons import correlation as corr_mod
from topo_neurons.correlation import _gram

KINDS = ("abs", "sqrt")
TOL = {np.float64: 1e-12, np.float32: 2e-5}


def reference(A: np.ndarray, kind: str) -> np.ndarray:
    """Independent reference: ``np.corrcoef`` in float64, then the dissimilarity."""
    with np.errstate(invalid="ignore", divide="ignore"):  # constant columns give NaN rows
        C = np.corrcoef(np.asarray(A, dtype=np.float64), rowvar=False)
    D = 1.0 - np.abs(C) if kind == "abs" else np.sqrt(np.clip(1.0 - C * C, 0.0, None))
    np.fill_diagonal(D, 0.0)
    return D


def activations(rng: np.random.Generator, m: int, n: int, dtype=np.float64) -> np.ndarray:
    """Activations with some correlation structure (a few shared factors plus noise)."""
    factors = rng.standard_normal((m, 3))
    A = factors @ rng.standard_normal((3, n)) + 0.5 * rng.standard_normal((m, n))
    return A.astype(dtype)


# --------------------------------------------------------------------------- values
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_values_match_corrcoef(rng, kind, dtype):
    A = activations(rng, 40, 17, dtype)
    A[:, 5] = 2.0  # a constant neuron too
    before = A.copy()
    D = tn.correlation_dissimilarity(A, kind=kind)
    assert np.array_equal(A, before)  # the input is never modified
    assert isinstance(D, np.ndarray)
    assert D.dtype == dtype
    assert D.shape == (17, 17)
    ref = reference(A, kind)
    ref[5, :] = ref[:, 5] = 1.0
    ref[5, 5] = 0.0
    np.testing.assert_allclose(D, ref, rtol=0, atol=TOL[dtype])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("requires_grad", [False, True])
def test_torch_values_dtype_device_and_graph(rng, kind, dtype, requires_grad):
    A_np = activations(rng, 30, 12)
    A = torch.tensor(A_np, dtype=dtype, requires_grad=requires_grad)
    D = tn.correlation_dissimilarity(A, kind=kind)
    assert isinstance(D, torch.Tensor)
    assert D.dtype == dtype
    assert D.device == A.device
    assert D.requires_grad == requires_grad
    tol = TOL[np.float64 if dtype == torch.float64 else np.float32]
    ref = reference(A_np.astype(np.float32) if dtype == torch.float32 else A_np, kind)
    np.testing.assert_allclose(D.detach().numpy(), ref, rtol=0, atol=tol)


def test_correlation_matrix_matches_corrcoef(rng):
    A = activations(rng, 25, 9)
    C = tn.correlation_matrix(A)
    np.testing.assert_allclose(C, np.corrcoef(A, rowvar=False), rtol=0, atol=1e-12)
    assert np.array_equal(np.diagonal(C), np.ones(9))
    Ct = tn.correlation_matrix(torch.tensor(A, requires_grad=True))
    np.testing.assert_allclose(Ct.detach().numpy(), C, rtol=0, atol=1e-12)


def test_integer_input_is_computed_in_float64(rng):
    A = rng.integers(0, 10, size=(20, 6))
    D = tn.correlation_dissimilarity(A)
    assert D.dtype == np.float64
    np.testing.assert_allclose(D, reference(A, "abs"), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("grad", [False, True])
def test_exact_symmetry_zero_diagonal_and_range(rng, kind, grad):
    A = torch.tensor(activations(rng, 64, 70), requires_grad=grad)
    D = tn.correlation_dissimilarity(A, kind=kind).detach().numpy()
    assert np.array_equal(D, D.T)
    assert np.array_equal(np.diagonal(D), np.zeros(70))
    assert D.min() >= 0.0 and D.max() <= 1.0


@pytest.mark.parametrize("kind", KINDS)
def test_grad_path_equals_no_grad_path(rng, kind):
    A = torch.tensor(activations(rng, 33, 21), requires_grad=True)
    with_grad = tn.correlation_dissimilarity(A, kind=kind)
    with torch.no_grad():
        without = tn.correlation_dissimilarity(A, kind=kind)
    assert with_grad.grad_fn is not None and without.grad_fn is None
    torch.testing.assert_close(with_grad.detach(), without, rtol=0, atol=1e-14)


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck_float64(kind):
    torch.manual_seed(0)
    A = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)

    def f(x):
        return tn.correlation_dissimilarity(x, kind=kind)

    assert torch.autograd.gradcheck(f, (A,), eps=1e-6, atol=1e-7)


def test_gradcheck_correlation_matrix_float64():
    torch.manual_seed(1)
    A = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(tn.correlation_matrix, (A,), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_perfectly_correlated_pair_has_finite_gradient(rng, kind, sign):
    A_np = activations(rng, 20, 4)
    A_np[:, 2] = sign * 3.0 * A_np[:, 0] + 1.5  # |ρ(0, 2)| = 1
    A = torch.tensor(A_np, requires_grad=True)
    D = tn.correlation_dissimilarity(A, kind=kind)
    assert D[0, 2].item() == pytest.approx(0.0, abs=1e-7)
    D.sum().backward()
    assert torch.isfinite(A.grad).all()
    # The other entries still get their exact gradient: compare one column pair with
    # central finite differences of the numpy reference.
    eps = 1e-6
    i, j = 5, 1
    plus, minus = A_np.copy(), A_np.copy()
    plus[i, j] += eps
    minus[i, j] -= eps
    # D.sum() depends on column 1 only through pairs (1, k); none of them has |ρ| = 1.
    fd = (reference(plus, kind).sum() - reference(minus, kind).sum()) / (2 * eps)
    assert A.grad[i, j].item() == pytest.approx(fd, rel=1e-5, abs=1e-6)


# --------------------------------------------------------------------------- constant neurons
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("value", [0.0, 0.1, -7.3])
def test_constant_neuron_uncorrelated_default(rng, kind, value):
    A_np = activations(rng, 15, 6)
    A_np[:, 3] = value  # e.g. a dead ReLU; 0.1 has a mean that rounds off the value
    A = torch.tensor(A_np, requires_grad=True)
    D = tn.correlation_dissimilarity(A, kind=kind)
    Dn = D.detach().numpy()
    others = [0, 1, 2, 4, 5]
    assert np.array_equal(Dn[3, others], np.ones(5))
    assert np.array_equal(Dn[others, 3], np.ones(5))
    assert Dn[3, 3] == 0.0
    np.testing.assert_allclose(
        Dn[np.ix_(others, others)], reference(A_np[:, others], kind), rtol=0, atol=1e-12
    )
    D.sum().backward()
    assert torch.isfinite(A.grad).all()
    assert torch.equal(A.grad[:, 3], torch.zeros(15, dtype=torch.float64))
    assert (A.grad[:, others].abs().sum(dim=0) > 0).all()
    # The numpy (blocked, no-grad) path gives the same matrix.
    np.testing.assert_array_equal(tn.correlation_dissimilarity(A_np, kind=kind), Dn)
    # Correlation: ρ = 0 with every other neuron, 1 with itself.
    C = tn.correlation_matrix(A_np)
    assert np.array_equal(C[3, others], np.zeros(5)) and C[3, 3] == 1.0


def test_normalized_activations_zero_out_constant_columns():
    A = torch.tensor([[0.1, 1.0], [0.1, 2.0], [0.1, 4.0]], dtype=torch.float64)
    assert A[:, 0].mean().item() != 0.1  # the rounding the implementation must not trust
    Z, const = corr_mod.normalized_activations(A)
    assert const.tolist() == [True, False]
    assert torch.equal(Z[:, 0], torch.zeros(3, dtype=torch.float64))
    c = A[:, 1] - A[:, 1].mean()
    torch.testing.assert_close(Z[:, 1], c / c.norm())


@pytest.mark.parametrize("as_torch", [False, True])
def test_constant_neuron_drop_reports_kept(rng, as_torch):
    A_np = activations(rng, 18, 8)
    A_np[:, [2, 6]] = 4.0
    A = torch.tensor(A_np) if as_torch else A_np
    D, kept = tn.correlation_dissimilarity(A, kind="sqrt", constant="drop", return_kept=True)
    assert type(D) is type(A) and type(kept) is type(A)
    kept = np.asarray(kept)
    assert kept.tolist() == [0, 1, 3, 4, 5, 7]
    np.testing.assert_allclose(np.asarray(D), reference(A_np[:, kept], "sqrt"), atol=1e-12)
    assert tn.constant_neurons(A).tolist() == [2, 6]


def test_drop_without_constants_keeps_everything(rng):
    A = activations(rng, 10, 5)
    D, kept = tn.correlation_dissimilarity(A, constant="drop", return_kept=True)
    assert kept.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(D, reference(A, "abs"), atol=1e-12)


def test_drop_leaving_fewer_than_two_neurons_raises(rng):
    A = activations(rng, 10, 3)
    A[:, 0] = 1.0
    A[:, 2] = -2.0
    with pytest.raises(ValueError, match=r"constant='drop' leaves 1 neuron\(s\) out of 3"):
        tn.correlation_dissimilarity(A, constant="drop")


def test_constant_neuron_raise_names_them(rng):
    A = activations(rng, 10, 9)
    A[:, 3] = 0.0
    A[:, 7] = 2.5
    with pytest.raises(ValueError, match=r"2 constant neuron\(s\).*neuron\(s\) 3, 7"):
        tn.correlation_dissimilarity(A, constant="raise")
    B = activations(rng, 10, 9)
    np.testing.assert_allclose(
        tn.correlation_dissimilarity(B, constant="raise"), reference(B, "abs"), atol=1e-12
    )


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("as_torch", [False, True])
def test_non_finite_names_example_and_neuron(rng, bad, as_torch):
    A = activations(rng, 12, 7)
    A[4, 5] = bad
    A = torch.tensor(A) if as_torch else A
    with pytest.raises(ValueError, match=rf"{bad} at example 4, neuron 5"):
        tn.correlation_dissimilarity(A)
    with pytest.raises(ValueError, match="example 4, neuron 5"):
        tn.constant_neurons(A)


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((1, 5), r"at least 2 examples.*\(1, 5\)"),
        ((6, 1), r"at least 2 neurons.*\(6, 1\)"),
        ((6,), r"shape \(m examples, n neurons\); got 1 dimension"),
        ((2, 3, 4), r"shape \(m examples, n neurons\); got 3 dimension.*\(2, 3, 4\)"),
        ((0, 4), r"at least 2 examples"),
    ],
)
@pytest.mark.parametrize("as_torch", [False, True])
def test_bad_shapes(shape, match, as_torch):
    A = np.ones(shape)
    if len(shape) == 2 and shape[0] > 0:
        A = np.random.default_rng(0).standard_normal(shape)
    A = torch.tensor(A) if as_torch else A
    with pytest.raises(ValueError, match=match):
        tn.correlation_dissimilarity(A)


def test_bad_kind_and_policy_list_the_valid_options(rng):
    A = activations(rng, 5, 3)
    with pytest.raises(ValueError, match=r"kind='cosine'.*valid kinds are \('abs', 'sqrt'\)"):
        tn.correlation_dissimilarity(A, kind="cosine")
    with pytest.raises(ValueError, match=r"constant='zero'.*\('uncorrelated', 'drop', 'raise'\)"):
        tn.correlation_dissimilarity(A, constant="zero")
    with pytest.raises(ValueError, match="valid policies"):
        tn.correlation_matrix(A, constant="ignore")


@pytest.mark.parametrize(
    ("A", "match"),
    [
        (np.ones((4, 3), dtype=np.complex128), r"real numbers; got numpy dtype complex128"),
        (np.array([["a", "b"], ["c", "d"]]), r"real numbers; got numpy dtype <U1"),
        (np.array([[1, None], [2, 3]], dtype=object), r"real numbers; got numpy dtype object"),
        (torch.ones(4, 3, dtype=torch.complex64), r"must be real; got complex dtype"),
        ([[1.0, 2.0], [3.0, 5.0]], r"numpy array or a torch tensor.*got list"),
        ("activations", r"numpy array or a torch tensor.*got str"),
    ],
    ids=["complex", "str", "object", "torch-complex", "list", "string"],
)
def test_bad_types(A, match):
    with pytest.raises(TypeError, match=match):
        tn.correlation_dissimilarity(A)


# --------------------------------------------------------------------------- blocked path
@pytest.mark.parametrize("kind", KINDS)
def test_blocked_path_equals_direct_formula(kind):
    n = 2500
    assert n > _gram._BLOCK_ROWS  # the output is filled in more than one block
    rng = np.random.default_rng(7)
    A = activations(rng, 8, n)
    A[:, 2300] = 1.0  # a constant neuron in the second block
    D = tn.correlation_dissimilarity(A, kind=kind)
    ref = reference(A, kind)
    ref[2300, :] = 1.0
    ref[:, 2300] = 1.0
    ref[2300, 2300] = 0.0
    np.testing.assert_allclose(D, ref, rtol=0, atol=1e-12)
    assert np.array_equal(D, D.T)
    assert np.array_equal(np.diagonal(D), np.zeros(n))


@pytest.mark.parametrize("block_rows", [1, 3, 7, 40])
@pytest.mark.parametrize("contiguous", [True, False], ids=["fused-kernel", "tensor-ops"])
def test_fill_blocked_any_block_size(rng, block_rows, contiguous):
    A = torch.tensor(activations(rng, 9, 23))
    Z, const = corr_mod.normalized_activations(A)
    # A non-contiguous output takes the tensor-operation path used on GPUs.
    out = torch.full((23, 23 if contiguous else 46), np.nan, dtype=torch.float64)
    out = out if contiguous else out[:, ::2]
    assert out.is_contiguous() == contiguous
    _gram._fill_blocked(Z, out, "corr", block_rows=block_rows)
    _gram._finish(out, const, diag=1.0, off=0.0)  # sets the exact diagonal
    assert torch.equal(out, out.T)
    np.testing.assert_allclose(out.numpy(), np.corrcoef(A.numpy(), rowvar=False), atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_kernel_equals_tensor_ops(rng, kind, dtype):
    Z, _ = corr_mod.normalized_activations(torch.tensor(activations(rng, 16, 150), dtype=dtype))
    fused = _gram._fill_blocked(Z, torch.empty(150, 150, dtype=dtype), kind, block_rows=64)
    ops = _gram._fill_blocked(Z, torch.empty(150, 300, dtype=dtype)[:, ::2], kind, 64)
    fused.fill_diagonal_(0.0)
    ops.fill_diagonal_(0.0)
    torch.testing.assert_close(fused, ops, rtol=0, atol=1e-6 if dtype == torch.float32 else 1e-14)


# --------------------------------------------------------------------------- properties
@given(
    m=st.integers(3, 25),
    n=st.integers(2, 20),
    seed=st.integers(0, 2**32 - 1),
    kind=st.sampled_from(KINDS),
)
def test_property_matches_reference_and_is_a_dissimilarity(m, n, seed, kind):
    A = activations(np.random.default_rng(seed), m, n)
    D = tn.correlation_dissimilarity(A, kind=kind)
    np.testing.assert_allclose(D, reference(A, kind), rtol=0, atol=1e-10)
    assert np.array_equal(D, D.T)
    assert np.array_equal(np.diagonal(D), np.zeros(n))
    assert D.min() >= 0.0 and D.max() <= 1.0


@given(
    m=st.integers(3, 20),
    n=st.integers(2, 12),
    seed=st.integers(0, 2**32 - 1),
    kind=st.sampled_from(KINDS),
)
def test_property_invariant_under_permutation_and_affine_maps(m, n, seed, kind):
    rng = np.random.default_rng(seed)
    A = activations(rng, m, n)
    perm = rng.permutation(n)
    scale = rng.uniform(0.5, 3.0, n) * rng.choice([-1.0, 1.0], n)
    shift = rng.normal(0.0, 5.0, n)
    D = tn.correlation_dissimilarity(A, kind=kind)
    D2 = tn.correlation_dissimilarity(A[:, perm] * scale[perm] + shift[perm], kind=kind)
    np.testing.assert_allclose(D2, D[np.ix_(perm, perm)], rtol=0, atol=1e-9)


# ----------------------------------------------------------------------------- extreme columns
@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(3, 40),
    n=st.integers(2, 12),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    data=st.data(),
)
def test_property_power_of_two_column_scaling_leaves_the_correlation_unchanged(
    seed, m, n, dtype, data
):
    """Columns scaled by 2**e, far past where their sums overflow or underflow, give the same
    correlation bit for bit (the rescaling is exact, and so is the arithmetic's equivariance)."""
    A = torch.from_numpy(activations(np.random.default_rng(seed), m, n)).to(dtype)
    reach = 100 if dtype == torch.float32 else 900  # float32 spans 2**±126, float64 2**±1022
    e = data.draw(st.lists(st.integers(-reach, reach), min_size=n, max_size=n))
    scaled = A * torch.ldexp(torch.ones(n, dtype=dtype), torch.tensor(e))
    assert bool(torch.isfinite(scaled).all())
    want = tn.correlation_matrix(A)
    assert torch.equal(tn.correlation_matrix(scaled), want)
    assert torch.equal(tn.correlation_dissimilarity(scaled), tn.correlation_dissimilarity(A))
    np.testing.assert_allclose(
        want.double().numpy(), np.corrcoef(A.double().numpy(), rowvar=False), atol=1e-5
    )


def test_ordinary_activations_are_not_rescaled(rng):
    from topo_neurons.correlation import rescale_extreme_columns

    for dtype in (torch.float32, torch.float64):
        A = torch.from_numpy(activations(rng, 50, 8)).to(dtype) * 1e6
        assert rescale_extreme_columns(A) is A  # the same tensor: bit-identical downstream


def test_extreme_columns_used_to_give_wrong_or_nan_correlations(rng):
    """A float32 column of magnitude 1e37 overflowed its norm (correlations silently 0), one of
    magnitude 1e-30 underflowed it (NaN); both now equal the correlation of the unscaled data."""
    A = torch.from_numpy(activations(rng, 64, 6)).float()
    B = A.clone()
    B[:, 1] *= 3e37
    B[:, 4] *= 1e-30
    C = tn.correlation_matrix(B)
    assert bool(torch.isfinite(C).all())
    np.testing.assert_allclose(
        C.double().numpy(), np.corrcoef(A.double().numpy(), rowvar=False), atol=1e-5
    )


def test_subnormal_spreads_are_scaled_into_range(rng):
    """A column spread over subnormal float32 values (1e-42) needs a scale past 2**127; the
    largest power of two the dtype holds is used, and the correlation is still exact."""
    A = torch.from_numpy(activations(rng, 40, 5)).float()
    B = A.clone()
    B[:, 2] = torch.ldexp(torch.round(A[:, 2] * 64), torch.tensor(-149))  # multiples of 2**-149
    assert 0 < float(B[:, 2].abs().max()) < torch.finfo(torch.float32).tiny
    ref = np.corrcoef(B.double().numpy(), rowvar=False)
    C = tn.correlation_matrix(B)
    assert bool(torch.isfinite(C).all())
    np.testing.assert_allclose(C.double().numpy(), ref, atol=1e-5)
