"""Issue 16, the paper's harness: no code run from data files (CIFAR-10), results files whose
rows cannot be silently wrong (duplicates, contradictions, edits), one ``reproduce`` per output
folder, and environmental failures (read-only folder, full disk) told in one line."""

from __future__ import annotations

import codecs
import csv
import errno
import hashlib
import io
import json
import os
import pickle
import re
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from topo_neurons.cli import main
from topo_neurons.experiments import data as D
from topo_neurons.experiments import protocol as P
from topo_neurons.experiments.protocol import _results
from topo_neurons.experiments.reproduction import _outdir, _reproduce
from topo_neurons.io import atomic_path

NAMES = (*D.CIFAR10_TRAIN_BATCHES, D.CIFAR10_TEST_BATCH)

# ------------------------------------------------------------------ CIFAR-10


_RECONSTRUCT = np.zeros(1, np.uint8).__reduce__()[0]


class _Python2Pickler(pickle._Pickler):
    """Writes a batch as Python 2's cPickle wrote the CIFAR-10 python version: protocol 2,
    text and bytes as Python 2 ``str`` (BINSTRING opcodes: read back as bytes with
    ``encoding="bytes"``), numpy's rebuilder named ``numpy.core.multiarray._reconstruct``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj):
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    def save_str(self, obj):
        self.save_bytes(obj.encode("ascii"))

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str

    def save_global(self, obj, name=None):
        if obj is _RECONSTRUCT:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def _batch(rng, m, index):
    return {
        b"batch_label": f"training batch {index} of 5".encode(),
        b"labels": [int(v) for v in rng.integers(0, 10, m)],
        b"data": rng.integers(0, 256, (m, 3072), dtype=np.uint8),
        b"filenames": [f"img_{index}_{i}.png".encode() for i in range(m)],
    }


def _dump(obj, path, how):
    with open(path, "wb") as fh:
        if how == "python2":
            _Python2Pickler(fh, protocol=2).dump(obj)
        else:
            pickle.dump(obj, fh, protocol=how)


def _write_python(directory, rng, m=6, how="python2"):
    directory.mkdir(parents=True, exist_ok=True)
    batches = {}
    for k, name in enumerate(NAMES, 1):
        batches[name] = _batch(rng, m, k)
        _dump(batches[name], directory / name, how)
    return batches


def _write_binary(directory, rng, m=6):
    """The binary version: per file, m records of a label byte and 3072 pixel bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    raw = {}
    for name in NAMES:
        records = rng.integers(0, 256, (m, 3073), dtype=np.uint8)
        records[:, 0] = np.arange(m) % 2  # two classes, so that a stratified split exists
        (directory / f"{name}.bin").write_bytes(records.tobytes())
        raw[name] = records.tobytes()
    return raw


@pytest.mark.parametrize("how", ["python2", 2, 4, 5])
def test_cifar_python_batch_pickled_as_the_real_one_loads(tmp_path, rng, how):
    """A batch pickled as the official files are (protocol 2, Python 2 strings, numpy's
    ``numpy.core.multiarray._reconstruct``), or by Python 3 with protocol 2 (bytes through
    ``_codecs.encode``), 4 or 5 (in-band buffers through ``_frombuffer``), loads through the
    restricted unpickler, with the arrays of the batch."""
    batches = _write_python(tmp_path / "cifar-10-batches-py", rng, how=how)
    X, y, Xt, yt = D.load_cifar10(tmp_path)
    train = [batches[n] for n in D.CIFAR10_TRAIN_BATCHES]
    expected = np.concatenate([b[b"data"] for b in train]).reshape(-1, 3, 32, 32) / 255.0
    np.testing.assert_allclose(X, expected, rtol=1e-6)
    np.testing.assert_array_equal(y, np.concatenate([b[b"labels"] for b in train]))
    test = batches[D.CIFAR10_TEST_BATCH]
    np.testing.assert_allclose(Xt, test[b"data"].reshape(-1, 3, 32, 32) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(yt, test[b"labels"])
    assert X.dtype == np.float32 and y.dtype == np.int64


class _Touch:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


class _Open:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("protocol", [0, 2, 5])
@pytest.mark.parametrize(
    ("payload", "where", "refused"),
    [
        (_Touch, "top", r"refused to load (posix|nt|os)\.system"),
        (_Touch, "data", r"refused to load (posix|nt|os)\.system"),
        (_Open, "labels", r"refused to load (__builtin__|builtins|io)\.open"),
    ],
)
def test_malicious_cifar_batch_runs_nothing(tmp_path, rng, protocol, payload, where, refused):
    """Issue 16: ``reproduce --tasks cifar10`` unpickled ``data_batch_*``: a file whose
    ``__reduce__`` called ``os.system`` ran its command, then the tool said "not a CIFAR-10
    python batch". The unpickler now refuses every name but numpy's array rebuilders before
    building anything: the file is named, nothing is run, no file is created."""
    _write_python(tmp_path, rng)
    victim = tmp_path / "created_by_the_pickle"
    evil = payload(victim)
    batch = evil if where == "top" else {**_batch(rng, 6, 2), f"{where}".encode(): evil}
    _dump(batch, tmp_path / "data_batch_2", protocol)
    with pytest.raises(ValueError, match=r"data_batch_2: " + refused) as info:
        D.load_cifar10(tmp_path)
    assert "nothing in the file was built or run" in str(info.value)
    assert not victim.exists()


def test_malicious_cifar_batch_through_reproduce_is_one_line_and_runs_nothing(
    tmp_path, rng, capsys
):
    _write_python(tmp_path / "data", rng)
    victim = tmp_path / "created_by_the_pickle"
    _dump(_Touch(victim), tmp_path / "data" / "test_batch", 2)
    out = tmp_path / "out"
    status = main(["reproduce", "--tasks", "cifar10", "--data-dir", str(tmp_path / "data"),
                   "--models", "trapezium", "--out", str(out), "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert re.search(r"test_batch: refused to load (posix|nt|os)\.system", err)
    assert not victim.exists() and not out.exists()


def test_cifar_python_batch_codecs_other_than_latin1_are_refused(tmp_path, rng):
    """``_codecs.encode`` is admitted only as protocol 2 stores bytes (text, latin-1)."""

    class Rot13:
        def __reduce__(self):
            return (codecs.encode, ("abc", "rot13"))

    _write_python(tmp_path, rng)
    _dump({**_batch(rng, 6, 1), b"batch_label": Rot13()}, tmp_path / "data_batch_1", 2)
    with pytest.raises(ValueError, match=r"data_batch_1: refused _codecs.encode\(str, 'rot13'\)"):
        D.load_cifar10(tmp_path)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({b"data": np.zeros((6, 3072))}, r"b'data' is a float64 array of shape \(6, 3072\)"),
        ({b"data": np.zeros((6, 3000), np.uint8)}, r"data of shape \(6, 3000\); expected"),
        ({b"labels": [1, 2, 3]}, r"6 images but 3 labels"),
        ({b"labels": [0, 1, 2, 3, 4, 12]}, r"label 12 is not a CIFAR-10 class \(0 … 9\)"),
        ({b"labels": ["a"] * 6}, r"b'labels' is not a list of int"),
        ({b"coarse_labels": [0] * 6}, r"unexpected key\(s\) \[b'coarse_labels'\]"),
    ],
)
def test_cifar_python_batch_is_type_checked(tmp_path, rng, change, match):
    _write_python(tmp_path, rng)
    _dump({**_batch(rng, 6, 4), **change}, tmp_path / "data_batch_4", 2)
    with pytest.raises(ValueError, match=r"data_batch_4: .*" + match):
        D.load_cifar10(tmp_path)


def test_cifar_binary_version_is_read_without_pickle(tmp_path, rng):
    raw = _write_binary(tmp_path / "cifar-10-batches-bin", rng)
    X, y, Xt, yt = D.load_cifar10(tmp_path)

    def expected(name):  # record i: byte 0 the label, then 1024 red, 1024 green, 1024 blue
        rec = np.frombuffer(raw[name], np.uint8).reshape(-1, 3073)
        return rec[:, 1:].reshape(-1, 3, 32, 32) / 255.0, rec[:, 0]

    parts = [expected(n) for n in D.CIFAR10_TRAIN_BATCHES]
    np.testing.assert_allclose(X, np.concatenate([p[0] for p in parts]), rtol=1e-6)
    np.testing.assert_array_equal(y, np.concatenate([p[1] for p in parts]))
    np.testing.assert_allclose(Xt, expected("test_batch")[0], rtol=1e-6)
    np.testing.assert_array_equal(yt, expected("test_batch")[1])
    assert X.shape == (30, 3, 32, 32) and X.dtype == np.float32 and y.dtype == np.int64
    ds = D.load_task("cifar10", data_dir=tmp_path)
    assert ds.input_shape == (3, 32, 32) and len(ds.y_test) == 6


def test_cifar_binary_version_is_preferred_to_the_pickles(tmp_path, rng):
    """Where both versions are present the binary one is read: the pickles are not opened."""
    _write_binary(tmp_path, rng)
    victim = tmp_path / "created_by_the_pickle"
    for name in NAMES:
        _dump(_Touch(victim), tmp_path / name, 2)
    X, *_ = D.load_cifar10(tmp_path)
    assert X.shape == (30, 3, 32, 32) and not victim.exists()


def test_cifar_binary_damaged_files_are_named(tmp_path, rng):
    raw = _write_binary(tmp_path, rng)
    path = tmp_path / "data_batch_3.bin"
    path.write_bytes(raw["data_batch_3"][:-100])  # cut mid-record
    with pytest.raises(ValueError, match=r"data_batch_3.bin: 18338 bytes is not a whole number"):
        D.load_cifar10(tmp_path)
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"data_batch_3.bin: 0 bytes is not a whole number"):
        D.load_cifar10(tmp_path)
    bad = bytearray(raw["data_batch_3"])
    bad[2 * 3073] = 200  # the label byte of record 2
    path.write_bytes(bytes(bad))
    with pytest.raises(ValueError, match=r"data_batch_3.bin: record 2 has label 200"):
        D.load_cifar10(tmp_path)
    path.unlink()
    with pytest.raises(FileNotFoundError, match=r"missing data_batch_3.bin in .*binary version"):
        D.load_cifar10(tmp_path)


def test_cifar_neither_version_names_both(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no CIFAR-10 batches in .*binary version"):
        D.load_cifar10(tmp_path)


# ------------------------------------------------------------------ results.csv


def _row(i=0, **kw):
    row = {
        "task": "digits", "model": "trapezium", "regularizer": "t1", "weight": "0.001",
        "seed": str(i), "stage": "select", "config_hash": "0123456789", "status": "ok",
        "metric": "accuracy", "val_metric": "0.9", "test_metric": "0.915", "val_loss": "0.31",
        "best_epoch": "3", "epochs": "7", "seconds": "1.5", "message": "",
    }  # fmt: skip
    return row | kw


def test_results_rows_carry_a_checksum_of_their_fields(tmp_path):
    path = P.write_results(tmp_path / "r.csv", [_row(0), _row(1, message='a,"b"\nc')])
    with open(path, newline="", encoding="utf-8") as fh:
        written = list(csv.DictReader(fh))
    assert list(written[0]) == [*P.RESULT_FIELDS, "checksum"]
    for r in written:  # the first 16 hex digits of the SHA-256 of the fields as a JSON list
        fields = json.dumps([r[f] for f in P.RESULT_FIELDS], ensure_ascii=False)
        assert r["checksum"] == hashlib.sha256(fields.encode()).hexdigest()[:16]
    assert written[0]["checksum"] != written[1]["checksum"]
    assert P.read_results(path) == [_row(0), _row(1, message='a,"b"\nc')]


def test_results_duplicate_key_with_conflicting_value_is_damaged(tmp_path):
    """Issue 16: a duplicated run key with a conflicting value was silently ignored (the first
    row won). Every copy of a run whose copies disagree is damaged: reported by line, never
    tabulated, re-run by the sweep."""
    rows = [_row(0), _row(1), _row(0, test_metric="0.99"), _row(2)]
    path = P.write_results(tmp_path / "r.csv", rows)  # each row has a valid checksum
    msg = r"line 2: 2 rows of one run \(lines 2, 4\) disagree on test_metric \(test_metric "
    with pytest.warns(P.DamagedResultsWarning, match=msg + r"'0.915' / '0.99'\)") as rec:
        got = P.read_results(path)
    assert "line 4: 2 rows of one run (lines 2, 4)" in str(rec[0].message)
    assert got == [_row(1), _row(2)]
    with pytest.raises(ValueError, match=r"2 damaged row\(s\)"):
        P.read_results(path, damaged="raise")


def test_results_conflicting_copies_are_rerun_by_the_sweep(tmp_path):
    path = tmp_path / "results.csv"
    cfg = P.TrainConfig(max_epochs=1)
    specs = P.plan_runs(["breast_cancer"], ["trapezium"], ["none", "l2"], [1e-3], [0])
    P.run_sweep(specs, cfg, path, progress=False)
    rows = P.read_results(path)
    forged = rows[1] | {"test_metric": "0.5"}  # a second copy of the l2 run, another value
    P.write_results(path, [*rows, forged])
    with pytest.warns(P.DamagedResultsWarning, match=r"disagree on test_metric"):
        again = P.run_sweep(specs, cfg, path, progress=False)
    assert (again.ran, again.skipped) == (1, 1)
    final = P.read_results(path)
    assert [r["regularizer"] for r in final] == ["none", "l2"]
    assert final[1]["test_metric"] == rows[1]["test_metric"]  # training is deterministic
    kept = (tmp_path / "results.csv.damaged").read_text()
    assert kept.count("disagree on test_metric") == 2


def test_results_exact_copies_are_collapsed_with_a_warning(tmp_path):
    """Exact copies (every field equal) carry no conflict: one is kept, and the file says so."""
    path = P.write_results(tmp_path / "r.csv", [_row(0), _row(1), _row(0)])
    with pytest.warns(P.ResultsFileWarning, match=r"1 exact copy\(ies\) .* \(lines 4\)"):
        assert P.read_results(path, damaged="raise") == [_row(0), _row(1)]


def test_results_diverged_row_with_finite_metrics_is_damaged(tmp_path):
    """Issue 16: a row marked ``diverged`` whose metrics are finite was trusted and changed
    the selection. It contradicts itself: damaged."""
    diverged = _row(1, status="diverged", val_metric="0.99", test_metric="0.99", best_epoch="")
    clean = _row(2, status="diverged", val_metric="", test_metric="", val_loss="",
                 best_epoch="", message="loss inf at epoch 3")  # fmt: skip
    path = P.write_results(tmp_path / "r.csv", [_row(0), diverged, clean])
    with pytest.warns(P.DamagedResultsWarning, match=r"line 3: status 'diverged' but val_metric"):
        got = P.read_results(path)
    assert got == [_row(0), clean]
    for name in ("test_metric", "val_loss", "best_epoch"):  # any finite metric contradicts it
        lone = _row(3, status="diverged", val_metric="", test_metric="", val_loss="",
                    best_epoch="") | {name: "2"}  # fmt: skip
        P.write_results(path, [lone])
        with pytest.raises(ValueError, match=rf"line 2: status 'diverged' but {name} '2'"):
            P.read_results(path, damaged="raise")


def test_results_hand_edited_accuracy_is_reported_as_edited(tmp_path):
    """Issue 16: a plausible hand edit of an accuracy (0.915 → 0.990) moved the T1 mean with no
    warning. The row's checksum no longer matches its fields: reported as edited, left out."""
    rows = [_row(i, test_metric=v) for i, v in enumerate(("0.913", "0.915", "0.914"))]
    path = P.write_results(tmp_path / "results.csv", rows)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(",0.915,", ",0.990,"), encoding="utf-8")
    with pytest.warns(P.DamagedResultsWarning, match=r"line 3: edited: its fields do not match"):
        got = P.read_results(path)
    assert got == [rows[0], rows[2]]
    assert np.mean([float(r["test_metric"]) for r in got]) == pytest.approx(0.9135)
    with pytest.raises(ValueError, match=r"line 3: edited"):
        P.read_results(path, damaged="raise")
    # an edit that leaves the value plausible but changes any other field is caught as well
    path.write_text(text.replace(",1.5,", ",1.4,", 1), encoding="utf-8")
    with pytest.warns(P.DamagedResultsWarning, match=r"line 2: edited"):
        assert P.read_results(path) == rows[1:]


def test_results_file_without_checksums_is_read_with_a_warning(tmp_path):
    """A file written before the checksum column: rows are checked but cannot be verified;
    the warning says so, and the next sweep's rewrite gives every row its checksum."""
    path = P.write_results(tmp_path / "results.csv", [_row(0), _row(1)])
    with open(path, newline="", encoding="utf-8") as fh:
        old = [{k: v for k, v in r.items() if k != "checksum"} for r in csv.DictReader(fh)]
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=list(P.RESULT_FIELDS))
    writer.writeheader()
    writer.writerows(old)
    path.write_text(buf.getvalue(), encoding="utf-8")
    with pytest.warns(P.ResultsFileWarning, match=r"no 'checksum' column .* cannot be verified"):
        assert P.read_results(path) == [_row(0), _row(1)]
    P.write_results(path, P.read_results(path, damaged="ignore"))
    assert P.read_results(path, damaged="raise") == [_row(0), _row(1)]


def test_committed_results_files_are_sound_and_verified():
    """The committed results of the runs in the docs carry checksums, and every row passes."""
    import warnings

    root = Path(__file__).resolve().parents[1]
    for name in ("reproduce", "reproduce_paper"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no damaged, unverified or duplicated row
            rows = P.read_results(root / "docs" / "img" / name / "results.csv", damaged="raise")
        assert len(rows) > 600


# ------------------------------------------------------------------ the output folder

TINY = [
    "reproduce", "--tasks", "breast_cancer", "--models", "trapezium",
    "--regularizers", "none", "l2", "--grid", "1e-3", "--seeds", "1", "--epochs", "1",
    "--refits", "0", "--no-barcodes", "--no-progress",
]  # fmt: skip


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("topo-neurons reproduce: error: "), err
    assert len(err.strip().splitlines()) == 1, err
    return err


def test_two_reproduce_processes_on_one_out_second_refuses(tmp_path, capsys):
    """Issue 16: two ``reproduce`` processes on one ``--out`` both trained everything. The
    folder is locked for the whole run; a second process stops at once (exit 2), naming the
    process that holds it; once the holder is gone the folder is free again."""
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from pathlib import Path
            from topo_neurons.experiments.reproduction._outdir import output_lock
            with output_lock(Path({str(out)!r})):
                print("held", flush=True)
                sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main([*TINY, "--out", str(out)]) == 2
        err = _one_line(capsys)
        assert f"output folder {out} is in use by another reproduce" in err
        assert f"pid {holder.pid} on {socket.gethostname()}, started 20" in err
        assert not (out / "results.csv").exists()  # nothing trained
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert holder.returncode == 0
    assert not (out / _outdir.OWNER_NAME).exists()
    assert main([*TINY, "--out", str(out)]) == 0
    assert len(P.read_results(out / "results.csv")) == 2


def _refuse_probe(monkeypatch, out: Path, code: int, cause: str) -> None:
    """Make the probe file in ``out`` fail with ``code`` (root writes into a chmod 555 folder,
    and a test cannot fill a disk): what ``open`` raises on a read-only or full file system."""
    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == out:
            raise OSError(code, cause, os.path.join(dir, ".reproduce-probe-x"))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(_outdir.tempfile, "mkstemp", mkstemp)


def _no_training(monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("trained before the output folder was checked")

    monkeypatch.setattr(_reproduce, "run_sweep", fail)


def _read_only_writes_still_succeed(folder: Path) -> bool:
    try:
        (folder / "probe").write_text("x")
    except PermissionError:
        return False
    (folder / "probe").unlink()
    return True


def test_reproduce_out_read_only_is_one_line_before_training(tmp_path, capsys, monkeypatch):
    """Issue 16: ``reproduce --out`` on a read-only folder printed a 15-line traceback. It is
    found before any training (a probe file), one line naming the path and cause, exit 2;
    what the folder held is untouched."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.md").write_text("an earlier report\n")
    out.chmod(0o555)
    try:
        if _read_only_writes_still_succeed(out):  # root: the mode does not stop writes
            _refuse_probe(monkeypatch, out, errno.EROFS, "Read-only file system")
        _no_training(monkeypatch)
        assert main([*TINY, "--out", str(out)]) == 2
    finally:
        out.chmod(0o755)
    err = _one_line(capsys)
    assert f"{out}: cannot write in the output folder (" in err
    assert re.search(r"\((Read-only file system|Permission denied)\); nothing was trained", err)
    assert (out / "results.md").read_text() == "an earlier report\n"
    assert sorted(p.name for p in out.iterdir()) == ["results.md"]


def test_reproduce_out_inside_a_read_only_parent_leaves_nothing(tmp_path, capsys, monkeypatch):
    parent = tmp_path / "ro"
    parent.mkdir()
    out = parent / "a" / "b"
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self == out and self.parent.exists():  # after its parents were created
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    _no_training(monkeypatch)
    assert main([*TINY, "--out", str(out)]) == 2
    assert "Read-only file system" in _one_line(capsys)
    assert list(parent.iterdir()) == []  # the folders this call created are removed again


def test_reproduce_full_disk_before_training_is_one_line(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    _refuse_probe(monkeypatch, out, errno.ENOSPC, "No space left on device")
    _no_training(monkeypatch)
    assert main([*TINY, "--out", str(out)]) == 2
    err = _one_line(capsys)
    assert f"{out}: cannot write in the output folder (No space left on device)" in err
    assert "[ENOSPC]" in err
    assert list(out.iterdir()) == []


def test_reproduce_full_disk_during_the_run_loses_nothing(tmp_path, capsys, monkeypatch):
    """Issue 16: a full disk mid-run printed a 53-line traceback. It is one line naming the
    file and the cause, exit 2; the results file keeps every run written before, no temporary
    is left, and the same command resumes."""
    out = tmp_path / "out"
    real = _results.atomic_write_text
    calls = []

    def full_disk(path, text):  # the second write runs out of space half-way
        calls.append(path)
        if len(calls) < 2:
            return real(path, text)
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text[: len(text) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")  # as write() raises it

    monkeypatch.setattr(_results, "atomic_write_text", full_disk)
    assert main([*TINY, "--out", str(out)]) == 2
    err = _one_line(capsys)
    assert f"{out / 'results.csv'}: No space left on device [ENOSPC]" in err
    assert "every file already written is intact" in err
    assert len(calls) == 2
    kept = P.read_results(out / "results.csv", damaged="raise")
    assert [r["regularizer"] for r in kept] == ["none"]
    assert sorted(p.name for p in out.iterdir()) == [_outdir.LOCK_NAME, "results.csv"]
    monkeypatch.setattr(_results, "atomic_write_text", real)
    assert main([*TINY, "--out", str(out)]) == 0
    assert "1 run(s) trained, 1 already finished" in capsys.readouterr().out
    assert P.read_results(out / "results.csv", damaged="raise")[0] == kept[0]


def test_environment_message_names_the_file_an_atomic_write_replaces(tmp_path):
    tmp = tmp_path / ".results.csv.ab_12xyz.csv"  # the name topo_neurons.io.atomic_path gives
    line = _outdir.environment_message(OSError(errno.ENOSPC, "No space left", str(tmp)))
    assert line.startswith(f"{tmp_path / 'results.csv'}: No space left [ENOSPC]; every file")
    missing = FileNotFoundError("cifar10: data directory /x does not exist")
    assert _outdir.environment_message(missing) == "cifar10: data directory /x does not exist"
