"""The ``analyse``, ``barcode`` and ``compare`` commands, end to end and on bad input."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from demo_models import digits_mlp, digits_standardized, train_digits_mlp

import topo_neurons as tn
from topo_neurons.cli import main

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*:DeprecationWarning")

DEMO = str(Path(__file__).resolve().parents[1] / "examples" / "demo_models.py")
FACTORY = f"{DEMO}:digits_mlp"
PNG = b"\x89PNG\r\n\x1a\n"


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "topo_neurons.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def _assert_user_error(proc_or_code, err: str, command: str, match: str) -> None:
    code = proc_or_code if isinstance(proc_or_code, int) else proc_or_code.returncode
    assert code == 2, err
    assert "Traceback" not in err
    # One line for the error; a warning given before it (e.g. no --weights) is its own line.
    lines = [ln for ln in err.strip().splitlines() if f"{command}: warning: " not in ln]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"topo-neurons {command}: error: "), err
    assert match in lines[0], err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A digits MLP trained briefly, saved as a state dict and as TorchScript."""
    root = tmp_path_factory.mktemp("models")
    model = train_digits_mlp(epochs=2, seed=0)
    weights = root / "mlp.pt"
    torch.save(model.state_dict(), weights)
    script = root / "mlp_script.pt"
    torch.jit.save(torch.jit.script(model), str(script))
    return model, weights, script


def test_analyse_end_to_end_on_digits(trained, tmp_path):
    model, weights, _ = trained
    out = tmp_path / "report"
    proc = _cli(
        "analyse", "--model", FACTORY, "--weights", str(weights), "--data", "digits",
        "--standardize", "--formats", "png,pdf", "--batch-size", "500", "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    report = tn.RedundancyReport.from_json(out / "report.json")
    assert report.n_examples == 1797
    assert list(report.layers) == ["fc1", "fc2", "out"]
    # The numbers are those of the library on the same model and data.
    X, _ = digits_standardized()
    direct = tn.analyse(model, X, batch_size=500)
    np.testing.assert_allclose(report.barcode.deaths, direct.barcode.deaths, atol=1e-12)
    assert report.network.effective_neurons == direct.network.effective_neurons
    assert report.meta["data"] == "digits" and report.meta["standardize"] is True
    md = (out / "report.md").read_text()
    assert md.startswith("# Redundancy report") and "`fc2`" in md
    for name in ("barcode", "diagram", "dendrogram", "mst"):
        assert (out / f"{name}.png").read_bytes().startswith(PNG), name
        assert (out / f"{name}.pdf").read_bytes().startswith(b"%PDF-"), name
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporaries
    assert "wrote" in proc.stdout


def test_help_has_examples():
    proc = _cli("analyse", "--help")
    assert proc.returncode == 0
    assert "examples:" in proc.stdout and "--torchscript" in proc.stdout
    assert "--weights" in proc.stdout


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--data", "mnist_fashion"], "unknown data set 'mnist_fashion'; give one of digits"),
        (["--data", "missing.npy"], "data file 'missing.npy' does not exist"),
        (["--layers", "fc1,fc9"], "layer 'fc9' is not a module"),
    ],
)
def test_analyse_user_errors_through_subprocess(trained, tmp_path, args, match):
    _, weights, _ = trained
    base = {"--model": FACTORY, "--weights": str(weights), "--data": "digits"}
    for k, v in zip(args[::2], args[1::2]):
        base[k] = v
    flat = [x for kv in base.items() for x in kv]
    proc = _cli("analyse", *flat, "--out", str(tmp_path / "o"), cwd=tmp_path)
    _assert_user_error(proc, proc.stderr, "analyse", match)
    assert not (tmp_path / "o").exists()


def test_unsafe_checkpoint_is_refused(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"fc1.weight": torch.zeros(2), "payload": argparse.Namespace(cmd="rm -rf")}, evil)
    proc = _cli("analyse", "--model", FACTORY, "--weights", str(evil), "--data", "digits",
                "--out", str(tmp_path / "o"))  # fmt: skip
    _assert_user_error(
        proc,
        proc.stderr,
        "analyse",
        "refused by torch.load(weights_only=True): it holds a argparse.Namespace object",
    )


def test_torchscript_model_gives_the_same_report(trained, tmp_path, capsys):
    model, _, script = trained
    code = main(["analyse", "--torchscript", str(script), "--data", "digits", "--standardize",
                 "--quiet", "--out", str(tmp_path)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    report = tn.RedundancyReport.from_json(tmp_path / "report.json")
    direct = tn.analyse(model, digits_standardized()[0])
    # TorchScript and eager run the same kernels here, but may not everywhere (a fuser):
    # float32 activations, so agreement to their rounding
    np.testing.assert_allclose(report.barcode.deaths, direct.barcode.deaths, atol=1e-6)
    # The eager wrapper keeps the Sequential's layer names.
    assert list(report.layers) == ["fc1", "fc2", "out"]
    assert capsys.readouterr().out == ""  # --quiet


def test_analyse_npz_data_with_key_and_sampling(trained, tmp_path, capsys):
    _, weights, _ = trained
    X, _ = digits_standardized()
    np.savez(tmp_path / "d.npz", inputs=X[:300], labels=np.arange(300))
    args = ["analyse", "--model", FACTORY, "--weights", str(weights), "--data",
            str(tmp_path / "d.npz"), "--quiet", "--out", str(tmp_path / "o")]  # fmt: skip
    assert main(args) == 2
    _assert_user_error(2, capsys.readouterr().err, "analyse", "holds several arrays")
    code = main([*args, "--key", "inputs", "--sampling", "importance", "--p", "0.5"])
    assert code == 0, capsys.readouterr().err
    report = tn.RedundancyReport.from_json(tmp_path / "o" / "report.json")
    assert report.n_examples == 300
    assert report.layers["fc1"].n_neurons == 24 and report.layers["out"].n_neurons == 10


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--model", "topo_neurons.nowhere:make"], "cannot import module 'topo_neurons.nowhere'"),
        (["--model", f"{DEMO}:nothing"], "has no callable 'nothing'; callables in it:"),
        (["--model", "no_colon"], "must be 'package.module:factory'"),
        (["--model", FACTORY, "--weights", "WRONG_SHAPE"], "do not fit"),
        (["--model", FACTORY, "--weights", "GARBAGE"], "is not a torch state-dict file"),
        (["--model", FACTORY, "--data-shape"], "failed on a batch of shape (256, 5)"),
        (["--torchscript", "NON_SEQUENTIAL"], "only when they are an nn.Sequential"),
        (["--model", FACTORY, "--formats", "png,bmp"], "valid formats are"),
    ],
)
def test_analyse_user_errors_in_process(tmp_path, capsys, extra, match):
    data = "digits"
    if "--data-shape" in extra:
        extra = extra[:-1]
        np.save(tmp_path / "x.npy", np.zeros((300, 5), np.float32))
        data = str(tmp_path / "x.npy")
    if "WRONG_SHAPE" in extra:
        torch.save(digits_mlp(hidden=(8, 8)).state_dict(), tmp_path / "w.pt")
        extra = [str(tmp_path / "w.pt") if x == "WRONG_SHAPE" else x for x in extra]
    if "GARBAGE" in extra:
        (tmp_path / "g.pt").write_bytes(b"not a checkpoint")
        extra = [str(tmp_path / "g.pt") if x == "GARBAGE" else x for x in extra]
    if "NON_SEQUENTIAL" in extra:

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = torch.nn.Linear(64, 3)

            def forward(self, x):
                return self.fc(x) * 2

        torch.jit.save(torch.jit.script(Net()), str(tmp_path / "ns.pt"))
        extra = [str(tmp_path / "ns.pt") if x == "NON_SEQUENTIAL" else x for x in extra]
    code = main(["analyse", *extra, "--data", data, "--quiet", "--out", str(tmp_path / "o")])
    _assert_user_error(code, capsys.readouterr().err, "analyse", match)


# ----------------------------------------------------------------------------- barcode
def test_barcode_command_from_activations_and_distances(tmp_path, rng, capsys):
    A = rng.standard_normal((100, 12))
    A[:, 6:] += A[:, :6]
    np.save(tmp_path / "acts.npy", A)
    proc = _cli("barcode", str(tmp_path / "acts.npy"), "--out", str(tmp_path / "res"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    bc = tn.Barcode.load(tmp_path / "res" / "acts.npz")  # --out DIR, name of the input
    assert bc == tn.zero_persistence(tn.correlation_dissimilarity(A))
    assert (tmp_path / "res" / "acts.png").read_bytes().startswith(PNG)
    # A distance matrix inside an .npz, --name, figure as PDF and PNG.
    D = tn.correlation_dissimilarity(A, kind="sqrt")
    np.savez(tmp_path / "dist.npz", D=D, other=np.zeros(2))
    code = main(
        ["barcode", str(tmp_path / "dist.npz"), "--key", "D", "--input-kind", "distance",
         "--out", str(tmp_path / "res"), "--name", "d", "--formats", "pdf,png"]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert tn.Barcode.load(tmp_path / "res" / "d.npz") == tn.zero_persistence(D)
    assert (tmp_path / "res" / "d.pdf").read_bytes().startswith(b"%PDF-")
    assert (tmp_path / "res" / "d.png").read_bytes().startswith(PNG)


@pytest.mark.parametrize(
    ("array", "extra", "match"),
    [
        (np.zeros(10), [], "must have shape (m examples, n neurons); 'IN' has shape (10,)"),
        (np.zeros((4, 5)), ["--input-kind", "distance"], "must be square (n, n)"),
        (np.array([[0.0, -1.0], [-1.0, 0.0]]), ["--input-kind", "distance"], "negative"),
        (np.ones((5, 3)), ["--out", "x.txt"], "--out 'x.txt' looks like a file name"),
        (np.ones((5, 3)), ["--out", "o", "--formats", "gif"], "valid formats are"),
        (None, [], "input 'IN' does not exist"),
    ],
)
def test_barcode_user_errors(tmp_path, capsys, monkeypatch, array, extra, match):
    monkeypatch.chdir(tmp_path)
    if array is not None:
        np.save(tmp_path / "IN.npy", array)
    args = ["barcode", "IN.npy", *extra]
    if "--out" not in extra:
        args += ["--out", "o"]
    code = main(args)
    _assert_user_error(code, capsys.readouterr().err, "barcode", match.replace("IN", "IN.npy"))


def test_barcode_refuses_pickled_arrays(tmp_path, capsys):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    code = main(["barcode", str(tmp_path / "obj.npy"), "--out", str(tmp_path / "o")])
    _assert_user_error(code, capsys.readouterr().err, "barcode", "cannot be read without pickles")


# ----------------------------------------------------------------------------- compare
def test_compare_command(tmp_path, rng, capsys):
    paths = []
    for k in range(3):
        A = rng.standard_normal((60, 8 + k))
        path = tmp_path / f"b{k}.npz"
        tn.zero_persistence(tn.correlation_dissimilarity(A)).save(path)
        paths.append(str(path))
    code = main(["compare", *paths, "--labels", "none", "T1", "T2", "--out",
                 str(tmp_path / "figs"), "--formats", "svg"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    svg = (tmp_path / "figs" / "compare.svg").read_text()
    assert "<svg" in svg and "T1" in svg  # labels kept as text (svg.fonttype none)
    out = capsys.readouterr().out
    assert "none: 8 points" in out and "T2: 10 points" in out
    code = main(["compare", *paths[:2], "--labels", "a", "--out", str(tmp_path / "c")])
    _assert_user_error(code, capsys.readouterr().err, "compare", "2 barcode files but 1 --labels")
    code = main(["compare", paths[0], "--out", str(tmp_path / "c.gif")])
    _assert_user_error(code, capsys.readouterr().err, "compare", "looks like a file name")
    json.dumps(out)  # plain text output


# ----------------------------------------------------------------------------- issue 11
def _barcode_file(rng, path, n=8, m=60):
    tn.zero_persistence(tn.correlation_dissimilarity(rng.standard_normal((m, n)))).save(path)
    return str(path)


def test_compare_on_corrupt_npz_is_one_line_exit_2(tmp_path, rng, capsys):
    good = _barcode_file(rng, tmp_path / "good.npz")
    cut = (tmp_path / "good.npz").read_bytes()[:-30]
    for name, data in [("junk.npz", b"junk"), ("cut.npz", cut)]:
        (tmp_path / name).write_bytes(data)
        code = main(["compare", good, str(tmp_path / name), "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err
        _assert_user_error(code, err, "compare", f"{str(tmp_path / name)!r} is not a barcode file")
    assert not (tmp_path / "o").exists()


def test_compare_on_activations_npy_is_one_line_exit_2(tmp_path, rng, capsys):
    np.save(tmp_path / "acts.npy", rng.standard_normal((50, 6)))
    code = main(["compare", str(tmp_path / "acts.npy"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    _assert_user_error(code, err, "compare", "holds one array of shape (50, 6) (a .npy file")
    assert "topo-neurons barcode acts.npy" in err  # says how to make a barcode of it


def test_barcode_load_on_corrupt_file_through_the_cli_names_the_file(tmp_path, capsys):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04broken")
    code = main(["compare", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "o")])
    _assert_user_error(code, capsys.readouterr().err, "compare", "bad.npz")


def test_analyse_out_on_existing_file_fails_before_the_analysis(tmp_path, capsys, monkeypatch):
    import topo_neurons.analysis

    def never(*args, **kwargs):
        raise AssertionError("the analysis ran before the outputs were checked")

    monkeypatch.setattr(topo_neurons.analysis, "analyse", never)
    (tmp_path / "report").write_text("not a directory")
    code = main(["analyse", "--model", FACTORY, "--data", "digits", "--quiet",
                 "--out", str(tmp_path / "report")])  # fmt: skip
    _assert_user_error(code, capsys.readouterr().err, "analyse", "exists and is not a directory")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "barcode.png").mkdir()  # an output name taken by a directory
    code = main(["analyse", "--model", FACTORY, "--data", "digits", "--quiet",
                 "--out", str(tmp_path / "r")])  # fmt: skip
    _assert_user_error(code, capsys.readouterr().err, "analyse", "'barcode.png' exists")


def test_model_module_relative_to_working_directory_imports(tmp_path, monkeypatch, capsys):
    # The installed `topo-neurons` script does not put the working directory on sys.path
    # (python -m does): main() in-process reproduces the script.
    name = f"mymodels_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(
        "import torch\n"
        "def cnn():\n"
        "    return torch.nn.Sequential(torch.nn.Linear(64, 12), torch.nn.ReLU(),"
        " torch.nn.Linear(12, 10))\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    code = main(["analyse", "--model", f"{name}:cnn", "--data", "digits", "--limit", "200",
                 "--quiet", "--out", "r"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    report = tn.RedundancyReport.from_json(tmp_path / "r" / "report.json")
    assert report.network.n_neurons == 22
    assert str(tmp_path) not in sys.path  # the working directory was added only for the import


def test_barcode_of_no_more_examples_than_neurons_warns(tmp_path, rng, capsys):
    np.save(tmp_path / "few.npy", rng.standard_normal((6, 10)))
    assert main(["barcode", str(tmp_path / "few.npy"), "--out", str(tmp_path), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "warning: m = 6 examples for n = 10 neurons (m ≤ n)" in err
    np.save(tmp_path / "many.npy", rng.standard_normal((11, 10)))
    assert main(["barcode", str(tmp_path / "many.npy"), "--out", str(tmp_path), "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_analyse_without_weights_warns_random_initialisation(tmp_path, capsys):
    code = main(["analyse", "--model", FACTORY, "--data", "digits", "--limit", "300", "--quiet",
                 "--out", str(tmp_path / "r")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert "warning: no --weights given: analysing the random initialisation" in err


def test_analyse_device_option(trained, tmp_path, capsys):
    _, weights, _ = trained
    base = ["analyse", "--model", FACTORY, "--weights", str(weights), "--data", "digits",
            "--limit", "300", "--quiet"]  # fmt: skip
    code = main([*base, "--device", "cpu", "--out", str(tmp_path / "a")])
    assert code == 0, capsys.readouterr().err
    code = main([*base, "--device", "gpu0", "--out", str(tmp_path / "b")])
    _assert_user_error(code, capsys.readouterr().err, "analyse", "device='gpu0' is not a torch")
    if not torch.cuda.is_available():
        code = main([*base, "--device", "cuda", "--out", str(tmp_path / "b")])
        _assert_user_error(code, capsys.readouterr().err, "analyse", "CUDA is not available")
    else:
        code = main([*base, "--device", "cuda", "--out", str(tmp_path / "c")])
        assert code == 0, capsys.readouterr().err
        a = tn.RedundancyReport.from_json(tmp_path / "a" / "report.json")
        c = tn.RedundancyReport.from_json(tmp_path / "c" / "report.json")
        np.testing.assert_allclose(a.barcode.deaths, c.barcode.deaths, atol=1e-5)


def test_memory_guard_reaches_the_cli_as_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TOPO_NEURONS_AVAILABLE_MEMORY", "1K")
    code = main(["analyse", "--model", FACTORY, "--data", "digits", "--limit", "100",
                 "--quiet", "--out", str(tmp_path / "r")])  # fmt: skip
    _assert_user_error(code, capsys.readouterr().err, "analyse", "n = 90 neurons needs about")


def test_main_shows_tracebacks_for_bugs(tmp_path, rng, monkeypatch):
    import topo_neurons.cli.compare as cli_compare

    path = _barcode_file(rng, tmp_path / "b.npz")
    for exc in (TypeError("a bug"), KeyError("a bug")):

        def broken(*args, exc=exc, **kwargs):
            raise exc

        monkeypatch.setattr(cli_compare, "plot_death_distribution", broken, raising=False)
        monkeypatch.setattr("topo_neurons.plotting.plot_death_distribution", broken)
        with pytest.raises(type(exc), match="a bug"):
            main(["compare", path, "--out", str(tmp_path / "o")])
    # And through the command: a traceback, exit status 1 (not a one-line "error", exit 2).
    proc = subprocess.run(
        [sys.executable, "-c",
         "import sys, topo_neurons.plotting as p\n"
         "def broken(*a, **k): raise KeyError('a bug')\n"
         "p.plot_death_distribution = broken\n"
         "from topo_neurons.cli import main\n"
         f"sys.exit(main(['compare', {path!r}, '--out', {str(tmp_path / 'o')!r}]))"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "KeyError: 'a bug'" in proc.stderr


def test_out_is_a_directory_for_every_subcommand(tmp_path, rng, capsys):
    A = rng.standard_normal((80, 10))
    np.save(tmp_path / "acts.npy", A)
    out = tmp_path / "results"
    assert main(["barcode", str(tmp_path / "acts.npy"), "--out", str(out), "--quiet"]) == 0
    assert main(["compare", str(out / "acts.npz"), "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["acts.npz", "acts.png", "compare.png"]
    assert capsys.readouterr().err == ""
    # A directory name with a dot is a directory; a file-like name is refused before any work.
    assert main(["barcode", str(tmp_path / "acts.npy"), "--out", str(tmp_path / "run_1.5"),
                 "--quiet"]) == 0  # fmt: skip
    assert (tmp_path / "run_1.5" / "acts.npz").is_file()
    code = main(["analyse", "--model", FACTORY, "--data", "digits", "--quiet",
                 "--out", str(tmp_path / "report.json")])  # fmt: skip
    _assert_user_error(code, capsys.readouterr().err, "analyse", "looks like a file name")
    assert not (tmp_path / "report.json").exists()
    # --help of each names --out DIR.
    from topo_neurons.cli import build_parser

    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    for command in ("analyse", "barcode", "compare"):
        assert "--out DIR" in sub.choices[command].format_help(), command
    assert "output directory" in sub.choices["reproduce"].format_help()


def test_old_out_forms_still_work_with_a_note(tmp_path, rng, capsys):
    A = rng.standard_normal((80, 10))
    np.save(tmp_path / "acts.npy", A)
    code = main(["barcode", str(tmp_path / "acts.npy"), "--out", str(tmp_path / "bc.npz")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "note: --out" in err and "names a file, the old form" in err
    assert tn.Barcode.load(tmp_path / "bc.npz") == tn.zero_persistence(
        tn.correlation_dissimilarity(A)
    )
    assert (tmp_path / "bc.png").read_bytes().startswith(PNG)
    code = main(["compare", str(tmp_path / "bc.npz"), "--out", str(tmp_path / "cmp.pdf")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "the old form" in err and "--name cmp" in err
    assert (tmp_path / "cmp.pdf").read_bytes().startswith(b"%PDF-")


def _pdf_fonts(data: bytes) -> list[bytes]:
    return re.findall(rb"/Subtype\s*/(Type3|TrueType|Type0|Type1|CIDFontType[02])", data)


def test_every_pdf_the_cli_writes_embeds_truetype_fonts(trained, tmp_path, rng, capsys):
    _, weights, _ = trained
    code = main(["analyse", "--model", FACTORY, "--weights", str(weights), "--data", "digits",
                 "--limit", "300", "--formats", "pdf", "--quiet",
                 "--out", str(tmp_path)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    np.save(tmp_path / "acts.npy", rng.standard_normal((60, 8)))
    assert main(["barcode", str(tmp_path / "acts.npy"), "--formats", "pdf", "--quiet",
                 "--out", str(tmp_path)]) == 0  # fmt: skip
    assert main(["compare", str(tmp_path / "acts.npz"), "--formats", "pdf", "--quiet",
                 "--out", str(tmp_path)]) == 0  # fmt: skip
    pdfs = sorted(tmp_path.glob("*.pdf"))
    assert [p.stem for p in pdfs] == ["acts", "barcode", "compare", "dendrogram", "diagram", "mst"]
    for pdf in pdfs:
        fonts = _pdf_fonts(pdf.read_bytes())
        assert fonts, pdf.name  # text is drawn with fonts (titles, labels)
        assert b"Type3" not in fonts, (pdf.name, fonts)
        assert b"/FontFile2" in pdf.read_bytes(), pdf.name  # TrueType program embedded


def test_analyse_figure_titles_name_model_layers_and_data(trained, tmp_path, capsys, monkeypatch):
    import topo_neurons.cli.analyse as cli_analyse

    _, weights, _ = trained
    titles = {}
    original = cli_analyse.save_figures

    def spy(fig, targets):
        titles[targets[0].stem] = fig.axes[0].get_title()
        return original(fig, targets)

    monkeypatch.setattr(cli_analyse, "save_figures", spy)
    code = main(["analyse", "--model", FACTORY, "--weights", str(weights), "--data", "digits",
                 "--limit", "300", "--quiet", "--out", str(tmp_path)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert set(titles) == {"barcode", "diagram", "dendrogram", "mst"}
    for title in titles.values():
        assert "digits_mlp (fc1, fc2, out)" in title, title
        assert "90 neurons · digits, 300 examples" in title, title
    assert titles["barcode"].startswith("Barcode of ")
    assert titles["dendrogram"].startswith("Dendrogram of ")


@pytest.mark.slow
def test_readme_command_line_walkthrough_runs_as_written(tmp_path):
    """The fenced bash block of the README's command-line section, run in a fresh copy."""
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- section:cli -->", 1)[1].split("<!-- /section:cli -->", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the command-line section holds one bash block"
    script = blocks[0]
    # A fresh checkout: the tracked files the block uses, and the project's .venv.
    (tmp_path / "examples").mkdir()
    demo = (root / "examples" / "demo_models.py").read_bytes()
    (tmp_path / "examples" / "demo_models.py").write_bytes(demo)
    (tmp_path / ".venv").symlink_to(root / ".venv")
    before = {p for p in tmp_path.rglob("*")}
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        | {"PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    created = {p for p in tmp_path.rglob("*")} - before
    assert created, "the walk-through wrote nothing"
    ignored = ("out", "results")  # git-ignored output folders (.gitignore)
    outside = [p for p in created if p.relative_to(tmp_path).parts[0] not in ignored]
    assert not outside, f"the walk-through wrote into the tracked tree: {outside}"
    gitignore = (root / ".gitignore").read_text()
    assert "/out/" in gitignore.split() or "out/" in gitignore.split()
    # Every file a command reads was made by an earlier command of the block.
    for name in ("report/report.json", "report/barcode.png", "fc2.npz", "fc2.png"):
        assert any(str(p).endswith(name) for p in created), name


def test_analyse_tiled_path_on_a_dask_scheduler(trained, tmp_path, capsys):
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    _, weights, _ = trained
    base = ["analyse", "--model", FACTORY, "--weights", str(weights), "--data", "digits",
            "--limit", "400", "--quiet"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "dense")]) == 0, capsys.readouterr().err
    with distributed.LocalCluster(
        n_workers=1, processes=False, threads_per_worker=2, dashboard_address=None
    ) as cluster:
        args = ["--path", "tiled", "--scheduler", cluster.scheduler_address]
        code = main([*base, *args, "--out", str(tmp_path / "tiled")])
        assert code == 0, capsys.readouterr().err
    dense = tn.RedundancyReport.from_json(tmp_path / "dense" / "report.json")
    tiled = tn.RedundancyReport.from_json(tmp_path / "tiled" / "report.json")
    assert dense.meta["path"] == "dense" and tiled.meta["path"] == "tiled"
    np.testing.assert_allclose(tiled.barcode.deaths, dense.barcode.deaths, rtol=0, atol=1e-10)
    code = main([*base, "--scheduler", "tpc://127.0.0.1:9", "--out", str(tmp_path / "x")])
    _assert_user_error(code, capsys.readouterr().err, "analyse", "cannot connect to a Dask")
