"""Issue 20: figures a reviewer accepts at first sight, checked by reading the artists back."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

import topo_neurons as tn
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
