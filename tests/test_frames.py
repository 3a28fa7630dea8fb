"""Tables of a redundancy report (pandas), checked against a dissimilarity computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.sparse.csgraph import connected_components

import topo_neurons as tn
from topo_neurons.analysis._frames import report_frame

pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def setting():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 6), torch.nn.Tanh(),
        torch.nn.Linear(6, 3),
    )  # fmt: skip
    with torch.no_grad():
        model[0].bias[2] = -100.0  # a dead ReLU: constant 0 over the data
    X = torch.randn(300, 5, generator=torch.Generator().manual_seed(1))
    report = tn.analyse(model, X, pair_threshold=0.5, thresholds=(0.1, 0.3, 0.6))
    with torch.no_grad():  # the analysed neurons by hand: post-activation, then the logits
        h1 = model[1](model[0](X))
        h2 = model[3](model[2](h1))
        A = torch.cat([h1, h2, model[4](h2)], dim=1).double().numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.corrcoef(A, rowvar=False)
    rho = np.nan_to_num(rho)  # the constant neuron: uncorrelated with every other (d = 1)
    D = 1 - np.abs(rho)
    np.fill_diagonal(D, 0.0)
    return report, D, rho


def _same_partition(a, b):
    a, b = np.asarray(a), np.asarray(b)
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_neuron_table(setting):
    report, D, _ = setting
    df = report_frame(report, "neurons")
    n = D.shape[0]
    assert len(df) == n == 17 and list(df.columns[:7]) == [
        "neuron", "layer", "index", "dead", "smallest_death", "layer_smallest_death",
        "mst_degree",
    ]  # fmt: skip
    assert df["neuron"].tolist() == [f"{name}[{i}]" for name, k in (("0", 8), ("2", 6), ("4", 3))
                                     for i in range(k)]  # fmt: skip
    assert df["layer"].tolist() == ["0"] * 8 + ["2"] * 6 + ["4"] * 3
    assert df["dead"].tolist() == [i == 2 for i in range(n)]
    # in a minimum spanning tree a point's smallest edge is its nearest-neighbour distance
    nearest = np.where(np.eye(n, dtype=bool), np.inf, D).min(axis=1)
    np.testing.assert_allclose(df["smallest_death"], nearest, atol=1e-9)
    own = np.full(n, np.inf)
    for lo, hi in ((0, 8), (8, 14), (14, 17)):
        block = D[lo:hi, lo:hi] + np.diag(np.full(hi - lo, np.inf))
        own[lo:hi] = block.min(axis=1)
    np.testing.assert_allclose(df["layer_smallest_death"], own, atol=1e-9)
    assert df["mst_degree"].sum() == 2 * (n - 1) and (df["mst_degree"] >= 1).all()
    # single-linkage clusters at t: the components of the graph {D ≤ t}
    for t in report.thresholds:
        assert np.abs(D - t).min() > 1e-9  # no near-tie at the threshold
        _, ref = connected_components(D <= t, directed=False)
        assert _same_partition(df[f"cluster@{t:g}"], ref)


def test_layer_and_pair_tables(setting):
    report, D, rho = setting
    layers = report_frame(report)  # kind="layers" by default
    assert layers["layer"].tolist() == ["0", "2", "4", "network"]
    for col in ("min", "q05", "q50", "q95", "max", "mean", "std", "total_persistence"):
        assert col in layers.columns
    assert layers.loc[0, "dead_neurons"] == 1 and layers.loc[3, "dead_neurons"] == 1
    deaths = tn.zero_persistence(D).deaths  # the network's deaths from the hand-made matrix
    np.testing.assert_allclose(layers.loc[3, "total_persistence"], deaths.sum(), atol=1e-9)
    np.testing.assert_allclose(layers.loc[3, "q50"], np.quantile(deaths, 0.5), atol=1e-9)
    for t in report.thresholds:
        n_comp, labels = connected_components(D <= t, directed=False)
        assert layers.loc[3, f"effective_neurons@{t:g}"] == n_comp
        sizes = np.bincount(labels)
        assert layers.loc[3, f"n_clusters@{t:g}"] == np.count_nonzero(sizes >= 2)

    pairs = report_frame(report, "pairs")
    assert list(pairs.columns) == ["entry", "a", "b", "layer_a", "layer_b", "rho", "death"]
    assert len(pairs) == sum(len(e.redundant_pairs) for e in [*report.layers.values(),
                                                              report.network])  # fmt: skip
    assert len(pairs) > 0 and (pairs["death"] <= 0.5).all()
    index = {lab: k for k, lab in enumerate(report.network.labels)}
    for row in pairs.itertuples():
        i, j = index[row.a], index[row.b]
        np.testing.assert_allclose(row.rho, rho[i, j], atol=1e-9)
        np.testing.assert_allclose(row.death, D[i, j], atol=1e-9)
        assert row.layer_a == row.a.split("[")[0]


def test_bad_kind_is_named(setting):
    with pytest.raises(ValueError, match=r"kind='rows'.*'layers', 'pairs', 'neurons'"):
        report_frame(setting[0], "rows")


def test_report_to_frame_delegates(setting):
    report = setting[0]
    for kind in ("layers", "pairs", "neurons"):
        pd.testing.assert_frame_equal(report.to_frame(kind), report_frame(report, kind))
    pd.testing.assert_frame_equal(report.to_frame(), report_frame(report, "layers"))


def test_analyse_command_writes_the_tables_as_csv(tmp_path, capsys):
    from topo_neurons.cli import main

    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.standard_normal((300, 8)).astype(np.float32))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 12), torch.nn.ReLU(), torch.nn.Linear(12, 3))
    torch.jit.script(model).save(str(tmp_path / "m.pt"))
    code = main(["analyse", "--torchscript", str(tmp_path / "m.pt"), "--data",
                 str(tmp_path / "x.npy"), "--out", str(tmp_path / "o"), "--formats", "csv",
                 "--quiet"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    out = tmp_path / "o"
    assert not list(out.glob("*.png"))  # csv only: the tables, no figures
    report = tn.RedundancyReport.from_json(out / "report.json")
    for kind in ("layers", "pairs", "neurons"):
        got = pd.read_csv(out / f"{kind}.csv", keep_default_na=False, na_values=[""])
        ref = report.to_frame(kind)
        assert list(got.columns) == list(ref.columns) and len(got) == len(ref)
    neurons = pd.read_csv(out / "neurons.csv")
    np.testing.assert_allclose(
        neurons["smallest_death"], report.to_frame("neurons")["smallest_death"]
    )
    # with figures too, and a second run without csv removes the tables (one run's files)
    assert main(["analyse", "--torchscript", str(tmp_path / "m.pt"), "--data",
                 str(tmp_path / "x.npy"), "--out", str(out), "--formats", "png,csv",
                 "--quiet"]) == 0  # fmt: skip
    assert (out / "barcode.png").is_file() and (out / "layers.csv").is_file()
    assert main(["analyse", "--torchscript", str(tmp_path / "m.pt"), "--data",
                 str(tmp_path / "x.npy"), "--out", str(out), "--quiet"]) == 0  # fmt: skip
    assert not (out / "layers.csv").exists()


def test_read_results_to_frame():
    import csv
    from pathlib import Path

    from topo_neurons.experiments.protocol import read_results

    path = Path(__file__).resolve().parents[1] / "docs" / "img" / "reproduce_paper" / "results.csv"
    rows = read_results(path)
    frame = rows.to_frame()
    with open(path, newline="") as f:
        raw = list(csv.DictReader(f))
    assert isinstance(rows, list) and len(frame) == len(rows) == len(raw)
    assert frame["test_metric"].dtype == np.float64 and str(frame["seed"].dtype) == "Int64"
    for k in (0, len(raw) // 2, len(raw) - 1):
        assert frame.loc[k, "regularizer"] == raw[k]["regularizer"]
        if raw[k]["test_metric"]:
            assert frame.loc[k, "test_metric"] == float(raw[k]["test_metric"])
        assert frame.loc[k, "epochs"] == int(raw[k]["epochs"])
    diverged = frame["status"] != "ok"
    assert frame.loc[diverged, "test_metric"].isna().all()
