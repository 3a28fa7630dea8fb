"""Weight selection per network, the summary statistics and the Markdown report, on
hand-written results rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from topo_neurons.experiments import reproduction as R
from topo_neurons.experiments.stats import critical_difference, friedman_test


def _row(reg, weight, seed, val, test, loss=0.5, status="ok", model="trapezium", stage="select"):
    ok = status == "ok"
    return {
        "task": "digits",
        "model": model,
        "regularizer": reg,
        "weight": str(weight),
        "seed": str(seed),
        "stage": stage,
        "config_hash": "abc",
        "status": status,
        "metric": "accuracy",
        "val_metric": str(val) if ok else "",
        "test_metric": str(test) if ok else "",
        "val_loss": str(loss) if ok else "",
        "best_epoch": "5" if ok else "",
        "epochs": "15",
        "seconds": "1.0",
        "message": "" if ok else "loss nan at epoch 2",
    }


def _rows():
    rows = []
    tests = {  # seed → test accuracy of none, l2's chosen run, t1's chosen run
        0: (0.90, 0.91, 0.93),
        1: (0.92, 0.90, 0.94),
        2: (0.91, 0.92, 0.95),
    }
    for seed, (t_none, t_l2, t_t1) in tests.items():
        rows.append(_row("none", 0, seed, 0.90, t_none))
        # l2: 1e-3 wins on validation; 1e-2 has a lower loss but a lower metric
        rows.append(_row("l2", 0.001, seed, 0.95, t_l2, loss=0.6))
        rows.append(_row("l2", 0.01, seed, 0.94, 0.99, loss=0.1))
        # t1: a tie on validation metric goes to the smaller weight (1e-3, the paper's rule),
        # not to the lower validation loss (1e-2); 1 diverged (never chosen, though first)
        rows.append(_row("t1", 1, seed, 0, 0, status="diverged"))
        rows.append(_row("t1", 0.01, seed, 0.96, 0.50, loss=0.30))
        rows.append(_row("t1", 0.001, seed, 0.96, t_t1, loss=0.40))
    return rows, tests


def test_select_best_by_validation_metric_then_smaller_weight():
    rows, _ = _rows()
    best = R.select_best(rows)
    assert sorted(best) == [("digits", "trapezium", s) for s in range(3)]
    for net in best:
        assert best[net]["l2"]["weight"] == "0.001"
        assert best[net]["t1"]["weight"] == "0.001"
        assert best[net]["none"]["weight"] == "0"


def test_select_best_ties_on_metric_and_loss_go_to_the_smaller_weight():
    rows = [_row("l1", 0.01, 0, 0.9, 0.1), _row("l1", 0.0001, 0, 0.9, 0.2)]
    assert R.select_best(rows)[("digits", "trapezium", 0)]["l1"]["weight"] == "0.0001"


def test_summary_scores_and_statistics():
    rows, tests = _rows()
    s = R.summarize(rows)
    assert s.regularizers == ["none", "l2", "t1"]
    expected = np.array([tests[seed] for seed in range(3)])
    np.testing.assert_allclose(s.scores, expected)
    ref = friedman_test(expected)
    np.testing.assert_allclose(s.average_ranks, ref.average_ranks)
    assert s.friedman.chi2 == pytest.approx(ref.chi2)
    assert s.cd == pytest.approx(critical_difference(3, 3))
    assert s.diverged == {("t1", "1"): 3}
    np.testing.assert_allclose(s.average_ranks, [(3 + 2 + 3) / 3, (2 + 3 + 2) / 3, 1.0])


def test_network_where_a_regulariser_always_diverged_is_left_out_and_named():
    rows, _ = _rows()
    rows = [r for r in rows if not (r["seed"] == "2" and r["regularizer"] == "t1")]
    rows.append(_row("t1", 1, 2, 0, 0, status="diverged"))
    s = R.summarize(rows)
    assert s.complete == [("digits", "trapezium", 0), ("digits", "trapezium", 1)]
    assert s.scores.shape == (2, 3)
    text = R.markdown_report(rows, s)
    assert "left out of the ranking" in text and "digits/trapezium/seed 2" in text
    assert "(1 missing)" in text


def test_markdown_report_numbers():
    rows, tests = _rows()
    text = R.markdown_report(rows)
    lines = text.splitlines()
    header = next(ln for ln in lines if ln.startswith("| task / model | n |"))
    assert header == "| task / model | n | none | L2 | T1 |"
    row = next(ln for ln in lines if ln.startswith("| digits / trapezium | 3 |"))
    expected = np.array([tests[s] for s in range(3)])
    for j, cell in enumerate(row.split("|")[3:6]):
        col = expected[:, j]
        assert cell.strip() == f"{col.mean():.4f} ± {col.std():.4f}"
    ranks = next(ln for ln in lines if ln.startswith("| average rank"))
    assert "**1.00**" in ranks  # T1 best
    assert "| digits / trapezium | 1e-3 (3) | 1e-3 (3) |" in text
    assert "Friedman test over N = 3 networks and k = 3 regularisers" in text
    # every-weight table: t1 at λ = 1 diverged on all 3 seeds
    t1_line = next(ln for ln in lines if ln.startswith("| T1 |"))
    assert "div 3/3" in t1_line
    assert "Runs: 18 in the sweep (3 diverged), 0 refit(s)." in text
    assert "Selection-free estimate" not in text  # no refits, no such table


def test_summarize_refuses_mixed_configurations_and_empty_input():
    rows, _ = _rows()
    rows[0] = dict(rows[0], config_hash="zzz")
    with pytest.raises(ValueError, match=r"rows of 2 configurations \(abc, zzz\)"):
        R.summarize(rows)
    with pytest.raises(ValueError, match="no results to summarise"):
        R.summarize([])


def test_report_with_a_classification_and_a_regression_task():
    rows, _ = _rows()
    r2 = [dict(r, task="diabetes", metric="r2") for r in rows]
    s = R.summarize(rows + r2)
    assert len(s.complete) == 6  # networks of both tasks are ranked together
    text = R.markdown_report(rows + r2, s)
    assert text.startswith("Test metric (accuracy / r2 by task) at the weight chosen")
    assert "| diabetes / trapezium | 3 |" in text and "| digits / trapezium | 3 |" in text


def test_barcodes_png_panels_share_the_death_axis_and_draw_sorted_profiles():
    """Issue 11: reproduce's barcodes.png had panels with different x ranges (0.5, 0.85, 0.45)
    and ~1000 interleaved bars unreadable at print size, labelled ``net.fc1``. Now the panels
    share the death axis, each draws its bars sorted by death as a filled profile, and the
    legend uses the names a reader knows (``hidden 1 (450)`` … ``logits (2)``)."""
    import matplotlib.pyplot as plt
    import torch

    import topo_neurons as tn
    from topo_neurons.experiments.data import load_task
    from topo_neurons.experiments.models import neuron_layers
    from topo_neurons.experiments.protocol import RunSpec, TrainConfig, train_network

    cfg = TrainConfig(max_epochs=1)
    ds = load_task("breast_cancer")
    spec = RunSpec("breast_cancer", "trapezium", "none", 0.0, 0)
    fig = R.plot_barcode_comparison(spec, {"t1": 1e-3, "t2": 0.1}, cfg, dataset=ds)
    axes = fig.axes
    assert len(axes) == 4
    titles = [ax.get_title() for ax in axes]
    assert titles[0].startswith("none: test accuracy")
    assert titles[1].startswith("T1 (λ = 1e-3)") and titles[2].startswith("T2 (λ = 1e-1)")
    # one shared death axis (issue 20: the deaths take its left 80 %, then the dead bars' caps
    # and the layer strip)
    limits = {ax.get_xlim() for ax in axes[:3]}
    assert len(limits) == 1
    profiles = [
        next(a for a in ax.get_children() if a.get_gid() == "death-profile") for ax in axes[:3]
    ]
    widths = [p.get_paths()[0].vertices[:, 0] for p in profiles]
    x0, x1 = limits.pop()
    assert x0 == 0 and x1 == pytest.approx(max(w.max() for w in widths) / 0.8)
    # the "none" panel holds the deaths of the same network, retrained independently here,
    # as its sorted-death profile (issue 20: a filled curve above 300 bars, one step per bar)
    model, row = train_network(spec, cfg, ds)
    assert f"{float(row['test_metric']):.3f}" in titles[0]
    with tn.ActivationRecorder(model, layers=neuron_layers(model), detach=True) as rec:
        with torch.no_grad():
            model(torch.from_numpy(ds.X_train))
    A = rec.activations().double()
    assert A.shape[1] == 450 + 350 + 200 + 2  # hidden layers after ReLU, and the 2 logits
    assert (A[:, :1000] >= 0).all()
    deaths = tn.zero_persistence(tn.correlation_dissimilarity(A)).deaths
    outline = next(ln for ln in axes[0].get_lines() if len(ln.get_xdata()) == 2 * len(deaths))
    np.testing.assert_allclose(outline.get_xdata()[::2], np.sort(deaths), rtol=1e-6)
    np.testing.assert_allclose(np.diff(outline.get_ydata()[::2]), 1.0)  # one row per bar
    ecdf = {ln.get_label(): ln for ln in axes[3].get_lines() if not ln.get_label().startswith("d")}
    assert set(ecdf) == {"none", "T1 (λ = 1e-3)", "T2 (λ = 1e-1)"}
    np.testing.assert_allclose(ecdf["none"].get_xdata()[1:], np.sort(deaths), rtol=1e-6)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    # the layers that hold a bar, in network order (the two logits may share none), then the
    # bars between layers
    layer_names = ["hidden 1 (450)", "hidden 2 (350)", "hidden 3 (200)", "logits (2)"]
    shown = legend[: legend.index("between layers")]
    assert shown == [n for n in layer_names if n in shown] and shown[:3] == layer_names[:3]
    plt.close(fig)


def test_refits_give_a_selection_free_estimate_beside_the_paper_selection():
    rows, tests = _rows()
    specs = R.refit_specs(rows, refits=2)
    # every network × regulariser at its chosen weight, from seeds s + 1000 and s + 2000
    assert len(specs) == 3 * 3 * 2 and {s.stage for s in specs} == {"refit"}
    chosen = {(s.regularizer, s.weight) for s in specs}
    assert chosen == {("none", 0.0), ("l2", 0.001), ("t1", 0.001)}
    assert sorted({s.seed for s in specs}) == [1000, 1001, 1002, 2000, 2001, 2002]
    fresh = {"none": 0.90, "l2": 0.89, "t1": 0.91}
    for sp in specs:
        rows.append(_row(sp.regularizer, sp.weight, sp.seed, 0.9, fresh[sp.regularizer],
                         stage="refit"))  # fmt: skip
    # a refit of a weight that is no longer the chosen one does not count
    rows.append(_row("t1", 0.01, 1000, 0.9, 0.0, stage="refit"))
    s = R.summarize(rows)
    assert s.refit_complete == s.complete
    np.testing.assert_allclose(s.refit_scores, [[0.90, 0.89, 0.91]] * 3)
    assert s.refit[("digits", "trapezium", 0)]["t1"] == [0.91, 0.91]
    # refit rows never enter the selection
    np.testing.assert_allclose(s.scores, np.array([tests[k] for k in range(3)]))
    text = R.markdown_report(rows, s)
    assert "Selection-free estimate" in text
    sel = np.array([tests[k] for k in range(3)])
    d_sel = (sel - sel[:, [0]]).mean(axis=0)
    line = next(ln for ln in text.splitlines() if ln.startswith("| difference to none, sel"))
    assert line.split("|")[3].strip() == f"{d_sel[1]:+.4f}"
    # on average L2 ties none after selection (+0.0000) and loses with fresh seeds
    assert f"T1 agree ({d_sel[2]:+.4f} vs +0.0100)" in text
    assert f"L2 DISAGREE ({d_sel[1]:+.4f} vs -0.0100)" in text
    assert "Runs: 18 in the sweep (3 diverged), 19 refit(s)." in text


def test_barcode_figure_draws_trained_networks_without_training(monkeypatch):
    """Issue 12: the figure takes trained networks. ``train_barcode_networks`` trains none, T1
    and T2 (the same runs as the sweep's); ``plot_barcode_networks`` only draws them."""
    from topo_neurons.experiments.data import load_task
    from topo_neurons.experiments.protocol import RunSpec, TrainConfig, train_network
    from topo_neurons.experiments.reproduction import _reproduce

    cfg = TrainConfig(max_epochs=1)
    ds = load_task("breast_cancer")
    spec = RunSpec("breast_cancer", "trapezium", "none", 0.0, 0)
    networks = R.train_barcode_networks(spec, {"t1": 1e-3, "t2": 0.1}, cfg, dataset=ds)
    assert list(networks) == ["none", "t1", "t2"]
    for reg, (model, row) in networks.items():
        assert not model.training and row["regularizer"] == reg and row["status"] == "ok"
    _, again = train_network(RunSpec("breast_cancer", "trapezium", "t2", 0.1, 0), cfg, ds)
    assert {k: v for k, v in again.items() if k != "seconds"} == {
        k: v for k, v in networks["t2"][1].items() if k != "seconds"
    }

    def no_training(*args, **kwargs):
        raise AssertionError("plot_barcode_networks trained a network")

    monkeypatch.setattr(_reproduce, "train_network", no_training)
    before = {k: v.clone() for k, v in networks["t1"][0].state_dict().items()}
    fig = R.plot_barcode_networks(networks, ds, kind="abs")
    assert len(fig.axes) == 4
    assert fig.axes[1].get_title().startswith("T1 (λ = 1e-3)")
    after = networks["t1"][0].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(ValueError, match="networks is empty"):
        R.plot_barcode_networks({}, ds)
