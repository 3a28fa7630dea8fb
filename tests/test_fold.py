"""Folding redundant neurons (issue 18): tn.fold_redundant, FoldReport, the CLI, the benchmark."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import topo_neurons as tn
from topo_neurons.cli import main as cli_main
from topo_neurons.compress import FoldReport, foldable_layers

ROOT = Path(__file__).resolve().parents[1]


def _planted_mlp(seed: int = 0) -> nn.Sequential:
    """5-8-6-3 ReLU MLP (float64) with two planted duplicates in layer 0:
    neuron 5 = 3 × neuron 1 and neuron 7 = 0.5 × neuron 2 (incoming weights and bias)."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3)
    ).double()
    with torch.no_grad():
        net[0].weight[5] = 3 * net[0].weight[1]
        net[0].bias[5] = 3 * net[0].bias[1]
        net[0].weight[7] = 0.5 * net[0].weight[2]
        net[0].bias[7] = 0.5 * net[0].bias[2]
    return net


def _state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_planted_duplicates_fold_exactly_and_only_they_go():
    net = _planted_mlp()
    x = torch.randn(300, 5, dtype=torch.float64)
    before = _state(net)
    small, rep = tn.fold_redundant(net, x, threshold=1e-9)
    # outputs equal to float64 rounding, on the calibration data and on fresh data
    fresh = torch.randn(500, 5, dtype=torch.float64) * 3
    for data in (x, fresh):
        ref = net(data).detach()
        assert torch.allclose(small(data).detach(), ref, rtol=1e-12, atol=1e-12 * ref.abs().max())
    # exactly the two duplicates are gone: the representative is the larger-variance member
    lf = rep["0"]
    assert lf.removed == (1, 7)
    assert sorted(c.representative for c in lf.clusters) == [2, 5]
    assert rep["2"].removed == ()
    assert small[0].out_features == 6 and small[2].in_features == 6
    assert small[0].weight.shape == (6, 5) and small[2].weight.shape == (6, 6)
    # the map of neuron 1 from 5 is 1/3, of 7 from 2 is 0.5, intercept 0
    maps = {f.neuron: f for c in lf.clusters for f in c.folds}
    assert maps[1].coef[0] == pytest.approx(1 / 3, rel=1e-12)
    assert maps[7].coef[0] == pytest.approx(0.5, rel=1e-12)
    assert abs(maps[1].intercept) < 1e-12 and maps[1].rel_error < 1e-12
    # the input model is unchanged
    after = net.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert net[0].out_features == 8


def test_counts_agree_with_layer_sizes():
    net = _planted_mlp(1)
    x = torch.randn(200, 5, dtype=torch.float64)
    small, rep = tn.fold_redundant(net, x, threshold=0.3)
    assert rep.layer_sizes() == {"0": small[0].out_features, "2": small[2].out_features}
    assert rep.n_neurons == 14
    assert rep.n_removed == 14 - small[0].out_features - small[2].out_features
    assert rep.fraction_removed == pytest.approx(rep.n_removed / 14)
    assert small[2].in_features == small[0].out_features
    assert small[4].in_features == small[2].out_features
    assert "4" in rep.skipped  # the output layer: no activation, no consumer


def test_maps_are_numpy_lstsq_from_the_kept_neurons():
    """Each map is numpy.linalg.lstsq of h_j on [h_sources, 1] over the calibration data."""
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(4, 12), nn.Tanh(), nn.Linear(12, 2)).double()
    x = torch.randn(400, 4, dtype=torch.float64)
    _, rep = tn.fold_redundant(net, x, threshold=0.6, dry_run=True)
    H = torch.tanh(net[0](x)).detach().numpy()
    folds = [f for c in rep["0"].clusters for f in c.folds]
    assert folds, "threshold 0.6 should cluster some of 12 tanh neurons"
    for f in folds:
        X = np.column_stack([H[:, list(f.sources)], np.ones(len(H))])
        sol = np.linalg.lstsq(X, H[:, f.neuron], rcond=None)[0]
        np.testing.assert_allclose(f.coef, sol[:-1], rtol=1e-9, atol=1e-12)
        assert f.intercept == pytest.approx(sol[-1], rel=1e-9, abs=1e-12)
        resid = H[:, f.neuron] - X @ sol
        spread = np.linalg.norm(H[:, f.neuron] - H[:, f.neuron].mean())
        assert f.rel_error == pytest.approx(np.linalg.norm(resid) / spread, rel=1e-9)
        assert f.max_abs_error == pytest.approx(np.abs(resid).max(), rel=1e-9)


def test_clusters_are_the_barcodes_single_linkage_clusters():
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(6, 20), nn.ReLU(), nn.Linear(20, 2)).double()
    x = torch.randn(300, 6, dtype=torch.float64)
    _, rep = tn.fold_redundant(net, x, threshold=0.4, dry_run=True)
    H = torch.relu(net[0](x)).detach().numpy()
    # independent reference: scipy's single linkage on 1 − |ρ|
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    D = 1 - np.abs(np.corrcoef(H.T))
    np.fill_diagonal(D, 0)
    lab = fcluster(linkage(squareform(D, checks=False), "single"), 0.4, "distance")
    ref = sorted(tuple(np.flatnonzero(lab == v)) for v in np.unique(lab) if np.sum(lab == v) >= 2)
    got = sorted(c.members for c in rep["0"].clusters)
    # a merge height within rounding of 0.4 may fall either side: compare away from ties
    heights = np.sort(linkage(squareform(D, checks=False), "single")[:, 2])
    if np.min(np.abs(heights - 0.4)) > 1e-9:
        assert got == [tuple(int(i) for i in r) for r in ref]
    for c in rep["0"].clusters:
        assert c.representative == c.members[int(np.argmax(H[:, list(c.members)].var(0)))]


def test_max_error_refuses_and_dry_run_changes_nothing():
    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2)).double()
    x = torch.randn(300, 4, dtype=torch.float64)
    none, dry = tn.fold_redundant(net, x, threshold=0.7, dry_run=True)
    assert none is None and dry.dry_run
    pair_errors = [f.rel_error for c in dry["0"].clusters for f in c.folds]
    assert len(pair_errors) >= 2
    cap = float(np.median(pair_errors))
    small, rep = tn.fold_redundant(net, x, threshold=0.7, max_error=cap)
    refused = [f for c in rep["0"].clusters for f in c.folds if f.refused]
    assert refused and rep.n_refused == len(refused)
    assert all(f.rel_error > cap for f in refused)
    for c in rep["0"].clusters:
        kept = {c.representative} | {f.neuron for f in c.folds if f.refused}
        for f in c.folds:
            if not f.refused:  # maps read every kept neuron of the cluster
                assert set(f.sources) == kept and f.rel_error <= cap + 1e-12
    assert small[0].out_features == 16 - rep.n_removed


def test_fold_constant_folds_dead_neurons_into_the_bias():
    net = _planted_mlp()
    with torch.no_grad():  # neuron 3: constant 0.7 (zero weights); neuron 6: dead ReLU (0)
        net[0].weight[3] = 0
        net[0].bias[3] = 0.7
        net[0].weight[6] = 0
        net[0].bias[6] = -1.0
    x = torch.randn(300, 5, dtype=torch.float64)
    _, plain = tn.fold_redundant(net, x, threshold=1e-9, dry_run=True)
    assert plain["0"].removed == (1, 7) and plain["0"].constant == ()
    small, rep = tn.fold_redundant(net, x, threshold=1e-9, fold_constant=True)
    lf = rep["0"]
    assert lf.removed == (1, 3, 6, 7)
    assert {f.neuron: f.intercept for f in lf.constant} == {3: 0.7, 6: 0.0}
    assert small[0].out_features == 4 and small[2].in_features == 4
    fresh = torch.randn(200, 5, dtype=torch.float64)
    assert torch.allclose(small(fresh), net(fresh), rtol=0, atol=1e-12)
    assert FoldReport.from_dict(json.loads(json.dumps(rep.to_dict()))) == rep
    assert "constant neurons folded into the bias: 3 (= 0.7), 6 (= 0)" in rep.to_markdown()


def test_report_round_trips_through_json(tmp_path):
    net = _planted_mlp()
    x = torch.randn(100, 5, dtype=torch.float64)
    _, rep = tn.fold_redundant(net, x, threshold=0.2, max_error=0.5)
    path = rep.to_json(tmp_path / "r.json")
    assert FoldReport.from_json(path) == rep
    assert json.loads(path.read_text())["n_removed"] == rep.n_removed
    md = rep.to_markdown()
    assert "# Fold report" in md and f"{rep.n_removed} of {rep.n_neurons}" in md
    bad = tmp_path / "bad.json"
    d = rep.to_dict()
    d["layers"][0]["n_removed"] += 1
    bad.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="not a valid fold report"):
        FoldReport.from_json(bad)


def _sigmoid_conv(padding: int) -> nn.Sequential:
    """conv → sigmoid → conv; channel 4's kernel and bias are −1 × channel 1's, so
    h_4 = 1 − h_1 exactly (sigmoid(−z) = 1 − sigmoid(z)): a = −1, c = 1."""
    torch.manual_seed(6)
    net = nn.Sequential(
        nn.Conv2d(2, 6, 3), nn.Sigmoid(), nn.Conv2d(6, 4, 3, padding=padding)
    ).double()
    with torch.no_grad():
        net[0].weight[4] = -net[0].weight[1]
        net[0].bias[4] = -net[0].bias[1]
    return net


def test_conv_planted_duplicate_is_exact_without_padding():
    net = _sigmoid_conv(0)
    x = torch.randn(10, 2, 10, 10, dtype=torch.float64)
    small, rep = tn.fold_redundant(net, x, threshold=1e-9)
    (c,) = rep["0"].clusters
    assert set(c.members) == {1, 4} and len(rep["0"].removed) == 1
    (f,) = c.folds
    assert f.coef[0] == pytest.approx(-1, rel=1e-12) and f.intercept == pytest.approx(1, rel=1e-12)
    assert rep["0"].n_examples == 10 * 8 * 8  # every position an example
    assert small[0].out_channels == 5 and small[2].in_channels == 5
    fresh = torch.randn(5, 2, 12, 12, dtype=torch.float64)
    assert torch.allclose(small(fresh), net(fresh), rtol=0, atol=1e-12)


def test_conv_fold_with_zero_padding_differs_only_at_the_border():
    """With padding the constant c enters the bias everywhere but the padded border sees 0,
    not c: the difference is exactly c · (the kernel weights of j that fall on padding)."""
    net = _sigmoid_conv(1)
    x = torch.randn(10, 2, 10, 10, dtype=torch.float64)
    small, rep = tn.fold_redundant(net, x, threshold=1e-9)
    (f,) = rep["0"].clusters[0].folds
    diff = (small(x) - net(x)).detach()
    assert diff[..., 1:-1, 1:-1].abs().max() < 1e-12  # interior: exact
    assert diff.abs().max() > 1e-3  # border: measurably different (docs/fold.md)
    # the border difference is predicted: the bias adds c · ΣW[:, j] where the original saw
    # zero padding on the taps outside the image: at the corner (0, 0), row 0 and column 0
    W = net[2].weight.detach()[:, f.neuron]
    corner = f.intercept * (W.sum(dim=(1, 2)) - W[:, 1:, 1:].sum(dim=(1, 2)))
    assert torch.allclose(diff[:, :, 0, 0], corner.expand(10, -1), atol=1e-12)


def test_batchnorm_between_layer_and_activation_is_sliced_exactly():
    torch.manual_seed(7)
    net = nn.Sequential(
        nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(0.5), nn.Linear(6, 2)
    ).double()
    with torch.no_grad():
        net[1].running_mean.uniform_(-1, 1)
        net[1].running_var.uniform_(0.5, 2)
        for name in ("weight", "bias"):
            getattr(net[0], name)[4] = getattr(net[0], name)[1]
        net[1].running_mean[4] = net[1].running_mean[1]
        net[1].running_var[4] = net[1].running_var[1]
        net[1].weight[4] = 3 * net[1].weight[1]
        net[1].bias[4] = 3 * net[1].bias[1]
    net.eval()
    x = torch.randn(200, 4, dtype=torch.float64)
    small, rep = tn.fold_redundant(net, x, threshold=1e-9)
    assert rep["0"].removed == (1,)
    assert small[1].num_features == 5 and small[1].running_mean.shape == (5,)
    assert torch.allclose(small(x), net(x), rtol=0, atol=1e-12)


class _Functional(nn.Module):
    """A module (not a Sequential) with a functional activation and a nested consumer."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(5, 8)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(8, 3))

    def forward(self, x):
        return self.head(nn.functional.relu(self.fc1(x)))


def test_general_module_with_functional_activation_folds_exactly():
    torch.manual_seed(8)
    net = _Functional().double().train()  # calibration runs in eval mode; the mode is kept
    with torch.no_grad():
        net.fc1.weight[6] = 2 * net.fc1.weight[0]
        net.fc1.bias[6] = 2 * net.fc1.bias[0]
    x = torch.randn(100, 5, dtype=torch.float64)
    small, rep = tn.fold_redundant(net, x, threshold=1e-9, layers=["fc1", "fc1"])
    assert [lf.layer for lf in rep.layers] == ["fc1"] and rep["fc1"].consumer == "head.1"
    assert rep["fc1"].removed == (0,) and small.training and net.training
    small.eval()
    net.eval()
    assert small.head[1].in_features == 7
    assert torch.allclose(small(x), net(x), rtol=0, atol=1e-12)


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        return self.fc2(h) + h


class _NormAfter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.norm, self.fc2 = nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2)

    def forward(self, x):
        return self.fc2(self.norm(torch.relu(self.fc1(x))))


@pytest.mark.parametrize(
    ("model", "layer", "match"),
    [
        (_Residual(), "fc1", r"layer 'fc1' cannot be folded: .*used 2 times"),
        (_NormAfter(), "fc1", r"layer 'fc1' cannot be folded: its output reaches module 'norm'"),
    ],
)
def test_consumer_that_is_not_one_linear_layer_is_refused(model, layer, match):
    x = torch.randn(50, 4)
    with pytest.raises(ValueError, match=match):
        tn.fold_redundant(model, x, threshold=0.1, layers=[layer])
    # without layers=, the layer is skipped with the reason, not folded
    _, rep = tn.fold_redundant(model, x, threshold=0.1, dry_run=True)
    assert layer in rep.skipped and layer not in foldable_layers(model)


def test_bad_input_is_a_clear_error():
    net = _planted_mlp()
    x = torch.randn(50, 5, dtype=torch.float64)
    with pytest.raises(
        ValueError, match=r"unknown layer 'fc9'; valid layers are \['0', '2', '4'\]"
    ):
        tn.fold_redundant(net, x, layers=["fc9"])
    with pytest.raises(ValueError, match=r"layer '1' is a ReLU; only Linear and Conv"):
        tn.fold_redundant(net, x, layers="1")
    for t in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\]"):
            tn.fold_redundant(net, x, threshold=t)
    with pytest.raises(TypeError, match="threshold must be a number"):
        tn.fold_redundant(net, x, threshold="0.1")
    with pytest.raises(ValueError, match="max_error must be a finite number"):
        tn.fold_redundant(net, x, max_error=-1)
    with pytest.raises(
        ValueError, match=r"layer '0' has 8 neurons but data gives only 8 .*n \+ 1 = 9"
    ):
        tn.fold_redundant(net, x[:8])
    bad = x.clone()
    bad[3, 0] = float("nan")
    with pytest.raises(ValueError, match=r"(?i)nan"):
        tn.fold_redundant(net, bad)
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module"):
        tn.fold_redundant("net", x)


def test_plot_fold_accuracy_draws_each_curve():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from topo_neurons.plotting import plot_fold_accuracy, plot_fold_layers

    ax = plot_fold_accuracy(
        {"fold": ([0.2, 0.0, 0.1], [0.8, 0.9, 0.85]), "random": ([0.1], [0.5])}, baseline=0.9
    )
    xs, ys = ax.lines[0].get_data()
    np.testing.assert_allclose(xs, [0, 10, 20])
    np.testing.assert_allclose(ys, [90, 85, 80])
    with pytest.raises(ValueError, match="curve 'x'"):
        plot_fold_accuracy({"x": ([0.1, 0.2], [0.5])})
    _, rep = tn.fold_redundant(_planted_mlp(), torch.randn(50, 5).double(), 1e-9, dry_run=True)
    ax = plot_fold_layers(rep)
    assert [p.get_height() for p in ax.patches] == [6, 6, 2, 0]  # kept bars, then removed
    plt.close("all")


def test_cli_fold_writes_weights_report_and_figure(tmp_path):
    net = _planted_mlp().float()
    torch.save(net.state_dict(), tmp_path / "w.pt")
    factory = tmp_path / "factory.py"
    factory.write_text(
        "from torch import nn\n"
        "def make():\n"
        "    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU(),"
        " nn.Linear(6, 3))\n"
    )
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    with torch.no_grad():
        np.save(tmp_path / "y.npy", net(torch.from_numpy(X)).argmax(1).numpy())
    out = tmp_path / "out"
    args = ["fold", "--model", f"{factory}:make", "--weights", str(tmp_path / "w.pt")]
    args += ["--data", str(tmp_path / "x.npy"), "--threshold", "1e-6", "--out", str(out)]
    assert cli_main([*args, "--labels", str(tmp_path / "y.npy"), "--quiet"]) == 0
    rep = FoldReport.from_json(out / "fold.json")
    state = torch.load(out / "folded.pt", weights_only=True)
    assert state["0.weight"].shape[0] == rep["0"].n_kept == 6
    assert state["2.weight"].shape[1] == 6
    assert (out / "fold.md").read_text() == rep.to_markdown()
    assert (out / "fold.png").stat().st_size > 0
    # bad input: a clear one-line error, exit status 2
    assert cli_main([*args[:-2], "--out", str(tmp_path / "o2"), "--layers", "nope"]) == 2
    assert cli_main([*args[:-4], "--threshold", "2", "--out", str(tmp_path / "o3")]) == 2


def test_benchmark_smoke(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_fold", ROOT / "benchmarks" / "fold.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--smoke", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "results.md").read_text()
    assert "Goal (folding removes ≥ 2 × as many as magnitude" in text
    assert (tmp_path / "accuracy.png").stat().st_size > 0
    rows = bench.read_rows(tmp_path / "results.csv")
    assert {r["regularizer"] for r in rows} == {"none", "t1"}
    # magnitude removal: ln_structured's choice, the rows of smallest L1 norm
    model = bench.make_model("trapezium", (64,), 10)
    drop = bench.magnitude_choice(model, {"net.fc1": 7})["net.fc1"]
    norms = model.net.fc1.weight.detach().abs().sum(1).numpy()
    assert set(drop) == set(np.argsort(norms)[:7])
