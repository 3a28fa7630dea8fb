"""giotto-tda's diagram layout and the scikit-learn transformer ``tn.NeuronPersistence``.

giotto-tda itself does not install beside our pins (its sdist builds C++ and clones pybind11;
no wheel for this Python), so the layout is checked against its documented post-processing
(``gtda/homology/_utils.py``: ``_postprocess_diagrams``) applied to the output of giotto-ph's
``ripser_parallel``, which is what its ``VietorisRipsPersistence`` computes with: the H0
infinite bar (ripser's last) removed when ``reduced_homology``, points with birth ≥ death
removed, a collection padded with ``[min birth, min birth, dim]`` rows.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gph import ripser_parallel
from scipy import stats
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import estimator_checks

import topo_neurons as tn


def _giotto_reference(D: np.ndarray, reduced: bool = True, infinity: float = np.inf):
    """giotto-tda's VietorisRipsPersistence(homology_dimensions=(0,)) on a precomputed matrix,
    by its documented steps on giotto-ph's diagram."""
    dgm = ripser_parallel(D, metric="precomputed", maxdim=0)["dgms"][0].astype(np.float64)
    if reduced:
        dgm = dgm[:-1]  # ripser puts the infinite H0 bar last
    dgm = np.nan_to_num(dgm, posinf=infinity)
    dgm = dgm[dgm[:, 0] < dgm[:, 1]]
    return np.insert(dgm, 2, 0, axis=1)


def _sorted_rows(X):
    return X[np.lexsort((X[:, 1], X[:, 0]))]


def _matrices(seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((60, 10))
    A[:, 3] = 2 * A[:, 1] + 1  # a zero-length bar (|ρ| = 1)
    B = rng.standard_normal((50, 7))
    C = np.round(rng.standard_normal((40, 8)))  # ties
    return [A, B, C]


@pytest.mark.parametrize("reduced", [True, False])
def test_to_giotto_is_giotto_tdas_layout(reduced):
    for A in _matrices():
        D = tn.correlation_dissimilarity(A)
        bc = tn.zero_persistence(D)
        got = bc.to_giotto(reduced=reduced)
        ref = _giotto_reference(D, reduced)
        assert got.shape == ref.shape and got.dtype == np.float64
        np.testing.assert_allclose(_sorted_rows(got), _sorted_rows(ref), atol=1e-6)
        assert np.all(got[:, 2] == 0) and np.all(got[:, 0] == 0)
    # a matrix with exact zeros and ties: the zero-length bars are dropped as giotto-tda drops them
    D = _exact_matrix()
    bc = tn.zero_persistence(D)
    assert np.count_nonzero(bc.deaths == 0) == 2
    np.testing.assert_array_equal(_sorted_rows(bc.to_giotto(reduced=reduced)),
                                  _sorted_rows(_giotto_reference(D, reduced)))  # fmt: skip


def _exact_matrix():
    """10 points, distances on a grid of quarters (exact in float32 too), two exact zeros."""
    rng = np.random.default_rng(8)
    X = rng.integers(1, 4, size=(10, 10)) / 4
    D = np.triu(X, 1) + np.triu(X, 1).T
    D[0, 1] = D[1, 0] = D[2, 3] = D[3, 2] = 0.0
    return D


def test_infinity_values_and_the_round_trip():
    D = _exact_matrix()
    bc = tn.zero_persistence(D)
    rows = bc.to_giotto(reduced=False, infinity_values=5.0)
    np.testing.assert_array_equal(rows[-1], [0.0, 5.0, 0.0])
    np.testing.assert_array_equal(
        _sorted_rows(rows), _sorted_rows(_giotto_reference(D, False, 5.0))
    )
    back = tn.Barcode.from_giotto(rows, n_points=bc.n_points, infinity_values=5.0)
    np.testing.assert_array_equal(back.deaths, bc.deaths)
    assert back.n_points == 10 and back.backend == "giotto-tda"
    # without n_points the two dropped zero-length bars cannot be known
    assert tn.Barcode.from_giotto(bc.to_giotto()).n_points == 8
    # the pairs are not in the layout: a path in death order, with the same cluster counts
    for t in (0.0, 0.25, 0.5, 0.75):
        assert back.n_clusters(t) == bc.n_clusters(t)
    # padding rows and rows of other dimensions are not bars
    padded = np.vstack([bc.to_giotto(), [[0, 0, 0], [0, 0, 0], [0.2, 0.7, 1]]])
    np.testing.assert_array_equal(tn.Barcode.from_giotto(padded, 10).deaths, back.deaths)


def test_from_giotto_rejects_what_is_not_an_h0_barcode():
    with pytest.raises(ValueError, match=r"shape \(n_points, 3\)"):
        tn.Barcode.from_giotto(np.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match="born at 0"):
        tn.Barcode.from_giotto(np.array([[0.1, 0.5, 0]]))
    with pytest.raises(ValueError, match="n_points=2 is too small"):
        tn.Barcode.from_giotto(np.array([[0, 0.1, 0], [0, 0.5, 0]]), n_points=2)


def test_neuron_persistence_transform_pads_as_giotto_tda():
    X = _matrices()
    out = tn.NeuronPersistence().fit_transform(X)
    refs = [_giotto_reference(tn.correlation_dissimilarity(A)) for A in X]
    k = max(len(r) for r in refs)
    assert out.shape == (3, k, 3)
    for diagram, ref in zip(out, refs):
        np.testing.assert_allclose(_sorted_rows(diagram[: len(ref)]), _sorted_rows(ref), atol=1e-6)
        np.testing.assert_array_equal(diagram[len(ref) :], 0.0)  # [0, 0, 0] padding rows
    # a 3-D array of samples, torch tensors, and the tiled path give the same diagrams
    same = np.stack([X[1][:40], X[1][10:]])
    a = tn.NeuronPersistence().fit_transform(same)
    b = tn.NeuronPersistence(path="tiled").fit_transform([torch.from_numpy(s) for s in same])
    np.testing.assert_allclose(a, b, atol=1e-12)
    c = tn.NeuronPersistence(reduced_homology=False).fit_transform(X[:1])
    assert c.shape == (1, len(refs[0]) + 1, 3) and c[0, -1, 1] == np.inf


def test_pipeline_with_a_diagram_feature():
    """make_pipeline(NeuronPersistence(), <a giotto-tda-style diagram transformer>): the
    persistence entropy of giotto-tda's PersistenceEntropy (lifetimes normalised to sum 1;
    padding rows have lifetime 0 and add nothing), written here on the 3-D array."""

    def entropy(diagrams):
        life = diagrams[:, :, 1] - diagrams[:, :, 0]
        p = life / life.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            return -np.nansum(np.where(p > 0, p * np.log(p), 0.0), axis=1, keepdims=True)

    X = _matrices()
    pipe = make_pipeline(tn.NeuronPersistence(kind="sqrt"), FunctionTransformer(entropy))
    got = pipe.fit_transform(X)
    ref = [stats.entropy(tn.correlation_persistence(A, kind="sqrt").deaths) for A in X]
    np.testing.assert_allclose(got[:, 0], ref, rtol=1e-9)
    assert clone(pipe).fit(X).transform(X).shape == (3, 1)


def test_scikit_learn_conventions():
    est = tn.NeuronPersistence(kind="bogus", path="nowhere")  # stored unchanged, not checked
    assert est.get_params() == {"kind": "bogus", "path": "nowhere", "constant": "uncorrelated",
                                "reduced_homology": True, "infinity_values": None}  # fmt: skip
    with pytest.raises(ValueError, match="kind='bogus'"):
        est.fit(_matrices())
    with pytest.raises(ValueError, match=r"path='nowhere'.*'auto', 'dense', 'tiled'"):
        est.set_params(kind="abs").fit(_matrices())
    with pytest.raises(NotFittedError):
        tn.NeuronPersistence().transform(_matrices())
    with pytest.raises(ValueError, match=r"X\[1\] must be an activation matrix"):
        tn.NeuronPersistence().fit([np.zeros((5, 3)), np.zeros(5)])
    with pytest.raises(TypeError, match="list of activation matrices"):
        tn.NeuronPersistence().fit(np.zeros((5, 3)))
    for check in (
        estimator_checks.check_no_attributes_set_in_init,
        estimator_checks.check_parameters_default_constructible,
        estimator_checks.check_get_params_invariance,
        estimator_checks.check_set_params,
        estimator_checks.check_estimator_cloneable,
        estimator_checks.check_do_not_raise_errors_in_init_or_set_params,
    ):
        check("NeuronPersistence", tn.NeuronPersistence())
