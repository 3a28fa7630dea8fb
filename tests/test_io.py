"""The public atomic writers, ``topo_neurons.io``: a write replaces the file whole or not at all."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from topo_neurons.io import atomic_path, atomic_write_text, open_npz


def test_atomic_write_text_writes_and_replaces(tmp_path):
    path = tmp_path / "sub" / "report.md"  # the folder is created
    assert atomic_write_text(path, "first ü\n") == path
    assert path.read_text(encoding="utf-8") == "first ü\n"
    atomic_write_text(path, "second\n")
    assert path.read_text(encoding="utf-8") == "second\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.md"]  # no temporaries


def test_an_interrupted_write_leaves_the_previous_file_and_no_partial_one(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("complete\n")
    with pytest.raises(KeyboardInterrupt), atomic_path(path) as tmp:
        assert tmp.parent == path.parent and tmp.suffix == ".csv" and tmp != path
        tmp.write_text("half a fi")
        raise KeyboardInterrupt
    assert path.read_text() == "complete\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]


def test_the_file_gets_the_permissions_of_a_plain_open(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        (tmp_path / "b.txt").write_text("x")
    finally:
        os.umask(umask)
    mode = stat.S_IMODE((tmp_path / "a.txt").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o644


def test_open_npz_reads_an_archive_and_names_what_a_damaged_or_npy_file_is_not(tmp_path):
    good = tmp_path / "a.npz"
    np.savez(good, x=np.arange(3))
    with open_npz(good, "a test file", "(a .npy file)") as f:
        np.testing.assert_array_equal(f["x"], np.arange(3))
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:20])
    with pytest.raises(ValueError, match=r"is not a test file: it cannot be read as \.npz"):
        open_npz(cut, "a test file", "(a .npy file)")
    single = tmp_path / "single.npy"
    np.save(single, np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"holds one array of shape \(2, 3\) \(a \.npy file\)"):
        open_npz(single, "a test file", "(a .npy file)")
