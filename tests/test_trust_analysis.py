"""Issue 16 (trust) for the analysis side: report files, the ``analyse`` and ``barcode`` commands'
outputs and errors, Dask clusters, memory guards, history files, figures, option messages and dead
neurons. Each test is named after the item it guards."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import topo_neurons as tn
from topo_neurons._options import check_choice
from topo_neurons.cli import build_parser, main

DEMO = str(Path(__file__).resolve().parents[1] / "examples" / "demo_models.py")
FACTORY = f"{DEMO}:digits_mlp"

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*:DeprecationWarning")


def _dead_mlp(seed: int = 0) -> torch.nn.Sequential:
    """4 → 8 → 3 with ReLU; neurons 0 and 1 of the hidden layer are dead (always 0)."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    with torch.no_grad():
        model[0].bias[:2] = -100.0
    return model


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    torch.manual_seed(1)
    report = tn.analyse(_dead_mlp(), torch.randn(300, 4), thresholds=(0.1, 0.3))
    path = report.to_json(tmp_path_factory.mktemp("report") / "report.json")
    return report, path


def _edited(path: Path, tmp_path: Path, edit) -> Path:
    data = json.loads(path.read_text())
    edit(data)
    target = tmp_path / "edited.json"
    target.write_text(json.dumps(data))
    return target


# ----------------------------------------------------------------------------- report files
def test_report_from_json_summary_contradicting_barcode_is_rejected(report_file, tmp_path):
    report, path = report_file
    assert tn.RedundancyReport.from_json(path) == report  # an untouched file reads back
    true_min = float(report.network.barcode.deaths.min())

    def set_min(d):
        d["network"]["summary"]["min"] = 123.0

    with pytest.raises(ValueError) as info:
        tn.RedundancyReport.from_json(_edited(path, tmp_path, set_min))
    msg = str(info.value)
    assert "entry 'network'" in msg and "summary['min'] is 123.0" in msg
    assert f"barcode gives {true_min!r}" in msg and "edited.json" in msg

    # Anything else the barcode determines is checked too: a layer's effective neurons, the
    # dead-neuron count of its summary.
    def set_effective(d):
        d["layers"][0]["effective_neurons"]["0.3"] += 1

    with pytest.raises(ValueError, match=r"entry '0': effective_neurons\[0\.3\] is"):
        tn.RedundancyReport.from_json(_edited(path, tmp_path, set_effective))

    def set_dead(d):
        d["layers"][0]["summary"]["dead_neurons"] = 0

    with pytest.raises(ValueError, match=r"summary\['dead_neurons'\] is 0\.0 .* gives 2"):
        tn.RedundancyReport.from_json(_edited(path, tmp_path, set_dead))

    # A file written before the dead-neuron count existed: the count is derived on load.
    def drop_dead(d):
        for entry in [d["network"], *d["layers"]]:
            del entry["summary"]["dead_neurons"]

    back = tn.RedundancyReport.from_json(_edited(path, tmp_path, drop_dead))
    assert back == report and back.network.summary["dead_neurons"] == 2


@pytest.mark.parametrize(
    "where, key",
    [
        ((), "kind"),
        ((), "layers"),
        (("network",), "labels"),
        (("layers", 1), "summary"),
        (("layers", 0), "cross_layer_edges"),
        (("network", "barcode"), "deaths"),
    ],
)
def test_report_from_json_missing_key_names_it(report_file, tmp_path, where, key):
    _, path = report_file

    def drop(d):
        for step in where:
            d = d[step]
        del d[key]

    with pytest.raises(ValueError, match=re.escape(repr(key))) as info:
        tn.RedundancyReport.from_json(_edited(path, tmp_path, drop))
    assert not isinstance(info.value, KeyError)
    assert "edited.json" in str(info.value)


# ----------------------------------------------------------------------------- analyse outputs
def _snapshot(folder: Path) -> dict[str, str]:
    """Every entry of ``folder`` (hidden ones included): name → sha256 of its bytes."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>"
        for p in folder.iterdir()
    }


_FIGS = ("barcode", "diagram", "dendrogram", "mst")


def _run_set(formats: tuple[str, ...]) -> set[str]:
    return {"report.json", "report.md"} | {f"{fig}.{f}" for fig in _FIGS for f in formats}


def _base(limit: int) -> list[str]:
    return ["analyse", "--model", FACTORY, "--data", "digits", "--standardize",
            "--limit", str(limit), "--quiet"]  # fmt: skip


@pytest.fixture
def old_run(tmp_path, capsys):
    """A folder holding a complete earlier run: 300 examples, figures as png and svg."""
    out = tmp_path / "out"
    code = main([*_base(300), "--formats", "png,svg", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    snap = _snapshot(out)
    assert set(snap) == _run_set(("png", "svg"))
    return out, snap


def _assert_one_complete_run(out: Path, old: dict[str, str], new_examples: int) -> str:
    """``out`` holds the old run unchanged, or the new run (png only) complete: never a mix."""
    now = _snapshot(out)
    if now == old:
        return "old"
    assert set(now) == _run_set(("png",)), sorted(now)
    assert json.loads((out / "report.json").read_text())["n_examples"] == new_examples
    assert not any(now[name] == old.get(name) for name in now if name.endswith(".png"))
    return "new"


def test_analyse_interrupted_while_writing_keeps_the_earlier_run_complete(
    old_run, capsys, monkeypatch
):
    out, old = old_run
    import topo_neurons.plotting as plotting

    staged = []
    real = plotting.save_figure

    def interrupted(fig, path, *args, **kwargs):
        # report.json and report.md are staged by now; the interrupt comes mid-figures.
        staged.extend(p.name for p in Path(path).parent.iterdir())
        if len(staged) > 2:
            raise KeyboardInterrupt
        return real(fig, path, *args, **kwargs)

    monkeypatch.setattr(plotting, "save_figure", interrupted)
    code = main([*_base(400), "--formats", "png", "--out", str(out)])
    assert code == 130, capsys.readouterr().err
    assert "report.json" in staged
    assert _snapshot(out) == old  # the earlier run, complete; no staging folder left


def test_analyse_new_run_replaces_the_earlier_run_as_a_whole(old_run, capsys):
    out, old = old_run
    code = main([*_base(400), "--formats", "png", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    # The earlier svg figures are gone with the rest of the earlier run.
    assert _assert_one_complete_run(out, old, 400) == "new"


def test_analyse_sigint_mid_run_leaves_one_complete_run(old_run):
    out, old = old_run
    proc = subprocess.Popen(
        [sys.executable, "-m", "topo_neurons.cli", *_base(400), "--formats", "png",
         "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    try:
        # A real SIGINT as soon as the new report.json is staged (figures still to come).
        while not list(out.glob(".staging-*/report.json")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never staged report.json"
            time.sleep(0.005)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (0, 130), err
    assert "Traceback" not in err
    which = _assert_one_complete_run(out, old, 400)
    # 130: interrupted, before the final moves (the old run) or during them (SIGINT waits for
    # them: the new run, complete); 0: the run had finished when the signal came.
    assert proc.returncode == 130 or which == "new"


def test_analyse_on_a_full_disk_is_one_line_exit_2(old_run, capsys, monkeypatch):
    out, old = old_run
    import topo_neurons.plotting as plotting

    def full(fig, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(plotting, "save_figure", full)
    code = main([*_base(400), "--formats", "png", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ": warning: " not in ln]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("topo-neurons analyse: error: ")
    assert str(out / "barcode.png") in lines[0] and os.strerror(errno.ENOSPC) in lines[0]
    assert _snapshot(out) == old  # nothing already written is lost


# ----------------------------------------------------------------------------- Dask
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_with_a_short_timeout_says_so(tmp_path, capsys):
    pytest.importorskip("distributed", reason="the dask extra is not installed")
    address = f"tcp://127.0.0.1:{_free_port()}"
    start = time.monotonic()
    with pytest.raises(ConnectionError, match=rf"none answered at '{address}' within 1 s"):
        tn.persistence.connect_scheduler(address, timeout=1)
    assert time.monotonic() - start < 15  # Dask's own default waits 30 s
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        tn.persistence.connect_scheduler(address, timeout=0)
    args = [*_base(300), "--path", "tiled", "--scheduler", address, "--scheduler-timeout", "1"]
    code = main([*args, "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    line = [ln for ln in err.strip().splitlines() if ": warning: " not in ln]
    assert len(line) == 1 and "within 1 s" in line[0] and "--scheduler-timeout" in line[0]
    assert build_parser().parse_args([*args, "--out", "o"]).scheduler_timeout == 1.0
    assert build_parser().parse_args([*_base(2), "--out", "o"]).scheduler_timeout is None
    assert main([*_base(300), "--scheduler-timeout", "5", "--out", str(tmp_path / "y")]) == 2
    assert "--scheduler-timeout applies with --scheduler" in capsys.readouterr().err
    assert main([*_base(300), "--path", "dense", "--scheduler", address, "--out", "z"]) == 2
    assert "--path dense does not use it" in capsys.readouterr().err
    import inspect

    default = inspect.signature(tn.persistence.connect_scheduler).parameters["timeout"].default
    assert default == 10.0  # shorter than Dask's 30 s


@pytest.mark.slow
def test_dask_cluster_losing_its_workers_says_so_and_progress_stops():
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    A = np.random.default_rng(3).standard_normal((32, 4096)).astype(np.float32)
    calls: list[tuple[int, int]] = []
    with (
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):

        def progress(done: int, total: int) -> None:
            calls.append((done, total))
            if done == 3:
                # Every worker goes, with the blocks of Z it holds. Dask runs these callbacks
                # in a thread of their own: waiting here holds the count, not the cluster.
                cluster.scale(0)
                deadline = time.monotonic() + 60
                while client.scheduler_info()["workers"] and time.monotonic() < deadline:
                    time.sleep(0.05)

        with pytest.raises(tn.persistence.ClusterLostError) as info:
            tn.correlation_persistence(A, block_size=256, scheduler=client, progress=progress)
        seen = len(calls)
        time.sleep(1.0)
        assert len(calls) == seen  # no counting once the run is lost
    err = info.value
    assert isinstance(err, RuntimeError)
    assert "lost its workers" in str(err) and cluster.scheduler_address in str(err)
    assert err.address == cluster.scheduler_address
    n_tiles = tn.persistence._tiled.tile_task_count(4096, 256)
    # tasks: 16 block trees, 36 pair tasks (≤ 4 pairs of a block each), 8 merges
    assert err.total == 16 + 36 + 8 and 3 <= err.done < err.total
    assert f"{err.done} of {err.total} tasks had finished" in str(err)
    assert seen < n_tiles and calls[-1][0] == seen


def test_analyse_on_a_cluster_that_lost_its_workers_is_one_line_exit_2(
    tmp_path, capsys, monkeypatch
):
    import topo_neurons.analysis as analysis

    def lost(*args, **kwargs):
        raise tn.persistence.ClusterLostError(
            "the Dask cluster at tcp://10.0.0.1:8786 lost its workers during the run (no "
            "worker left): 7 of 91 tasks had finished",
            address="tcp://10.0.0.1:8786", done=7, total=91, workers=0,
        )  # fmt: skip

    monkeypatch.setattr(analysis, "analyse", lost)
    code = main([*_base(300), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ": warning: " not in ln]
    assert code == 2 and "Traceback" not in err and len(lines) == 1, err
    assert "lost its workers" in lines[0] and "7 of 91 tasks had finished" in lines[0]


# ----------------------------------------------------------------------------- smaller items
def test_correlation_penalty_memory_guard(monkeypatch):
    A = torch.randn(20, 1000, dtype=torch.float64, requires_grad=True)
    # Below the limit: the value, against numpy.
    C = np.corrcoef(A.detach().numpy(), rowvar=False)
    expected = (np.abs(C).sum() - 1000) / (1000 * 999)
    np.testing.assert_allclose(float(tn.CorrelationPenalty()(A).detach()), expected, rtol=1e-10)
    monkeypatch.setenv("TOPO_NEURONS_AVAILABLE_MEMORY", "4M")  # 1000² float64 = 7.6 MiB
    with pytest.raises(MemoryError, match=r"correlation_penalty .* n = 1000 neurons needs about"):
        tn.CorrelationPenalty()(A)
    with pytest.raises(MemoryError, match=r"n = 1000 neurons"):
        tn.regularizers.correlation_penalty(A.detach())


def _barcode_options() -> set[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {opt for a in sub.choices["barcode"]._actions for opt in a.option_strings}


def test_barcode_too_large_for_dense_path_advises_only_its_own_options(
    tmp_path, capsys, monkeypatch
):
    A = np.random.default_rng(0).standard_normal((700, 600))
    np.save(tmp_path / "acts.npy", A)
    ref = tn.zero_persistence(tn.correlation_dissimilarity(A))
    monkeypatch.setenv("TOPO_NEURONS_AVAILABLE_MEMORY", "1M")  # 600² float64 = 2.7 MiB
    inp = str(tmp_path / "acts.npy")
    code = main(["barcode", inp, "--path", "dense", "--out", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    advised = set(re.findall(r"(?<![\w-])--[a-z][\w-]*", err))
    assert "--path" in advised and advised <= _barcode_options(), advised
    for path in (["--path", "auto"], ["--path", "tiled", "--block-size", "256"]):
        out = tmp_path / path[1]
        assert main(["barcode", inp, *path, "--out", str(out), "--quiet"]) == 0
        bc = tn.Barcode.load(out / "acts.npz")
        assert bc.backend == "tiled"
        np.testing.assert_allclose(bc.deaths, ref.deaths, rtol=0, atol=1e-12)
    # No option is silently ignored: --block-size asks for the tiled engine, --backend for
    # the dense path (which does not fit here).
    monkeypatch.delenv("TOPO_NEURONS_AVAILABLE_MEMORY")
    out = tmp_path / "block"
    assert main(["barcode", inp, "--block-size", "512", "--out", str(out), "--quiet"]) == 0
    assert tn.Barcode.load(out / "acts.npz").backend == "tiled"
    capsys.readouterr()
    code = main(["barcode", inp, "--backend", "native", "--block-size", "512", "--out", "o"])
    assert code == 2 and "--backend native applies to the dense path" in capsys.readouterr().err
    monkeypatch.setenv("TOPO_NEURONS_AVAILABLE_MEMORY", "1M")
    code = main(["barcode", inp, "--backend", "native", "--out", str(tmp_path / "n")])
    err = capsys.readouterr().err
    assert code == 2 and "--backend native: " in err and "--path tiled" in err
    code = main(["barcode", inp, "--input-kind", "distance", "--path", "tiled",
                 "--out", str(tmp_path / "x")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "--path tiled applies to activations" in err


def test_barcode_history_load_of_a_truncated_file_is_a_value_error(tmp_path, rng):
    history = tn.BarcodeHistory()
    for step in range(3):
        D = tn.correlation_dissimilarity(rng.standard_normal((40, 12)))
        history.append(step, {"fc": tn.zero_persistence(D)})
    path = history.save(tmp_path / "history.npz")
    assert tn.BarcodeHistory.load(path).steps == [0, 1, 2]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="is not a BarcodeHistory file") as info:
        tn.BarcodeHistory.load(path)
    assert not isinstance(info.value, zipfile.BadZipFile) and str(path) in str(info.value)


def test_plot_death_distribution_takes_a_single_barcode(report_file):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report, _ = report_file
    bc = report.layers["0"].barcode
    n_dead = int(np.sum(bc.deaths == 1.0))
    # a single barcode has a legend only to name the dotted line at d = 1 (dead neurons)
    dead_labels = [f"d = 1: dead ({n_dead})"] if n_dead else []
    single_labels = ["barcode", *dead_labels] if n_dead else []
    for obj in (bc, report.layers["0"]):
        ax = tn.plot_death_distribution(obj)
        (line,) = [ln for ln in ax.get_lines() if ln.get_gid() != "dead-line"]
        np.testing.assert_array_equal(line.get_xdata(), np.r_[0.0, np.sort(bc.deaths)])
        np.testing.assert_allclose(line.get_ydata()[1:], np.arange(1, len(bc) + 1) / len(bc))
        legend = ax.get_legend()
        texts = [t.get_text() for t in legend.get_texts()] if legend is not None else []
        assert texts == single_labels
        plt.close(ax.figure)
    ax = tn.plot_death_distribution(bc, labels="fc1", style="hist")
    assert len(ax.patches) == 1
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["fc1", *dead_labels]
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="got 1 barcode but 2 labels"):
        tn.plot_death_distribution(bc, labels=["a", "b"])


def test_option_error_reads_correctly():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU())
    with pytest.raises(ValueError) as info:
        tn.Regularized(model, tn.TopologicalRedundancy(), penalty_pass="twice")
    msg = str(info.value)
    assert "penalty_pass='twice' is not valid; valid values are" in msg
    assert "passs" not in msg
    # English plurals for nouns, "values" for identifiers; the ones the package uses read right.
    for name, what, plural in [
        ("reduction", None, "reductions"),
        ("pass", None, "passes"),
        ("strategy", None, "strategies"),
        ("box", None, "boxes"),
        ("penalty_pass", None, "values"),
        ("kind", "dissimilarity", "dissimilarities"),
    ]:
        with pytest.raises(ValueError, match=rf"; valid {plural} are \('a', 'b'\)$"):
            check_choice(name, "z", ("a", "b"), what=what)


# ----------------------------------------------------------------------------- dead neurons
def test_dead_neurons_reported_beside_every_death_statistic(tmp_path, capsys):
    model = _dead_mlp(seed=4)
    X = torch.randn(250, 4)
    report = tn.analyse(model, X)
    # Independent count: the hidden layer by hand, the output layer (never constant here).
    with torch.no_grad():
        hidden = torch.relu(X @ model[0].weight.T + model[0].bias).numpy()
        logits = model(X).numpy()
    dead_hidden = int(np.sum(hidden.max(axis=0) == hidden.min(axis=0)))
    dead_out = int(np.sum(logits.max(axis=0) == logits.min(axis=0)))
    assert dead_hidden == 2 and dead_out == 0
    assert report.layers["0"].summary["dead_neurons"] == dead_hidden
    assert report.layers["2"].summary["dead_neurons"] == dead_out
    assert report.network.summary["dead_neurons"] == dead_hidden + dead_out
    assert list(report.network.summary)[-1] == "dead_neurons"
    # JSON, Markdown.
    data = json.loads(report.to_json(tmp_path / "r.json").read_text())
    assert [e["summary"]["dead_neurons"] for e in data["layers"]] == [2, 0]
    assert data["network"]["summary"]["dead_neurons"] == 2
    md = report.to_markdown()
    header = next(ln for ln in md.splitlines() if ln.startswith("| layer"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert cells[2] == "dead" and cells[3] == "min death"
    rows = {ln.split("|")[1].strip(): ln for ln in md.splitlines() if ln.startswith("| `")}
    assert rows["`0`"].split("|")[3].strip() == "2" and rows["`2`"].split("|")[3].strip() == "0"
    # The command's printed summary.
    factory = tmp_path / "dead_factory.py"
    factory.write_text(
        "import torch\n\n\ndef make():\n    torch.manual_seed(0)\n"
        "    m = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.ReLU(), "
        "torch.nn.Linear(8, 3))\n"
        "    with torch.no_grad():\n        m[0].bias[:3] = -1000.0\n    return m\n"
    )
    code = main(["analyse", "--model", f"{factory}:make", "--data", "digits", "--limit", "300",
                 "--out", str(tmp_path / "cli")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    printed = {ln.split("|")[1].strip(): ln.split("|")[3].strip() for ln in out.splitlines()
               if ln.startswith("| `") or ln.startswith("| **")}  # fmt: skip
    assert printed == {"`0`": "3", "`2`": "0", "**network**": "3"}
