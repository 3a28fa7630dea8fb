"""Regression tests for defects found in review of the command line."""

import numpy as np

import topo_neurons as tn
from topo_neurons.cli import main


def test_compare_files_of_one_name_ask_for_labels_not_distinct_labels(tmp_path, capsys):
    rng = np.random.default_rng(0)
    paths = []
    for k in range(2):
        (tmp_path / f"seed{k}").mkdir()
        path = tmp_path / f"seed{k}" / "none.npz"
        tn.zero_persistence(tn.correlation_dissimilarity(rng.standard_normal((40, 6)))).save(path)
        paths.append(str(path))
    code = main(["compare", *paths, "--out", str(tmp_path / "figs")])
    err = capsys.readouterr().err
    assert code != 0
    assert "give --labels" in err and "--labels must be distinct" not in err
    code = main(["compare", *paths, "--labels", "a", "b", "--out", str(tmp_path / "figs")])
    assert code == 0, capsys.readouterr().err
