"""The ``analyse``, ``barcode`` and ``compare`` commands, end to end and on bad input."""

from __future__ import annotations

import argparse
import json
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

DEMO = str(Path(__file__).with_name("demo_models.py"))
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
    lines = err.strip().splitlines()
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
    np.testing.assert_allclose(report.barcode.deaths, direct.barcode.deaths, atol=1e-9)
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
    proc = _cli("barcode", str(tmp_path / "acts.npy"), "--out", str(tmp_path / "bc.npz"))
    assert proc.returncode == 0, proc.stderr
    bc = tn.Barcode.load(tmp_path / "bc.npz")
    assert bc == tn.zero_persistence(tn.correlation_dissimilarity(A))
    assert (tmp_path / "bc.png").read_bytes().startswith(PNG)
    # A distance matrix inside an .npz, figure as PDF.
    D = tn.correlation_dissimilarity(A, kind="sqrt")
    np.savez(tmp_path / "dist.npz", D=D, other=np.zeros(2))
    code = main(
        ["barcode", str(tmp_path / "dist.npz"), "--key", "D", "--input-kind", "distance",
         "--out", str(tmp_path / "d.npz"), "--figure", str(tmp_path / "d.pdf")]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert tn.Barcode.load(tmp_path / "d.npz") == tn.zero_persistence(D)
    assert (tmp_path / "d.pdf").read_bytes().startswith(b"%PDF-")


@pytest.mark.parametrize(
    ("array", "extra", "match"),
    [
        (np.zeros(10), [], "must have shape (m examples, n neurons); 'IN' has shape (10,)"),
        (np.zeros((4, 5)), ["--input-kind", "distance"], "must be square (n, n)"),
        (np.array([[0.0, -1.0], [-1.0, 0.0]]), ["--input-kind", "distance"], "negative"),
        (np.ones((5, 3)), ["--out", "x.txt"], "--out must end in .npz"),
        (None, [], "input 'IN' does not exist"),
    ],
)
def test_barcode_user_errors(tmp_path, capsys, monkeypatch, array, extra, match):
    monkeypatch.chdir(tmp_path)
    if array is not None:
        np.save(tmp_path / "IN.npy", array)
    args = ["barcode", "IN.npy", *extra]
    if "--out" not in extra:
        args += ["--out", "o.npz"]
    code = main(args)
    _assert_user_error(code, capsys.readouterr().err, "barcode", match.replace("IN", "IN.npy"))


def test_barcode_refuses_pickled_arrays(tmp_path, capsys):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    code = main(["barcode", str(tmp_path / "obj.npy"), "--out", str(tmp_path / "o.npz")])
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
                 str(tmp_path / "cmp.svg")])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    svg = (tmp_path / "cmp.svg").read_text()
    assert "<svg" in svg and "T1" in svg  # labels kept as text (svg.fonttype none)
    out = capsys.readouterr().out
    assert "none: 8 points" in out and "T2: 10 points" in out
    code = main(["compare", *paths[:2], "--labels", "a", "--out", str(tmp_path / "c.png")])
    _assert_user_error(code, capsys.readouterr().err, "compare", "2 barcode files but 1 --labels")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    code = main(["compare", str(tmp_path / "junk.npz"), "--out", str(tmp_path / "c.png")])
    _assert_user_error(code, capsys.readouterr().err, "compare", "is not a barcode .npz file")
    code = main(["compare", paths[0], "--out", str(tmp_path / "c.gif")])
    _assert_user_error(code, capsys.readouterr().err, "compare", "unknown figure format 'gif'")
    json.dumps(out)  # plain text output
