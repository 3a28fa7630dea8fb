"""Regression tests of the review of the device path (torch MST backend, tree cache, Dask)."""

from __future__ import annotations

import torch

from topo_neurons.regularizers import TopologicalRedundancy


def test_changed_edges_is_none_after_a_selection_change_on_the_torch_backend():
    # backend="torch" compares the selection's indices on the device (the key holds only the
    # sizes); a change of neurons must still leave changed_edges None, as on the host backends.
    torch.manual_seed(0)
    A = torch.randn(50, 10, dtype=torch.float64)
    for backend in ("native", "torch"):
        loss = TopologicalRedundancy(backend=backend, refresh_every=3).train()
        loss(A, selection={"l": list(range(10))})
        loss._age = loss.refresh_every  # the next call searches again, same neurons
        loss(A, selection={"l": list(range(10))})
        assert loss.changed_edges == 0, backend
        loss(A, selection={"l": [0, 1, 2, 3, 4, 5, 6, 7, 8, 10]})  # other neurons, same size
        assert loss._age == 1, backend  # a new tree was searched
        assert loss.changed_edges is None, backend


def test_cluster_lost_message_says_the_scheduler_did_not_answer():
    # workers=None means the scheduler did not answer: the message must not read "workers
    # connected now: None".
    from types import SimpleNamespace

    from topo_neurons.persistence._schedule import _lost

    def no_answer():
        raise OSError("gone")

    client = SimpleNamespace(
        scheduler=SimpleNamespace(address="tcp://h:1"), scheduler_info=no_answer
    )
    plan = [("z", None, (0,)), ("tree-0", print, ("z",))]
    err = _lost(client, plan, set(), RuntimeError("lost"))
    assert err.workers is None
    assert "None" not in str(err) and "the scheduler did not answer" in str(err)


def test_cluster_lost_error_survives_pickling():
    # A process pool (the experiments' sweep) pickles a worker's exception: the keyword-only
    # constructor made unpickling raise TypeError instead of the error itself.
    import pickle

    from topo_neurons.persistence import ClusterLostError

    err = ClusterLostError("lost", address="tcp://h:1", done=3, total=7, workers=0)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is ClusterLostError and str(back) == "lost"
    assert (back.address, back.done, back.total, back.workers) == ("tcp://h:1", 3, 7, 0)


def test_torch_backend_reads_a_read_only_matrix_without_a_warning():
    # A read-only array (np.load(..., mmap_mode="r"), a barcode's arrays) is valid input; the
    # torch backend wrapped it with torch.from_numpy, which warns on non-writable memory. In a
    # fresh interpreter: torch gives that warning once per process.
    import subprocess
    import sys

    code = (
        "import numpy as np, topo_neurons as tn\n"
        "D = np.array([[0, .3, .9], [.3, 0, .5], [.9, .5, 0]]); D.setflags(write=False)\n"
        "bc = tn.zero_persistence(D, backend='torch')\n"
        "ref = tn.zero_persistence(D, backend='native')\n"
        "assert (bc.edges == ref.edges).all() and (bc.deaths == ref.deaths).all()\n"
    )
    run = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
