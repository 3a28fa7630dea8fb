"""Figures: drawn artists read back and compared with the barcode; valid PDF/SVG/PNG files."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import LineCollection, PathCollection
from scipy.cluster.hierarchy import cophenet, linkage
from scipy.spatial.distance import squareform

import topo_neurons as tn
from topo_neurons.plotting import OKABE_ITO, linkage_matrix
from topo_neurons.tracking import BarcodeHistory

MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-"}


@pytest.fixture(autouse=True)
def _close_figures():
    plt.close("all")  # figures left open by earlier test modules must not count here
    yield
    plt.close("all")


def _barcode(rng: np.random.Generator, n: int = 12, m: int = 80):
    A = rng.standard_normal((m, n))
    A[:, n // 2 :] += 1.5 * A[:, : n - n // 2]  # correlated pairs across the two halves
    D = tn.correlation_dissimilarity(A)
    return tn.zero_persistence(D), D


def _layers(n: int) -> list[str]:
    return ["fc1"] * (n // 2) + ["fc2"] * (n - n // 2 - 2) + ["out"] * 2


def _rects(ax):
    return [r for c in ax.containers for r in c]


def test_plot_barcode_draws_one_bar_per_death_sorted(rng):
    bc, _ = _barcode(rng)
    _fig, ax = plt.subplots()
    assert tn.plot_barcode(bc, ax=ax) is ax
    rects = _rects(ax)
    assert len(rects) == len(bc) == 11
    ys = np.array([r.get_y() + r.get_height() / 2 for r in rects])
    widths = np.array([r.get_width() for r in rects])
    assert all(r.get_x() == 0 for r in rects)  # every bar is born at 0
    np.testing.assert_allclose(widths[np.argsort(ys)], np.sort(bc.deaths))
    inf = [a for a in ax.get_lines() if a.get_gid() == "infinite-bar"]
    assert len(inf) == 1
    # From x = 0 to the right edge (axes coordinates), beyond every finite bar.
    assert inf[0].get_transform() == ax.get_yaxis_transform()
    np.testing.assert_allclose(inf[0].get_xdata(), [0.0, 0.97])
    assert ax.get_xlim()[1] > bc.deaths.max()
    assert inf[0].get_ydata()[0] > ys.max()  # and above them
    assert "∞" in [t.get_text() for t in ax.texts]
    assert len(plt.get_fignums()) == 1  # ax=... draws there, no new figure


def test_plot_barcode_colours_by_layer_with_a_legend(rng):
    bc, _ = _barcode(rng, n=14)
    layers = np.array(_layers(14))
    ax = tn.plot_barcode(bc, layers=layers)
    same = layers[bc.edges[:, 0]] == layers[bc.edges[:, 1]]
    groups = {c.get_label(): c for c in ax.containers}
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert set(groups) == set(legend)
    cross = groups.pop("between layers")
    assert len(cross) == int(np.sum(~same))
    assert groups and sum(len(c) for c in groups.values()) == int(np.sum(same))
    for name, container in groups.items():
        expected = np.sort(bc.deaths[same & (layers[bc.edges[:, 0]] == name)])
        np.testing.assert_allclose(np.sort([r.get_width() for r in container]), expected)
        colour = matplotlib.colors.to_hex(container[0].get_facecolor())
        assert colour.lower() == OKABE_ITO[["fc1", "fc2", "out"].index(name)].lower()
    assert sum(len(c) for c in ax.containers) == len(bc)


def test_plot_barcode_accepts_a_report(rng):
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    report = tn.analyse(model, rng.standard_normal((60, 3)).astype(np.float32))
    ax = tn.plot_barcode(report)
    assert len(_rects(ax)) == 6 and ax.get_legend() is not None
    ax = tn.plot_barcode(report.layers["2"])
    assert len(_rects(ax)) == 1


def _finite_points(ax) -> np.ndarray:
    finite = [c for c in ax.collections if isinstance(c, PathCollection) and c.get_gid() is None]
    return np.concatenate([c.get_offsets() for c in finite])


def test_plot_diagram_square_layout_points(rng):
    bc, _ = _barcode(rng)
    ax = tn.plot_diagram(bc, layers=_layers(12), layout="square")
    offsets = _finite_points(ax)
    assert offsets.shape == (11, 2)
    np.testing.assert_array_equal(offsets[:, 0], 0.0)  # born at 0
    np.testing.assert_allclose(np.sort(offsets[:, 1]), bc.deaths)
    inf = [c for c in ax.collections if c.get_gid() == "infinite-point"]
    assert len(inf) == 1 and inf[0].get_offsets()[0, 1] > bc.deaths.max()
    diag = ax.get_lines()[0]
    np.testing.assert_allclose(diag.get_xdata(), diag.get_ydata())  # the diagonal
    with pytest.raises(ValueError, match="valid layouts are"):
        tn.plot_diagram(bc, layout="round")


def test_h0_diagram_gives_the_panel_to_the_deaths(rng):
    # All births are 0: the default strip layout spreads the points sideways by density
    # instead of leaving the square's triangle empty.
    bc, _ = _barcode(rng, n=120, m=300)
    ax = tn.plot_diagram(bc, layers=_layers(120))
    pts = _finite_points(ax)
    np.testing.assert_allclose(np.sort(pts[:, 1]), bc.deaths)  # y = death, every point
    assert np.abs(pts[:, 0]).max() == pytest.approx(0.45)  # the fullest bin spans the width
    assert pts[:, 0].std() > 0.1  # spread, not one column
    assert ax.get_xlim() == (-0.5, 0.5)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0"]
    lo, hi = ax.get_ylim()
    assert lo == 0.0 and bc.deaths.max() < hi <= 1.2 * bc.deaths.max()
    assert ax.get_xlabel().startswith("birth (all 0")
    assert ax.get_ylabel() == "death (correlation dissimilarity)"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[-1] == "∞" and {"fc1", "fc2"} <= set(legend)
    assert ax.get_aspect() == "auto"  # not squeezed into a square
    # Denser death ranges are drawn wider: compare the width at the two most populated bins.
    order = np.argsort(pts[:, 1])
    assert np.ptp(pts[order[:5], 0]) <= np.ptp(pts[:, 0])


def test_plot_diagram_without_layers_has_a_legend_for_its_marks(rng):
    bc, _ = _barcode(rng)
    ax = tn.plot_diagram(bc, title="layer fc1 · digits")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["finite classes", "∞"]
    assert ax.get_title() == "layer fc1 · digits"


@pytest.mark.parametrize("style", ["ecdf", "hist"])
def test_plot_death_distribution_overlays_every_barcode(rng, style):
    bcs = {name: _barcode(rng, n=n)[0] for name, n in [("none", 10), ("T1", 16), ("T2", 7)]}
    ax = tn.plot_death_distribution(bcs, style=style)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["none", "T1", "T2"]
    if style == "ecdf":
        lines = ax.get_lines()
        assert len(lines) == 3
        for line, bc in zip(lines, bcs.values()):
            x, y = line.get_xdata(), line.get_ydata()
            np.testing.assert_allclose(x[1:], np.sort(bc.deaths))
            np.testing.assert_allclose(y[1:], np.arange(1, len(bc) + 1) / len(bc))
    else:
        assert len(ax.patches) == 3  # one outline per barcode


def test_plot_death_distribution_sequence_and_errors(rng):
    a, b = _barcode(rng)[0], _barcode(rng, n=9)[0]
    ax = tn.plot_death_distribution([a, b], labels=["a", "b"])
    assert [line.get_label() for line in ax.get_lines()] == ["a", "b"]
    with pytest.raises(ValueError, match="got 2 barcodes but 1 labels"):
        tn.plot_death_distribution([a, b], labels=["a"])
    with pytest.raises(ValueError, match="valid styles are"):
        tn.plot_death_distribution([a], style="violin")
    with pytest.raises(ValueError, match="at least one barcode"):
        tn.plot_death_distribution([])
    with pytest.raises(TypeError, match=r"must be a topo_neurons\.Barcode"):
        tn.plot_death_distribution({"x": np.array([0.1, 0.2])})


def test_linkage_matrix_is_scipy_single_linkage(rng):
    bc, D = _barcode(rng, n=20)
    Z = linkage_matrix(bc)
    Zs = linkage(squareform(D, checks=False), method="single")
    np.testing.assert_allclose(Z[:, 2], Zs[:, 2])  # merge heights = deaths
    np.testing.assert_array_equal(np.sort(Z[:, 3]), np.sort(Zs[:, 3]))
    np.testing.assert_allclose(cophenet(Z), cophenet(Zs))  # the same hierarchy
    assert np.all(Z[:, 0] < Z[:, 1])


def _links(ax) -> list[np.ndarray]:
    return [
        s
        for c in ax.collections
        if isinstance(c, LineCollection) and c.get_gid() != "collapsed"
        for s in c.get_segments()
    ]


def test_dendrogram_legend_explains_threshold_and_colours(rng):
    bc, _ = _barcode(rng, n=20)
    t = float(np.median(bc.deaths))
    ax = tn.plot_dendrogram(bc, threshold=t)
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == [f"merge ≤ {t:g}: redundant group", f"merge > {t:g}", f"threshold {t:g}"]
    handles = ax.get_legend().legend_handles
    assert matplotlib.colors.to_hex(handles[0].get_color()) == OKABE_ITO[0].lower()
    assert matplotlib.colors.to_hex(handles[1].get_color()) == "#7f7f7f"
    (line,) = [ln for ln in ax.get_lines() if ln.get_gid() == "threshold"]
    assert line.get_ydata()[0] == t and line.get_linestyle() == ":"
    # The links below the threshold are the legend's first colour, the others its second.
    links = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert links
    for c in links:
        tops = [s[:, 1].max() for s in c.get_segments()]
        below = matplotlib.colors.to_hex(c.get_colors()[0]) == OKABE_ITO[0].lower()
        assert all((h <= t) == below for h in tops)
    assert ax.get_ylim()[1] > bc.deaths.max()  # room for the legend above the root
    assert tn.plot_dendrogram(bc).get_legend() is None  # no threshold: one colour, no legend


def test_dendrogram_labels_leaves_where_they_fit(rng):
    bc, _ = _barcode(rng, n=30)
    labels = [f"fc1[{i}]" for i in range(30)]
    wide = plt.figure(figsize=(7.0, 3.0)).add_subplot()
    tn.plot_dendrogram(bc, labels=labels, ax=wide)
    assert sorted(t.get_text() for t in wide.get_xticklabels()) == sorted(labels)
    assert wide.get_xlabel() == "30 neurons"
    narrow = plt.figure(figsize=(1.5, 2.0)).add_subplot()  # 30 labels need ~210 pt
    tn.plot_dendrogram(bc, labels=labels, ax=narrow, max_leaves=None)  # every neuron
    assert [t.get_text() for t in narrow.get_xticklabels()] == []
    assert narrow.get_xlabel() == "30 neurons (labels do not fit)"
    # Issue 20: in the readable mode (the default) the tree is collapsed until it can be named.
    named = plt.figure(figsize=(1.5, 2.0)).add_subplot()
    tn.plot_dendrogram(bc, labels=labels, ax=named)
    ticks = [t.get_text() for t in named.get_xticklabels()]
    assert 2 <= len(ticks) < 30 and all(ticks)
    assert named.get_xlabel() == f"30 neurons in {len(ticks)} leaves (collapsed: count × layer)"
    forced = plt.figure(figsize=(1.5, 2.0)).add_subplot()
    tn.plot_dendrogram(bc, labels=labels, ax=forced, max_labels=40)
    assert len(forced.get_xticklabels()) == 30


def test_dendrogram_readable_mode_for_hundreds_of_neurons(rng):
    bc, _ = _barcode(rng, n=400, m=500)
    ax = plt.figure(figsize=(12.0, 3.0)).add_subplot()
    tn.plot_dendrogram(bc, ax=ax, max_leaves=50)
    links = _links(ax)
    assert len(links) == 49  # the 50 clusters formed last and the merges above them
    # Those merges are the 49 largest deaths.
    np.testing.assert_allclose(np.sort([s[:, 1].max() for s in links]), bc.deaths[-49:])
    sizes = [t.get_text() for t in ax.get_xticklabels()]
    assert len(sizes) == 50
    assert sum(int(x.strip("()")) if x.startswith("(") else 1 for x in sizes) == 400
    assert ax.get_xlabel() == "400 neurons in 50 leaves (collapsed: (count))"
    # Each collapsed leaf is a stem up to the height at which its cluster formed: a death, below
    # the merges drawn as links.
    (stems,) = [c for c in ax.collections if c.get_gid() == "collapsed"]
    tops = np.array([seg[1, 1] for seg in stems.get_segments()])
    assert tops.size == sum(x.startswith("(") for x in sizes)
    assert tops.max() <= bc.deaths[-49] and np.all(np.isin(tops, bc.deaths))
    # With a threshold the stems are coloured like merges, and the legend names them.
    t = float(np.median(tops))
    ax2 = plt.figure(figsize=(12.0, 3.0)).add_subplot()
    tn.plot_dendrogram(bc, ax=ax2, max_leaves=50, threshold=t)
    (stems2,) = [c for c in ax2.collections if c.get_gid() == "collapsed"]
    blue = [matplotlib.colors.to_hex(c) == OKABE_ITO[0].lower() for c in stems2.get_colors()]
    tops2 = np.array([seg[1, 1] for seg in stems2.get_segments()])
    np.testing.assert_array_equal(blue, tops2 <= t)
    assert ax2.get_legend().get_texts()[-1].get_text().startswith("collapsed cluster")
    full = plt.figure().add_subplot()
    tn.plot_dendrogram(bc, ax=full, max_leaves=None)
    assert len(_links(full)) == 399
    with pytest.raises(ValueError, match="max_leaves must be an int ≥ 2 or None"):
        tn.plot_dendrogram(bc, max_leaves=1)


def test_plot_dendrogram_has_one_link_per_bar(rng):
    bc, _ = _barcode(rng)
    labels = [f"n[{i}]" for i in range(12)]
    ax = tn.plot_dendrogram(bc, labels=labels, threshold=0.5)
    segs = [s for c in ax.collections if isinstance(c, LineCollection) for s in c.get_segments()]
    assert len(segs) == len(bc)
    np.testing.assert_allclose(np.sort([s[:, 1].max() for s in segs]), bc.deaths)
    assert sorted(t.get_text() for t in ax.get_xticklabels()) == sorted(labels)
    colours = {
        matplotlib.colors.to_hex(c.get_colors()[0])
        for c in ax.collections
        if isinstance(c, LineCollection)
    }
    expected = (
        {OKABE_ITO[0].lower()} if bc.deaths.max() <= 0.5 else {OKABE_ITO[0].lower(), "#7f7f7f"}
    )
    assert colours == expected
    with pytest.raises(ValueError, match="labels must name the 12 points"):
        tn.plot_dendrogram(bc, labels=labels[:3])


@pytest.mark.parametrize("layout", ["mds", "spectral"])
def test_plot_mst_nodes_and_edges(rng, layout):
    bc, _ = _barcode(rng, n=15)
    layers = _layers(15)
    ax = tn.plot_mst(bc, layers=layers, layout=layout)
    (edges,) = [c for c in ax.collections if c.get_gid() == "mst-edges"]
    segs = np.array(edges.get_segments())
    assert segs.shape == (14, 2, 2)
    nodes = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert [c.get_label() for c in nodes] == ["fc1", "fc2", "out"]
    pos = np.full((15, 2), np.nan)
    for c, name in zip(nodes, ["fc1", "fc2", "out"]):
        pos[np.array(layers) == name] = c.get_offsets()
    assert np.isfinite(pos).all()
    # Every segment joins the two nodes of its MST edge.
    np.testing.assert_allclose(segs[:, 0], pos[bc.edges[:, 0]], atol=1e-12)
    np.testing.assert_allclose(segs[:, 1], pos[bc.edges[:, 1]], atol=1e-12)
    np.testing.assert_allclose(edges.get_array(), bc.deaths)
    with pytest.raises(ValueError, match="valid layouts are"):
        tn.plot_mst(bc, layout="circle")


def test_mds_layout_preserves_tree_distances_of_a_path():
    # A path 0-1-2-3 with equal deaths: classical MDS recovers it exactly (collinear points).
    D = np.abs(np.subtract.outer(np.arange(4.0), np.arange(4.0))) / 4.0
    bc = tn.zero_persistence(D)
    ax = tn.plot_mst(bc, colorbar=False)
    pos = ax.collections[-1].get_offsets()
    step = np.linalg.norm(np.diff(pos, axis=0), axis=1)
    np.testing.assert_allclose(step, step[0])  # equal spacing along the path
    np.testing.assert_allclose(np.linalg.norm(pos[3] - pos[0]), 3 * step[0])


def test_plot_barcode_evolution_lines_are_quantiles(rng):
    hist = BarcodeHistory()
    for step in (0, 5, 10, 15):
        hist.append(step, {"fc": _barcode(rng, n=10)[0], "out": _barcode(rng, n=4)[0]})
    qs = (0.1, 0.5, 0.9)
    ax = tn.plot_barcode_evolution(hist, "fc", quantiles=qs)
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["q = 0.1", "q = 0.5", "q = 0.9"]
    for k, line in enumerate(lines):
        np.testing.assert_array_equal(line.get_xdata(), [0, 5, 10, 15])
        expected = [np.quantile(bc.deaths, qs[k]) for bc in hist.barcodes["fc"]]
        np.testing.assert_allclose(line.get_ydata(), expected)
    assert lines[1].get_linewidth() > lines[0].get_linewidth()  # the median stands out
    with pytest.raises(ValueError, match=r"tracked layers are \('fc', 'out'\)"):
        tn.plot_barcode_evolution(hist, "fc9")
    with pytest.raises(ValueError, match=r"quantiles must be .* in \[0, 1\]"):
        tn.plot_barcode_evolution(hist, quantiles=(0.5, 1.5))
    with pytest.raises(TypeError, match="BarcodeHistory or a BarcodeTracker"):
        tn.plot_barcode_evolution([1, 2])


def test_layers_of_the_wrong_length_and_wrong_types(rng):
    bc, _ = _barcode(rng)
    for plot in (tn.plot_barcode, tn.plot_diagram, tn.plot_mst):
        with pytest.raises(ValueError, match=r"expected shape \(12,\), got \(3,\)"):
            plot(bc, layers=["a", "b", "c"])
        with pytest.raises(TypeError, match=r"must be a topo_neurons\.Barcode"):
            plot(np.zeros(3))


def test_paper_style_sets_and_restores_rcparams():
    before = dict(matplotlib.rcParams)
    with tn.paper_style(columns=1) as rc:
        assert matplotlib.rcParams["pdf.fonttype"] == 42
        assert matplotlib.rcParams["ps.fonttype"] == 42
        assert matplotlib.rcParams["svg.fonttype"] == "none"
        assert tuple(matplotlib.rcParams["figure.figsize"]) == pytest.approx((3.5, 2.52))
        cycle = [c["color"] for c in matplotlib.rcParams["axes.prop_cycle"]]
        assert cycle == list(OKABE_ITO)
        assert rc["savefig.bbox"] == "tight"
    with tn.paper_style(columns=2):
        assert matplotlib.rcParams["figure.figsize"][0] == pytest.approx(7.16)
    assert dict(matplotlib.rcParams) == before  # nothing leaks out
    with pytest.raises(ValueError, match=r"valid values are \(1, 2\)"):
        with tn.paper_style(columns=3):
            pass


def _pdf_font_types(data: bytes) -> list[bytes]:
    import re

    return re.findall(rb"/Subtype\s*/(Type3|TrueType|Type0|Type1|CIDFontType[02])", data)


def test_save_figure_embeds_truetype_fonts_outside_paper_style(rng, tmp_path):
    bc, _ = _barcode(rng)
    ax = tn.plot_barcode(bc, title="barcode of fc1 · digits")
    with matplotlib.rc_context({"pdf.fonttype": 3}):  # matplotlib's default
        ax.figure.savefig(tmp_path / "plain.pdf")
        assert tn.save_figure(ax.figure, tmp_path / "sub" / "saved.pdf") == (
            tmp_path / "sub" / "saved.pdf"
        )
    assert b"Type3" in _pdf_font_types((tmp_path / "plain.pdf").read_bytes())  # can fail
    data = (tmp_path / "sub" / "saved.pdf").read_bytes()
    fonts = _pdf_font_types(data)
    assert fonts and b"Type3" not in fonts and b"/FontFile2" in data
    assert matplotlib.rcParams["pdf.fonttype"] == 3  # nothing changed globally
    assert not [p for p in (tmp_path / "sub").iterdir() if p.name.startswith(".")]
    with pytest.raises(ValueError, match="unknown format 'gif'"):
        tn.save_figure(ax.figure, tmp_path / "x.gif")


@pytest.mark.parametrize("fmt", ["pdf", "svg", "png"])
def test_figures_write_valid_files_with_embedded_fonts(rng, tmp_path, fmt):
    bc, _ = _barcode(rng)
    with tn.paper_style():
        for name, plot in [
            ("barcode", tn.plot_barcode),
            ("diagram", tn.plot_diagram),
            ("dendrogram", tn.plot_dendrogram),
            ("mst", tn.plot_mst),
        ]:
            ax = plot(bc)
            path = tmp_path / f"{name}.{fmt}"
            ax.figure.savefig(path)
            data = path.read_bytes()
            if fmt == "svg":
                assert data.lstrip().startswith(b"<?xml") and b"<svg" in data[:2000]
                assert b"<text" in data  # svg.fonttype none: text stays text
            else:
                assert data.startswith(MAGIC[fmt]), name
            if fmt == "pdf":
                assert b"/FontFile2" in data  # TrueType (Type 42) embedded, not Type 3
                fonts = _pdf_font_types(data)
                assert fonts and b"Type3" not in fonts, (name, fonts)
                assert data.rstrip().endswith(b"%%EOF")


def test_mds_layout_refinement_lowers_the_stress_of_a_branching_tree(rng):
    # Through the public figure: the node positions plot_mst draws (one PathCollection, the
    # points in order) approximate the tree distances better than classical MDS alone.
    from scipy.sparse.csgraph import shortest_path

    bc, _ = _barcode(rng, n=40)
    ax = tn.plot_mst(bc, colorbar=False)
    pos = np.asarray(ax.collections[-1].get_offsets())
    assert pos.shape == (40, 2)
    # The tree distances the layout approximates (edge length 0.25 + death / max death).
    w = 0.25 + bc.deaths / bc.deaths.max()
    adj = np.zeros((40, 40))
    adj[bc.edges[:, 0], bc.edges[:, 1]] = w
    dist = shortest_path(adj, directed=False)

    def stress(X):
        d = np.linalg.norm(X[:, None] - X[None], axis=-1)
        return float(np.sum((d - dist) ** 2))

    d2 = dist**2
    J = d2 - d2.mean(0) - d2.mean(1)[:, None] + d2.mean()
    vals, vecs = np.linalg.eigh(-0.5 * J)
    classical = vecs[:, -2:] * np.sqrt(np.clip(vals[-2:], 0, None))
    assert stress(pos) < 0.9 * stress(classical)
    # Deterministic: the same figure twice.
    again = np.asarray(tn.plot_mst(bc, colorbar=False).collections[-1].get_offsets())
    np.testing.assert_array_equal(again, pos)


def test_docs_figure_script_renders_every_figure_kind(rng, tmp_path):
    """scripts/make_figures.py (the docs' images): every kind drawn, titled, legend read back."""
    import importlib.util
    from pathlib import Path

    import torch

    path = Path(__file__).resolve().parents[1] / "scripts" / "make_figures.py"
    spec = importlib.util.spec_from_file_location("_make_figures", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    torch.manual_seed(0)
    X = torch.from_numpy(rng.standard_normal((200, 64)).astype(np.float32))
    reports, trackers = {}, {}
    for name in ("none", "T1"):
        model = script.make_mlp()
        trackers[name] = tn.BarcodeTracker(model, layers=["fc1", "fc2"], every=1)
        for _ in range(3):
            trackers[name].step(X[:150])
        reports[name] = tn.analyse(model, X)
    figs = script.figures(reports, trackers)
    kinds = {
        "fig_barcodes": "Barcode",
        "fig_deaths": "Deaths",
        "fig_diagrams": "H0 diagram",
        "fig_dendrogram": "Dendrogram of layer fc2",
        "fig_dendrogram_readable": "Dendrogram of all 106 neurons",
        "fig_mst": "MST",
        "fig_evolution": "Layer fc1 during training",
    }
    assert set(figs) == set(kinds)
    for stem, fig in figs.items():
        assert any(ax.get_title() for ax in fig.axes), stem
        for i, ax in enumerate(fig.axes):
            if not ax.get_title():  # a colour bar
                continue
            assert ax.get_title().startswith(kinds[stem]), (stem, ax.get_title())
            assert script.MODEL in ax.get_title() or "test digits" in ax.get_title()
            # the y label once, on the first panel (issue 20)
            assert (ax.get_xlabel() and bool(ax.get_ylabel()) == (i == 0)) or stem == "fig_mst"
        legends = [
            t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()
        ]
        assert legends, stem
        path = tn.save_figure(fig, tmp_path / f"{stem}.png")
        assert path.read_bytes().startswith(MAGIC["png"])
    # the two curves, and (issue 20) the line naming the bars at d = 1 (T1 killed two neurons)
    deaths_legend = [t.get_text() for t in figs["fig_deaths"].axes[0].get_legend().get_texts()]
    assert deaths_legend[:2] == ["none", "T1"]
    assert len(deaths_legend) == 2 or (
        len(deaths_legend) == 3 and deaths_legend[2].startswith("d = 1: dead (")
    )
    readable = figs["fig_dendrogram_readable"].axes[0]
    assert readable.get_xlabel() == "106 neurons in 24 leaves (collapsed: count × layer)"
    bar_axes = figs["fig_barcodes"].axes
    assert bar_axes[0].get_xlim() == bar_axes[1].get_xlim()  # shared x axis
