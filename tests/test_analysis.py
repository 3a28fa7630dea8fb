"""analyse() and RedundancyReport against direct numpy/scipy computations."""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import pytest
import torch
from _compare import assert_same_edges, assert_same_tree, near_ties
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial.distance import squareform
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import topo_neurons as tn
from topo_neurons.analysis import SUMMARY_KEYS, StreamingCorrelation, death_summary

LAYERS = ("fc1", "fc2", "out")


def _mlp(seed: int = 0, dropout: float = 0.0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        OrderedDict(
            [
                ("fc1", nn.Linear(5, 7)),
                ("act1", nn.Tanh()),
                ("drop", nn.Dropout(dropout)),
                ("fc2", nn.Linear(7, 6)),
                ("act2", nn.Tanh()),
                ("out", nn.Linear(6, 3)),
            ]
        )
    ).double()


def _reference_activations(model: nn.Sequential, X: np.ndarray, point: str = "post") -> np.ndarray:
    """Layer outputs computed by hand with numpy (eval mode: dropout is the identity): the
    hidden layers after their tanh (``point="post"``, analyse's default) or before it."""
    W = {
        k: (m.weight.detach().numpy(), m.bias.detach().numpy())
        for k, m in model.named_children()
        if isinstance(m, nn.Linear)
    }
    h1 = X @ W["fc1"][0].T + W["fc1"][1]
    h2 = np.tanh(h1) @ W["fc2"][0].T + W["fc2"][1]
    h3 = np.tanh(h2) @ W["out"][0].T + W["out"][1]
    if point == "post":
        return np.concatenate([np.tanh(h1), np.tanh(h2), h3], axis=1)
    return np.concatenate([h1, h2, h3], axis=1)


def _data(rng: np.random.Generator, m: int = 301) -> np.ndarray:
    X = rng.standard_normal((m, 5))
    X[:, 1] += 0.9 * X[:, 0]  # some correlation to make redundancy
    return X


def _abs_dissimilarity(A: np.ndarray) -> np.ndarray:
    D = 1.0 - np.abs(np.corrcoef(A, rowvar=False))
    np.fill_diagonal(D, 0.0)
    return np.clip(D, 0.0, 1.0)


# ----------------------------------------------------------------------------- streaming
@pytest.mark.parametrize("batch", [1, 7, 64, 1000])
def test_streaming_correlation_equals_corrcoef(rng, batch):
    X = rng.standard_normal((300, 6)) * [1, 2, 3, 4, 5, 6] + 1e4  # large mean: shift matters
    X[:, 3] = 2.0 * X[:, 0] - X[:, 1]
    acc = StreamingCorrelation(6)
    for start in range(0, 300, batch):
        acc.update(X[start : start + batch])
    assert acc.n_examples == 300
    np.testing.assert_allclose(acc.correlation(), np.corrcoef(X, rowvar=False), atol=1e-10)
    np.testing.assert_allclose(acc.covariance(), np.cov(X, rowvar=False, ddof=0), rtol=1e-9)
    np.testing.assert_allclose(acc.dissimilarity("abs"), _abs_dissimilarity(X), atol=1e-10)
    C = np.corrcoef(X, rowvar=False)
    np.testing.assert_allclose(
        acc.dissimilarity("sqrt"), np.sqrt(np.clip(1 - C**2, 0, None)), atol=1e-7
    )


def test_streaming_correlation_matches_the_correlation_layer_on_constant_neurons(rng):
    X = rng.standard_normal((50, 4))
    X[:, 2] = 3.0  # constant: uncorrelated with everything, like correlation_matrix
    acc = StreamingCorrelation(4)
    acc.update(X[:20])
    acc.update(torch.from_numpy(X[20:]))
    np.testing.assert_array_equal(acc.constant(), [False, False, True, False])
    np.testing.assert_allclose(acc.correlation(), tn.correlation_matrix(X), atol=1e-12)
    np.testing.assert_allclose(acc.dissimilarity(), tn.correlation_dissimilarity(X), atol=1e-12)


def test_streaming_correlation_errors(rng):
    acc = StreamingCorrelation(3, labels=["a[0]", "a[1]", "b[0]"])
    with pytest.raises(ValueError, match=r"shape \(m, 3\); got \(4, 2\)"):
        acc.update(np.zeros((4, 2)))
    X = rng.standard_normal((5, 3))
    acc.update(X)
    X[2, 2] = np.nan
    with pytest.raises(ValueError, match=r"b\[0\] is nan at example 7"):
        acc.update(X)
    one = StreamingCorrelation(2)
    one.update(np.ones((1, 2)))
    with pytest.raises(ValueError, match="at least 2 examples; got 1"):
        one.correlation()
    with pytest.raises(TypeError, match="numpy array or a torch tensor"):
        one.update([[1.0, 2.0]])


# ----------------------------------------------------------------------------- analyse
def test_streamed_report_equals_direct_computation_for_every_input_form(rng):
    model = _mlp()
    X = _data(rng)
    A = _reference_activations(model, X)
    D = _abs_dissimilarity(A)
    ref = tn.zero_persistence(D, backend="giotto")  # independent backend
    forms = {
        "tensor/13": (torch.from_numpy(X), 13),
        "array/300": (X, 300),
        "array/1": (X[:40], 1),
        "loader/32": (DataLoader(TensorDataset(torch.from_numpy(X), torch.zeros(301)), 32), 999),
    }
    for name, (data, bs) in forms.items():
        report = tn.analyse(model, data, batch_size=bs)
        if name == "array/1":
            sub = tn.zero_persistence(_abs_dissimilarity(A[:40]))
            np.testing.assert_allclose(report.barcode.deaths, sub.deaths, atol=1e-9)
            continue
        assert report.n_examples == 301, name
        np.testing.assert_allclose(report.barcode.deaths, ref.deaths, atol=1e-6, err_msg=name)
        assert report.barcode.n_points == 16
        assert list(report.layers) == list(LAYERS)


def test_report_numbers_against_numpy_and_scipy(rng):
    model = _mlp(seed=1)
    X = _data(rng)
    A = _reference_activations(model, X)
    C = np.corrcoef(A, rowvar=False)
    D = _abs_dissimilarity(A)
    thresholds = (0.05, 0.3, 0.6)
    report = tn.analyse(model, X, thresholds=thresholds, top_k=4, pair_threshold=0.3)
    layer_of = np.repeat(np.array(LAYERS), [7, 6, 3])
    labels = [f"{layer}[{i}]" for layer, n in zip(LAYERS, (7, 6, 3)) for i in range(n)]
    assert report.labels == tuple(labels)
    assert report.point_layers == tuple(layer_of)
    # Whole network and each layer: barcode = persistence of the block of D.
    blocks = {"network": np.arange(16)} | {
        name: np.flatnonzero(layer_of == name) for name in LAYERS
    }
    for name, cols in blocks.items():
        entry = report.network if name == "network" else report.layers[name]
        Db = D[np.ix_(cols, cols)]
        mst = minimum_spanning_tree(Db).toarray()
        deaths = np.sort(mst[mst > 0])
        np.testing.assert_allclose(entry.barcode.deaths, deaths, atol=1e-9, err_msg=name)
        assert entry.n_neurons == cols.size == entry.total_neurons
        s = entry.summary
        assert list(s) == list(SUMMARY_KEYS)
        np.testing.assert_allclose(
            [s["min"], s["q05"], s["q25"], s["q50"], s["q75"], s["q95"], s["max"]],
            np.quantile(deaths, [0, 0.05, 0.25, 0.5, 0.75, 0.95, 1]),
            atol=1e-9,
        )
        np.testing.assert_allclose([s["mean"], s["std"]], [deaths.mean(), deaths.std()], atol=1e-9)
        np.testing.assert_allclose(s["total_persistence"], deaths.sum(), atol=1e-9)
        # The tree is scipy's on numpy's matrix, up to edges tied to rounding (two computations):
        # the counts below may differ by one per such flipped edge or death near a threshold.
        i, j = np.nonzero(mst)
        flips = assert_same_tree(entry.barcode.edges, np.column_stack([i, j]), Db, atol=1e-12)
        # Effective neurons / clusters = scipy's single-linkage flat clusters at distance t.
        Z = linkage(squareform(Db, checks=False), method="single")
        for t in thresholds:
            flat = fcluster(Z, t, criterion="distance")
            sizes = np.bincount(flat)[1:]
            slack = near_ties(deaths, t, atol=1e-12)
            assert abs(entry.effective_neurons[t] - sizes.size) <= slack, (name, t)
            assert abs(entry.n_clusters[t] - int(np.sum(sizes >= 2))) <= slack, (name, t)
        # Redundant pairs: MST edges with death ≤ 0.3, most redundant first, at most 4.
        order = np.argsort(mst[i, j])
        expected = [(min(a, b), max(a, b)) for a, b in zip(i[order], j[order]) if mst[a, b] <= 0.3][
            :4
        ]
        index = {label: k for k, label in enumerate(labels[c] for c in cols)}
        got = [(index[p.a], index[p.b]) for p in entry.redundant_pairs]
        assert len(got) == len(expected), name
        assert_same_edges(got, expected, Db, atol=1e-12)  # the same pairs, up to near-ties
        np.testing.assert_allclose([Db[e] for e in got], [Db[e] for e in expected], atol=1e-9)
        for p, (a, b) in zip(entry.redundant_pairs, got):
            np.testing.assert_allclose(p.rho, C[cols[a], cols[b]], atol=1e-9)
            np.testing.assert_allclose(p.death, 1 - abs(p.rho), atol=1e-9)
        # Cross-layer MST edges.
        cross = int(np.sum(layer_of[cols][i] != layer_of[cols][j]))
        assert abs(entry.cross_layer_edges - cross) <= flips, name
    assert report.network.cross_layer_edges > 0


def test_dead_neurons_are_reported_and_uncorrelated(rng):
    model = _mlp(seed=2)
    with torch.no_grad():
        model.fc2.weight[4] = 0.0  # fc2[4] outputs its bias whatever the input: constant
    report = tn.analyse(model, _data(rng), batch_size=50)
    assert report.network.constant_neurons == ("fc2[4]",)
    assert report.layers["fc2"].constant_neurons == ("fc2[4]",)
    assert report.layers["fc1"].constant_neurons == ()
    k = report.labels.index("fc2[4]")
    bc = report.barcode
    joins = np.flatnonzero((bc.edges == k).any(axis=1))
    assert joins.size == 1 and bc.deaths[joins[0]] == 1.0
    assert "fc2[4]" in report.to_markdown()


def test_eval_mode_no_grad_and_training_mode_restored(rng):
    model = _mlp(seed=3, dropout=0.5).train()
    X = _data(rng)
    report = tn.analyse(model, torch.from_numpy(X), batch_size=64)
    assert model.training and model.drop.training
    ref = tn.zero_persistence(_abs_dissimilarity(_reference_activations(model, X)))
    np.testing.assert_allclose(report.barcode.deaths, ref.deaths, atol=1e-9)
    assert all(p.grad is None for p in model.parameters())
    model.eval()
    tn.analyse(model, X)
    assert not model.training


def test_data_dependent_sampling_is_fixed_on_the_first_batch(rng):
    model = _mlp(seed=4)
    X = _data(rng)
    X[:50] *= rng.uniform(0.1, 3.0, size=5)  # a first batch with its own importance ranking
    A = _reference_activations(model, X)
    keep = []
    for name, (lo, hi) in zip(LAYERS, [(0, 7), (7, 13), (13, 16)]):
        if name == "out":
            keep += list(range(lo, hi))
            continue
        score = np.abs(A[:50, lo:hi]).mean(axis=0)
        k = int(np.floor(0.5 * (hi - lo)))
        keep += sorted(lo + np.argsort(-score, kind="stable")[:k])
    report = tn.analyse(model, X, sampling=tn.ImportanceSampling(0.5), batch_size=50)
    expected_labels = [
        f"{name}[{c - lo}]"
        for c in keep
        for name, lo, hi in [("fc1", 0, 7), ("fc2", 7, 13), ("out", 13, 16)]
        if lo <= c < hi
    ]
    assert report.labels == tuple(expected_labels)
    ref = tn.zero_persistence(_abs_dissimilarity(A[:, keep]))
    np.testing.assert_allclose(report.barcode.deaths, ref.deaths, atol=1e-9)
    assert report.layers["fc1"].n_neurons == 3 and report.layers["fc1"].total_neurons == 7
    assert "3 of 7" in report.to_markdown()


def test_point_pre_analyses_the_layer_outputs_before_their_activation(rng):
    model = _mlp(seed=6)
    X = _data(rng)
    for point in ("pre", "post"):
        report = tn.analyse(model, X, point=point, batch_size=100)
        A = _reference_activations(model, X, point=point)
        ref = tn.zero_persistence(_abs_dissimilarity(A), backend="gudhi")
        np.testing.assert_allclose(report.barcode.deaths, ref.deaths, atol=1e-9, err_msg=point)
    pre = _reference_activations(model, X, point="pre")
    post = _reference_activations(model, X, point="post")
    assert not np.allclose(
        tn.zero_persistence(_abs_dissimilarity(pre)).deaths,
        tn.zero_persistence(_abs_dissimilarity(post)).deaths,
    )  # the two choices are really different here


def test_layers_argument_and_kind_sqrt(rng):
    model = _mlp(seed=5)
    X = _data(rng)
    A = _reference_activations(model, X)[:, 7:13]
    report = tn.analyse(model, X, layers=["fc2"], kind="sqrt")
    C = np.corrcoef(A, rowvar=False)
    D = np.sqrt(np.clip(1 - C**2, 0, None))
    np.fill_diagonal(D, 0)
    np.testing.assert_allclose(report.barcode.deaths, tn.zero_persistence(D).deaths, atol=1e-7)
    assert list(report.layers) == ["fc2"] and report.network.cross_layer_edges == 0


# ----------------------------------------------------------------------------- report I/O
def test_json_round_trip_and_markdown(rng, tmp_path):
    model = _mlp(seed=6)
    with torch.no_grad():
        model.fc1.weight[0] = 0.0
    report = tn.analyse(model, _data(rng), thresholds=(0.1, 0.25))
    path = report.to_json(tmp_path / "sub" / "report.json")
    back = tn.RedundancyReport.from_json(path)
    assert back == report
    np.testing.assert_array_equal(back.barcode.deaths, report.barcode.deaths)
    np.testing.assert_array_equal(
        back.layers["fc2"].barcode.edges, report.layers["fc2"].barcode.edges
    )
    assert back.layers["out"].effective_neurons == report.layers["out"].effective_neurons
    assert back.network.redundant_pairs == report.network.redundant_pairs
    data = json.loads(path.read_text())
    assert data["n_examples"] == 301 and data["network"]["constant_neurons"] == ["fc1[0]"]
    assert not list(tmp_path.joinpath("sub").glob(".*"))  # no temporary left behind
    md = report.to_markdown()
    for name in LAYERS:
        assert f"`{name}`" in md
    assert md.count("\n| ") >= 5 and "effective @ 0.25" in md
    p = report.network.redundant_pairs[0]
    assert f"`{p.a}` | `{p.b}` | {p.rho:.4f}" in md


def test_from_json_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no report file"):
        tn.RedundancyReport.from_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        tn.RedundancyReport.from_json(bad)
    bad.write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a RedundancyReport"):
        tn.RedundancyReport.from_json(bad)


def test_death_summary_of_an_empty_barcode():
    s = death_summary(np.empty(0))
    assert np.isnan(s["min"]) and s["total_persistence"] == 0.0


# ----------------------------------------------------------------------------- errors
def test_analyse_errors(rng):
    model = _mlp()
    X = _data(rng)
    with pytest.raises(ValueError, match=r"layer 'fc9' is not a module .* valid names"):
        tn.analyse(model, X, layers=["fc9"])
    with pytest.raises(ValueError, match=r"failed on a batch of shape \(256, 4\)"):
        tn.analyse(model, X[:, :4])
    with pytest.raises(ValueError, match="at least 2"):
        tn.analyse(model, X[:1])
    with pytest.raises(ValueError, match="no examples"):
        tn.analyse(model, X[:0])
    with pytest.raises(ValueError, match="valid kinds"):
        tn.analyse(model, X, kind="pearson")
    with pytest.raises(ValueError, match=r"thresholds must be .* in \[0, 1\]"):
        tn.analyse(model, X, thresholds=(0.1, 2.0))
    with pytest.raises(ValueError, match="batch_size must be ≥ 1"):
        tn.analyse(model, X, batch_size=0)
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module"):
        tn.analyse(lambda x: x, X)
    with pytest.raises(TypeError, match=r"data must be a torch\.Tensor"):
        tn.analyse(model, 3.0)
    bad = X.copy()
    bad[5, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        tn.analyse(model, bad)
    model.train()  # the training mode is restored even when the forward fails
    with pytest.raises(ValueError):
        tn.analyse(model, X[:, :4])
    assert model.training


@settings(max_examples=15, deadline=None)
@given(
    st.integers(min_value=2, max_value=40),
    st.integers(min_value=2, max_value=6),
    st.lists(st.integers(min_value=1, max_value=15), min_size=1, max_size=6),
    st.integers(min_value=0, max_value=2**31 - 1),
)
def test_streaming_correlation_any_batch_split_property(m, n, cuts, seed):
    gen = np.random.default_rng(seed)
    X = gen.standard_normal((m, n)) * gen.uniform(0.1, 10.0, n) + gen.uniform(-50, 50, n)
    acc = StreamingCorrelation(n)
    start = 0
    for size in [*cuts, m]:  # arbitrary batch sizes, the rest in one batch
        acc.update(X[start : start + size])
        start = min(start + size, m)
    assert acc.n_examples == m
    np.testing.assert_allclose(acc.correlation(), np.corrcoef(X, rowvar=False), atol=1e-9)


def test_conv_layers_are_labelled_by_channel_and_position(rng):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 3 * 3, 4)).double()
    X = torch.from_numpy(rng.standard_normal((120, 1, 5, 5)))
    report = tn.analyse(model, X, batch_size=50)
    assert report.layers["0"].n_neurons == 18 and report.layers["2"].n_neurons == 4
    assert report.labels[:3] == ("0[c=0, y=0, x=0]", "0[c=0, y=0, x=1]", "0[c=0, y=0, x=2]")
    assert report.labels[9] == "0[c=1, y=0, x=0]" and report.labels[-1] == "2[3]"
    with torch.no_grad():
        A = torch.cat([model[0](X).reshape(120, -1), model(X)], dim=1).numpy()
    ref = tn.zero_persistence(_abs_dissimilarity(A))
    np.testing.assert_allclose(report.barcode.deaths, ref.deaths, atol=1e-9)


def test_progress_bar_goes_to_stderr(rng, capsys):
    tn.analyse(_mlp(), _data(rng), batch_size=100, progress=True)
    captured = capsys.readouterr()
    assert "analyse:" in captured.err and "/4 [" in captured.err  # total known: 4 batches
    assert captured.out == ""


def test_conv_channels_as_neurons_in_analyse_equal_corrcoef_over_pixels(rng):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 5, 3), nn.Tanh(), nn.Conv2d(5, 3, 1)).double()
    X = torch.from_numpy(rng.standard_normal((40, 1, 6, 6)))
    report = tn.analyse(model, X, positions="examples", batch_size=16)
    assert report.labels[:2] == ("0[c=0]", "0[c=1]") and report.labels[-1] == "2[c=2]"
    assert report.n_examples == 40 * 4 * 4
    with torch.no_grad():
        h = torch.tanh(model[0](X))
        A = torch.cat([h, model[2](h)], dim=1)  # (40, 8, 4, 4): channels, every pixel an example
    A = A.permute(0, 2, 3, 1).reshape(-1, 8).numpy()
    ref = tn.zero_persistence(_abs_dissimilarity(A), backend="giotto")
    np.testing.assert_allclose(report.barcode.deaths, ref.deaths, atol=1e-6)


# --------------------------------------------------------------------------- tiled path
def _mlp_and_data(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(12, 300), torch.nn.ReLU(), torch.nn.Linear(300, 280), torch.nn.Tanh()
    )
    with torch.no_grad():
        model[0].bias[:4] = -100.0  # four dead ReLUs: constant neurons
    return model, torch.randn(900, 12)


def test_tiled_path_matches_the_dense_path():
    model, x = _mlp_and_data()
    dense = tn.analyse(model, x, path="dense", batch_size=200)
    tiled = tn.analyse(model, x, path="tiled", batch_size=200, scheduler="sync")
    assert dense.meta["path"] == "dense" and tiled.meta["path"] == "tiled"
    assert "tiled engine" in tiled.to_markdown() and "tiled engine" not in dense.to_markdown()
    for a, b in [
        (dense.network, tiled.network),
        *zip(dense.layers.values(), tiled.layers.values()),
    ]:
        # Streaming float64 sums against float64 activations: equal to rounding.
        np.testing.assert_allclose(a.barcode.deaths, b.barcode.deaths, rtol=0, atol=1e-10)
        assert a.effective_neurons == b.effective_neurons and a.n_clusters == b.n_clusters
        assert a.constant_neurons == b.constant_neurons
        assert [(p.a, p.b) for p in a.redundant_pairs] == [(p.a, p.b) for p in b.redundant_pairs]
        np.testing.assert_allclose(
            [p.rho for p in a.redundant_pairs], [p.rho for p in b.redundant_pairs], atol=1e-10
        )
    assert len(tiled.network.constant_neurons) == 4
    assert tn.RedundancyReport.from_dict(tiled.to_dict()) == tiled


def test_auto_path_keeps_activations_when_the_matrices_would_be_too_large(monkeypatch):
    import topo_neurons.analysis._analyse as analysis_mod  # where analyse reads it

    model, x = _mlp_and_data(1)
    assert tn.analyse(model, x[:400]).meta["path"] == "dense"
    # 580 neurons: 7 float64 580² arrays are 18.8 MB; a 10 MB budget sends it to the tiled path.
    monkeypatch.setattr(analysis_mod, "DENSE_ANALYSE_BYTES", 10 * 1024**2)
    assert tn.analyse(model, x[:400]).meta["path"] == "tiled"


def test_unknown_path_lists_the_valid_ones():
    model, x = _mlp_and_data()
    with pytest.raises(ValueError, match=r"path='matrix' is not valid; valid paths are"):
        tn.analyse(model, x, path="matrix")
