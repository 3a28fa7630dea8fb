"""Issue 20: figures a reviewer accepts at first sight, checked by reading the artists back."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

import topo_neurons as tn
from topo_neurons.experiments import reproduction as R
from topo_neurons.plotting import OKABE_ITO
from topo_neurons.plotting._common import PROFILE_THRESHOLD


@pytest.fixture(autouse=True)
def _close_figures():
    plt.close("all")
    yield
    plt.close("all")


def _big_barcode(n: int = 600, dead: int = 7, seed: int = 0):
    """``n`` neurons in three layers, the last ``dead`` of them constant (d = 1 exactly)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((400, n))
    A[:, n // 2 :] += 0.8 * A[:, : n - n // 2]
    A[:, n - dead :] = 1.0
    layers = ["fc1"] * (n // 3) + ["fc2"] * (n // 3) + ["out"] * (n - 2 * (n // 3))
    return tn.zero_persistence(tn.correlation_dissimilarity(A)), layers


def _gid(ax, gid):
    return [a for a in ax.get_children() if a.get_gid() == gid]


def test_barcode_above_threshold_is_drawn_as_profile_with_layer_strip():
    bc, layers = _big_barcode()
    assert len(bc) > PROFILE_THRESHOLD
    ax = tn.plot_barcode(bc, layers=layers)
    assert ax.containers == []  # no per-bar rectangles
    (profile,) = _gid(ax, "death-profile")
    # The filled curve's right edge is the sorted deaths.
    xs = profile.get_paths()[0].vertices[:, 0]
    np.testing.assert_allclose(xs.max(), bc.deaths.max())
    (strip,) = _gid(ax, "layer-strip")
    # Per bin of ranks the shares of the groups add up to the strip's width.
    widths = [np.ptp(p.vertices[:, 0]) for p in strip.get_paths()]
    assert np.isclose(
        sum(widths), 0.1 * len(np.unique([p.vertices[0, 1] for p in strip.get_paths()]))
    )
    assert _gid(ax, "infinite-bar")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"fc1", "fc2", "out", "between layers", "d = 1: dead neuron"} <= set(labels)


def test_small_barcode_keeps_the_bar_form():
    bc, layers = _big_barcode(n=40, dead=0)
    ax = tn.plot_barcode(bc, layers=layers)
    assert sum(len(c) for c in ax.containers) == len(bc)
    assert not _gid(ax, "death-profile")


def test_dead_bars_are_marked_and_named():
    bc, layers = _big_barcode(dead=7)
    n_dead = int(np.sum(bc.deaths == 1.0))
    assert n_dead >= 6  # seven constant neurons: at least six bars die at 1 exactly
    ax = tn.plot_barcode(bc, layers=layers)
    (band,) = _gid(ax, "dead-bars")
    y0, y1 = band.get_y(), band.get_y() + band.get_height()
    # The band covers the ranks of the dead bars (the top ones), below the infinite bar.
    assert y1 == pytest.approx(len(bc) - 0.5) and y0 <= len(bc) - n_dead - 0.5
    assert band.get_label() == "d = 1: dead neuron"


def test_zero_length_bars_are_marked():
    D = np.array([[0, 0, 0.5, 0.9], [0, 0, 0.5, 0.9], [0.5, 0.5, 0, 0.7], [0.9, 0.9, 0.7, 0]])
    bc = tn.zero_persistence(D)
    ax = tn.plot_barcode(bc)
    (band,) = _gid(ax, "zero-bars")
    assert band.get_y() == pytest.approx(-0.5)  # rank 0: the zero-length bar
    assert "d = 0: zero length" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_main_job_barcode_figure_uses_profiles_palette_one_ylabel():
    from topo_neurons.experiments._figures import plot_barcode_profiles

    bcs = {}
    for i, label in enumerate(["none", "T1", "T2"]):
        bc, layers = _big_barcode(seed=i)
        bcs[label] = (bc, layers)
    fig, axes = plt.subplots(1, 4, layout="constrained")
    plot_barcode_profiles(bcs, axes=axes)
    for ax in axes[:3]:
        assert _gid(ax, "death-profile") and _gid(ax, "infinite-bar") and _gid(ax, "dead-bars")
        assert ax.get_legend() is None
    assert [bool(ax.get_ylabel()) for ax in axes[:3]] == [True, False, False]
    (legend,) = fig.legends
    cols = {
        t.get_text(): matplotlib.colors.to_hex(h.get_facecolor())
        for h, t in zip(legend.legend_handles, legend.get_texts())
    }
    assert [cols["fc1"], cols["fc2"], cols["out"]] == [c.lower() for c in OKABE_ITO[:3]]
    assert "d = 1: dead neuron" in cols
    # The ECDF lines differ in dash as well as colour.
    lines = [ln for ln in axes[3].get_lines() if ln.get_label() in bcs]
    assert len({ln.get_linestyle() for ln in lines}) == 3


def _history(layer: str = "0"):
    from topo_neurons.tracking import BarcodeHistory

    hist = BarcodeHistory()
    rng = np.random.default_rng(3)
    for step in range(0, 60, 5):
        A = rng.standard_normal((50, 20)) * (1 + step / 30)
        A[:, 10:] += (step / 20) * A[:, :10]
        hist.append(step, {layer: tn.zero_persistence(tn.correlation_dissimilarity(A))})
    return hist


def test_barcode_evolution_quantiles_differ_in_colour_and_dash_legend_clear():
    fig, ax = plt.subplots(layout="constrained")
    tn.plot_barcode_evolution(_history(), ax=ax)
    lines = ax.get_lines()
    assert len(lines) == 5
    assert len({matplotlib.colors.to_hex(ln.get_color()) for ln in lines}) == 5
    # Five different dash patterns (the median solid): (offset, on-off sequence) per line.
    patterns = {(ln.get_linestyle(), tuple(ln._unscaled_dash_pattern[1] or ())) for ln in lines}
    assert len(patterns) == 5
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = ax.get_legend().get_window_extent(renderer)
    q95 = next(ln for ln in lines if ln.get_label() == "q = 0.95")
    xy = ax.transData.transform(np.column_stack([q95.get_xdata(), q95.get_ydata()]))
    inside = (
        (xy[:, 0] >= box.x0) & (xy[:, 0] <= box.x1) & (xy[:, 1] >= box.y0) & (xy[:, 1] <= box.y1)
    )
    assert not inside.any()
    assert not box.overlaps(ax.get_window_extent(renderer))  # outside the axes altogether
    # A bare index (nn.Sequential's "0") is not shown as a layer name.
    assert ax.get_ylabel() == "death (quantiles)"
    ax2 = tn.plot_barcode_evolution(_history("fc1"))
    assert ax2.get_ylabel() == "death quantiles, layer fc1"


@pytest.mark.parametrize("layout", ["strip", "square"])
def test_diagram_legend_box_does_not_cross_the_infinite_line(layout):
    bc, layers = _big_barcode(n=120, dead=0)
    fig, ax = plt.subplots(layout="constrained")
    tn.plot_diagram(bc, layers=layers, ax=ax, layout=layout)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (line,) = [a for a in ax.get_lines() if a.get_gid() == "infinite-line"]
    y_inf = ax.transData.transform((0.0, line.get_ydata()[0]))[1]
    box = ax.get_legend().get_window_extent(renderer)
    ax_box = ax.get_window_extent(renderer)
    # The ∞ line spans the axes' width at y_inf: the legend box lies wholly above or below it,
    # or wholly beside the axes.
    assert not (box.y0 <= y_inf <= box.y1) or box.x0 >= ax_box.x1 or box.x1 <= ax_box.x0


def test_tensorboard_barcode_image_keeps_its_x_label_inside():
    from topo_neurons.tracking import log_barcodes

    class Writer:
        def __init__(self):
            self.figures = []

        def add_figure(self, tag, figure, global_step, close=True):
            figure.canvas.draw()  # what SummaryWriter.add_figure rasterises
            renderer = figure.canvas.get_renderer()
            label = figure.axes[0].xaxis.label.get_window_extent(renderer)
            self.figures.append((label, figure.bbox))

    bc, _ = _big_barcode(n=50, dead=0)
    w = Writer()
    log_barcodes(w, {"fc1": bc}, step=3, scalars=False, histograms=False)
    ((label, fig_box),) = w.figures
    assert label.y0 >= fig_box.y0 and label.x0 >= fig_box.x0 and label.x1 <= fig_box.x1


@pytest.mark.parametrize("cd", [1.2, 9.5])
def test_cd_bar_stays_within_the_rank_axis(cd):
    from topo_neurons.experiments import plot_cd_diagram

    ranks = np.array([1.5, 2.5, 3.0, 3.0])
    ax = plot_cd_diagram(ranks, ["a", "b", "c", "d"], cd)
    (bar,) = [ln for ln in ax.get_lines() if ln.get_gid() == "cd-bar"]
    axis = ax.get_lines()[0]  # the rank axis, 1 … k
    assert min(bar.get_xdata()) >= min(axis.get_xdata())
    assert max(bar.get_xdata()) <= max(axis.get_xdata())
    assert max(bar.get_xdata()) == pytest.approx(min(1 + cd, 4))
    texts = [t.get_text() for t in ax.texts if t.get_text().startswith("CD =")]
    assert texts and (("longer than the rank axis" in texts[0]) == (cd > 3))


def _report(n_in: int = 20, widths=(60, 30), seed: int = 0):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential()
    model.add_module("fc1", nn.Linear(n_in, widths[0]))
    model.add_module("relu", nn.ReLU())
    model.add_module("fc2", nn.Linear(widths[0], widths[1]))
    return tn.analyse(model, torch.randn(400, n_in))


def test_dendrogram_leaves_are_named_by_neuron_and_collapsed_by_count_and_layer():
    report = _report()
    n = report.network.n_neurons
    # Small enough to name every neuron: the tick labels are the report's neuron names.
    _fig, ax = plt.subplots(figsize=(12, 4))
    tn.plot_dendrogram(report.layers["fc2"], ax=ax, threshold=0.3)
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert sorted(ticks) == sorted(report.layers["fc2"].labels)
    # A default figure (as topo-neurons analyse draws): 90 neurons cannot all be named, so the
    # lowest merges are collapsed until every leaf can be, and every leaf is named.
    _fig, ax = plt.subplots()
    tn.plot_dendrogram(report, ax=ax, threshold=0.3)
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert 2 <= len(ticks) < n and all(ticks)
    collapsed = [t for t in ticks if "×" in t]
    single = [t for t in ticks if "×" not in t]
    assert collapsed and set(single) <= set(report.labels)
    sizes = [int(t.split(" × ")[0]) for t in collapsed]
    assert sum(sizes) + len(single) == n  # every neuron in exactly one leaf
    for t in collapsed:
        assert set(t.split(" × ")[1].split("+")) <= {"fc1", "fc2"}
    # The legend's collapsed-cluster swatches are drawn as the stems: 3 pt, their colours.
    (stems,) = [c for c in ax.collections if c.get_gid() == "collapsed"]
    stem_colours = {matplotlib.colors.to_hex(c) for c in stems.get_colors()}
    swatches = [
        h
        for h, t in zip(ax.get_legend().legend_handles, ax.get_legend().get_texts())
        if t.get_text().startswith("collapsed")
    ]
    assert swatches and all(h.get_linewidth() == 3.0 for h in swatches)
    assert {matplotlib.colors.to_hex(h.get_color()) for h in swatches} == stem_colours


def test_mst_low_death_edges_drawn_above_smaller_translucent_nodes():
    report = _report()
    ax = tn.plot_mst(report)
    (edges,) = [c for c in ax.collections if c.get_gid() == "mst-edges"]
    nodes = [c for c in ax.collections if c.get_gid() != "mst-edges"]
    assert all(edges.get_zorder() > c.get_zorder() for c in nodes)
    assert all(c.get_alpha() is not None and c.get_alpha() < 1 for c in nodes)
    widths = np.asarray(edges.get_linewidths())
    deaths = np.asarray(edges.get_array())
    assert widths[np.argmin(deaths)] > widths[np.argmax(deaths)] >= 0.7


# ----------------------------------------------------------------------------- reports
def _row(task, reg, weight, seed, val, test):
    return {
        "task": task, "model": "trapezium", "regularizer": reg, "weight": str(weight),
        "seed": str(seed), "stage": "select", "config_hash": "abc", "status": "ok",
        "metric": "accuracy", "val_metric": str(val), "test_metric": str(test),
        "val_loss": "0.5", "best_epoch": "5", "epochs": "15", "seconds": "1.0", "message": "",
    }  # fmt: skip


def _rule_rows(task="mnist5k"):
    rows = []
    for seed in (0, 1):
        rows.append(_row(task, "none", 0, seed, 0.90, 0.90))
        # L1: 10 (above the authors' cap of 5 on MNIST) wins on validation, 1 is next
        rows += [_row(task, "l1", 10, seed, 0.95, 0.80), _row(task, "l1", 1, seed, 0.93, 0.92)]
        rows += [_row(task, "l1", 1e-3, seed, 0.91, 0.91)]
        # T2: the largest weight of the grid wins (the edge)
        rows += [_row(task, "t2", 1e-2, seed, 0.91, 0.91), _row(task, "t2", 1, seed, 0.94, 0.93)]
    return rows


def test_authors_convergence_rule_caps_l1_and_is_measured():
    from topo_neurons.experiments.reproduction import _summary

    # The caps of extract_statistics.py (rballeba/DecorrelatingNeuronsUsingPersistence).
    assert _summary.CONVERGENCE_RULE == {"mnist": {"l1": 5.0, "l2": 10.0}, "pgdl": {"t1": 0.1}}
    rows = _rule_rows()
    free = R.summarize(rows)
    ruled = R.summarize(rows, convergence_rule=True)
    for net in free.best:
        assert free.best[net]["l1"]["weight"] == "10"
        assert ruled.best[net]["l1"]["weight"] == "1"
    assert ruled.convergence_rule and len(ruled.rule_changes) == 2
    assert {(r, a, b) for _, r, a, b in ruled.rule_changes} == {("l1", 10.0, 1.0)}
    assert free.rule_changes == ruled.rule_changes  # measured either way
    text = R.markdown_report(rows, ruled)
    assert "convergence rule (MNIST: L1 ≤ 5, L2 ≤ 10; PGDL: T1 ≤ 0.1" in text
    assert "is applied" in text and "changes 2 of 4 choices" in text
    assert "L1 10 → 1" in text
    # Not an MNIST task: the rule changes nothing.
    assert R.summarize(_rule_rows("digits"), convergence_rule=True).rule_changes == []
    # The refits retrain the weight the rule chose.
    specs = _summary.refit_specs(rows, 1, convergence_rule=True)
    assert {s.weight for s in specs if s.regularizer == "l1"} == {1.0}


def test_chosen_weight_at_the_edge_of_the_grid_is_flagged():
    rows = _rule_rows()
    s = R.summarize(rows, convergence_rule=True)
    assert s.grid_top == {"l1": 1.0, "t2": 1.0}  # 10 is above the rule's cap: not a candidate
    text = R.markdown_report(rows, s)
    table = next(
        ln for ln in text.splitlines() if ln.startswith("| mnist5k / trapezium | ") and "(2)" in ln
    )
    assert "1 ⚠ edge (2)" in table.split("|")[-2]  # T2's column
    assert "grid may be too narrow" in text and "(L1, T2)" in text


def test_full_and_quick_run_counts_are_computed_from_the_presets():
    from topo_neurons.experiments.protocol import plan_runs
    from topo_neurons.experiments.reproduction._presets import FULL, QUICK, run_count

    for preset in (FULL, QUICK):
        sweep, refits = run_count(preset)
        plan = plan_runs(
            preset.tasks, preset.models, preset.regularizers, preset.grid, range(preset.seeds)
        )
        assert sweep == len(plan)
        # One fresh-seed refit per network and regulariser (none included).
        networks = {(s.task, s.model, s.seed) for s in plan}
        assert refits == len(networks) * len(set(preset.regularizers)) * preset.refits
    assert run_count(FULL) == (549, 63) and sum(run_count(QUICK)) == 52


def test_reproduce_help_gives_the_computed_run_counts(capsys):
    from topo_neurons.cli import main
    from topo_neurons.experiments.reproduction._presets import FULL, QUICK, run_count

    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for preset in (FULL, QUICK):
        a, b = run_count(preset)
        assert f"{a + b} runs ({a} + {b} refits)" in text


def test_reproduce_progress_bars_are_named_by_stage(monkeypatch, tmp_path):
    from topo_neurons.experiments.reproduction import _reproduce

    names = []

    class Stop(Exception):
        pass

    def fake_sweep(specs, config, results_path, *, jobs=1, progress=True, desc="runs"):
        names.append(desc)
        if "refits" in desc:
            raise Stop
        return type("Outcome", (), {"ran": 0, "skipped": 0, "rows": []})()

    monkeypatch.setattr(_reproduce, "run_sweep", fake_sweep)
    monkeypatch.setattr(_reproduce, "refit_specs", lambda rows, refits, rule=False: [])
    with pytest.raises(Stop):
        _reproduce.reproduce(
            tmp_path / "out", tasks=["breast_cancer"], models=["trapezium"],
            regularizers=["none", "l2"], seeds=2, grid=[0.1], refits=1, barcodes=False,
        )  # fmt: skip
    assert names == ["seed 0: sweep", "seed 1: sweep", "seed 0: refits"]


def test_interrupted_reproduce_prints_the_command_that_resumes_it(monkeypatch, tmp_path, capsys):
    from topo_neurons.cli import build_parser, main
    from topo_neurons.experiments import reproduction

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(reproduction, "reproduce", interrupted)
    argv = ["reproduce", "--quick", "--seeds", "1", "--grid", "0.1", "1", "--out", str(tmp_path)]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "resume with the same command:" in err
    command = err.split("resume with the same command:")[1].strip().splitlines()[0]
    import shlex

    words = shlex.split(command)
    assert words[:2] == ["topo-neurons", "reproduce"]
    # The printed command parses to the same options as the interrupted one.
    again, first = build_parser().parse_args(words[1:]), build_parser().parse_args(argv)
    drop = ("func", "_reproduce_parser")
    assert {k: v for k, v in vars(again).items() if k not in drop} == {
        k: v for k, v in vars(first).items() if k not in drop
    }


def test_mst_layout_keeps_near_nodes_apart():
    """Kamada–Kawai weights: fewer pairs of nodes piled up than plain SMACOF (sklearn's)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import shortest_path
    from sklearn.manifold import smacof

    bc = _report().barcode
    ax = tn.plot_mst(bc, colorbar=False)
    pos = np.asarray(ax.collections[-1].get_offsets())
    n = bc.n_points
    w = 0.25 + bc.deaths / bc.deaths.max()
    e = bc.edges
    adj = coo_matrix((np.r_[w, w], (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), (n, n))
    dist = shortest_path(adj.tocsr(), directed=False)
    plain = smacof(dist, n_components=2, init=pos, n_init=1, max_iter=300, normalized_stress=False)[
        0
    ]

    def piled(X):
        d = np.linalg.norm(X[:, None] - X[None], axis=-1)
        return int(np.sum(d[np.triu_indices(n, 1)] < 0.02 * d.max()))

    assert piled(pos) < piled(plain)


def test_diagram_legend_clear_of_the_infinite_line_on_a_shared_y_axis():
    """The issue's case: beside a panel of larger deaths (shared y) the ∞ line of the first
    panel runs through the middle, where a legend placed "best" (the old placement) sat."""
    bc, layers = _big_barcode(n=120, dead=0, seed=0)
    D = np.zeros((4, 4))
    D[np.triu_indices(4, 1)] = [0.3, 1.6, 1.7, 1.8, 1.9, 2.0]
    other = tn.zero_persistence(D + D.T)
    fig, (ax, ax2) = plt.subplots(1, 2, sharey=True, figsize=(4, 2.5), layout="constrained")
    tn.plot_diagram(bc, layers=layers, ax=ax)
    tn.plot_diagram(other, ax=ax2)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for a in (ax, ax2):
        (line,) = [x for x in a.get_lines() if x.get_gid() == "infinite-line"]
        y_inf = a.transData.transform((0.0, line.get_ydata()[0]))[1]
        box = a.get_legend().get_window_extent(renderer)
        a_box = a.get_window_extent(renderer)
        assert not (box.y0 <= y_inf <= box.y1) or box.x0 >= a_box.x1 or box.x1 <= a_box.x0


def test_death_distribution_names_the_jump_of_dead_neurons():
    bc, _ = _big_barcode(dead=7)
    alive, _ = _big_barcode(dead=0, seed=1)
    n_dead = int(np.sum(bc.deaths == 1.0))
    ax = tn.plot_death_distribution({"a": bc, "b": alive})
    (line,) = [ln for ln in ax.get_lines() if ln.get_gid() == "dead-line"]
    assert list(line.get_xdata()) == [1.0, 1.0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["a", "b", f"d = 1: dead ({n_dead}, 0)"]
    assert not [ln for ln in tn.plot_death_distribution(alive).get_lines() if ln.get_gid()]


def test_barcode_form_is_checked_and_can_be_forced():
    bc, layers = _big_barcode(n=40, dead=0)
    ax = tn.plot_barcode(bc, layers=layers, form="profile")
    assert _gid(ax, "death-profile") and ax.containers == []
    big, big_layers = _big_barcode()
    ax = tn.plot_barcode(big, layers=big_layers, form="bars")
    assert sum(len(c) for c in ax.containers) == len(big)
    with pytest.raises(ValueError, match=r"form.*'auto', 'bars', 'profile'"):
        tn.plot_barcode(bc, form="strip")


def test_readme_run_counts_are_the_computed_ones():
    """The README gives the full and quick runs' sizes that run_count computes (one number)."""
    import re
    from pathlib import Path

    from topo_neurons.experiments.reproduction._presets import FULL, QUICK, run_count

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    text = " ".join(readme.split())
    full = re.findall(r"(\d+) runs = (\d+) sweep runs \+ (\d+) fresh-seed refits", text)
    sweep, refits = run_count(FULL)
    assert full == [(str(sweep + refits), str(sweep), str(refits))]
    quick = re.findall(r"≤ 20 epochs, (\d+) runs", text)
    assert quick == [str(sum(run_count(QUICK)))]
