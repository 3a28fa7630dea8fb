"""The public atomic writers, ``topo_neurons.io``: a write replaces the file whole or not at all."""

from __future__ import annotations

import os
import stat

import pytest

from topo_neurons.io import atomic_path, atomic_write_text


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
