"""Benchmark: exact barcodes of 32 768 … 131 072 neurons from activations, side by side.

From float32 activations of ``n`` neurons × ``--examples`` (256) examples (8 shared factors
plus noise, seeded; generating them is not timed), each measurement runs in its own fresh
subprocess, so its ``ru_maxrss`` is that measurement's own peak RSS:

* ``giotto``  giotto-ph ``ripser_parallel(D, maxdim=0, metric="precomputed",
  return_generators=True, n_threads=-1)`` on the ``--giotto-neurons`` (8192) matrix, whose
  correlation is computed beforehand (not timed): persistence only;
* ``dense``   ``tn.zero_persistence(tn.correlation_dissimilarity(A))``, end to end (the
  ``n × n`` matrix; at 8192 and at ``--dense-max``, default 32 768);
* ``tiled``   ``tn.correlation_persistence(A, block_size=…)``, end to end on local threads (no
  ``n × n`` matrix), at every ``--neurons`` size;
* ``cluster`` the same call with ``scheduler=`` a ``distributed.Client`` of a ``LocalCluster``
  (2 worker processes × 1 thread, started before the clock); the peak RSS is the client
  process's plus each worker's own peak.

The tiled deaths at the dense sizes are compared with the dense deaths bit for bit (both run the
same GEMM calls on this machine; see docs/guarantees.md for other machines). The per-tile
cost (one block pair of ``--block`` neurons, one thread, median of 5) gives the estimate of
1 M neurons on 64 workers printed at the end.

Usage::

    python benchmarks/scale.py                        # the full table (a few minutes)
    python benchmarks/scale.py --neurons 8192 16384 --dense-max 8192 --giotto-neurons 4096
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _mib(ru_maxrss: int) -> float:
    """``ru_maxrss`` in MiB (KiB on Linux, bytes on macOS)."""
    return ru_maxrss / 2**20 if sys.platform == "darwin" else ru_maxrss / 2**10


def _self_peak_mib() -> float:
    return _mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def activations(n: int, m: int, seed: int = 0) -> np.ndarray:
    """float32 activations, ``m`` examples × ``n`` neurons: 8 shared factors plus noise."""
    rng = np.random.default_rng(seed)
    factors = rng.standard_normal((m, 8), dtype=np.float32)
    loadings = rng.standard_normal((8, n), dtype=np.float32)
    return factors @ loadings + rng.standard_normal((m, n), dtype=np.float32)


# --------------------------------------------------------------------------- children
def child(kind: str, n: int, m: int, block: int, out: str) -> dict:
    import topo_neurons as tn

    warm = activations(600, m)
    tn.zero_persistence(tn.correlation_dissimilarity(warm))  # JIT warm-up (cached on disk)
    tn.correlation_persistence(warm, block_size=256)
    A = activations(n, m)
    result: dict = {}
    if kind == "giotto":
        from gph import ripser_parallel

        D = tn.correlation_dissimilarity(A)  # not timed
        t0 = time.perf_counter()
        res = ripser_parallel(
            D, maxdim=0, metric="precomputed", return_generators=True, n_threads=-1
        )
        result["time_s"] = time.perf_counter() - t0
        finite = np.isfinite(res["dgms"][0][:, 1])
        native = tn.zero_persistence(D)
        if not np.array_equal(np.sort(res["dgms"][0][finite, 1]), native.deaths[native.deaths > 0]):
            raise AssertionError("giotto-ph and native deaths differ")
        deaths = native.deaths
    elif kind == "dense":
        t0 = time.perf_counter()
        bc = tn.zero_persistence(tn.correlation_dissimilarity(A))
        result["time_s"] = time.perf_counter() - t0
        deaths = bc.deaths
    elif kind == "tiled":
        t0 = time.perf_counter()
        bc = tn.correlation_persistence(A, block_size=block)
        result["time_s"] = time.perf_counter() - t0
        deaths = bc.deaths
    elif kind == "cluster":
        from distributed import Client, LocalCluster

        with (
            LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            client.run(lambda: tn.correlation_persistence(warm, block_size=256))  # warm-up
            t0 = time.perf_counter()
            bc = tn.correlation_persistence(A, block_size=block, scheduler=client)
            result["time_s"] = time.perf_counter() - t0
            peaks = client.run(lambda: _mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
            result["workers_peak_mib"] = sorted(peaks.values())
        deaths = bc.deaths
    elif kind == "tile":
        from topo_neurons.correlation import _prepare, gemm_panels
        from topo_neurons.persistence import _tiled

        with torch_threads(1):
            Z = _prepare(activations(2 * block, m), "uncorrelated")[0]
            P = gemm_panels(Z).numpy()
            c = np.zeros(block, bool)
            per = block // 256
            PI, PJ = P[:per], P[per:]
            ti = _tiled.diag_task(PI, c, 0, 1)
            tj = _tiled.diag_task(PJ, c, block, 1)
            pair, diag = [], []
            for _ in range(5):
                t0 = time.perf_counter()
                _tiled.pair_task(PI, PJ, c, c, 0, block, 1, ti, tj)
                pair.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                _tiled.diag_task(PI, c, 0, 1)
                diag.append(time.perf_counter() - t0)
        return {"pair_s": statistics.median(pair), "diag_s": statistics.median(diag)}
    else:
        raise ValueError(kind)
    np.save(out, deaths)
    result["bars"] = int(deaths.size)
    result["self_peak_mib"] = _self_peak_mib()
    return result


class torch_threads:
    """Context manager: torch (and MKL) on ``k`` threads."""

    def __init__(self, k: int) -> None:
        self.k = k

    def __enter__(self) -> None:
        import torch

        self.saved = torch.get_num_threads()
        torch.set_num_threads(self.k)

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.set_num_threads(self.saved)


def run_child(kind: str, n: int, m: int, block: int, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--_child", kind, str(n), str(m), str(block), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} {n} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--neurons", type=int, nargs="+", default=[32768, 65536, 131072])
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--giotto-neurons", type=int, default=8192)
    parser.add_argument("--dense-max", type=int, default=32768)
    parser.add_argument("--cluster-neurons", type=int, default=32768)
    parser.add_argument("--block", type=int, default=1024)
    parser.add_argument("--_child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        kind, n, m, block, out = args._child
        print(json.dumps(child(kind, int(n), int(m), int(block), out)))
        return 0

    import gph

    import topo_neurons as tn

    m, ng, k = args.examples, args.giotto_neurons, args.block
    start = datetime.datetime.now(datetime.timezone.utc)
    load = os.getloadavg()
    print(
        f"# scale benchmark, {start:%Y-%m-%d %H:%M} UTC, load average {load[0]:.2f} "
        f"{load[1]:.2f} {load[2]:.2f}, {platform.machine()} {os.cpu_count()} cores, "
        f"topo_neurons {tn.__version__}, giotto-ph {gph.__version__}; float32 activations, "
        f"{m} examples, block {k}"
    )
    rows: list[tuple[str, dict]] = []
    tmp = Path(tempfile.mkdtemp(prefix="tn-scale-"))
    giotto = run_child("giotto", ng, m, k, tmp / "giotto.npy")
    rows.append((f"giotto-ph, {ng} neurons (persistence only)", giotto))
    dense_sizes = sorted({ng, *[n for n in args.neurons if n <= args.dense_max]})
    dense = {}
    for n in dense_sizes:
        dense[n] = run_child("dense", n, m, k, tmp / f"dense-{n}.npy")
        rows.append((f"dense native, {n} neurons (correlation + barcode)", dense[n]))
    tiled = {}
    for n in args.neurons:
        tiled[n] = run_child("tiled", n, m, k, tmp / f"tiled-{n}.npy")
        same = ""
        if n in dense:
            equal = np.array_equal(np.load(tmp / f"tiled-{n}.npy"), np.load(tmp / f"dense-{n}.npy"))
            same = ", deaths bitwise equal to dense" if equal else ", DEATHS DIFFER FROM DENSE"
        rows.append((f"**tiled, {n} neurons, local threads**{same}", tiled[n]))
    cluster = None
    if args.cluster_neurons:
        nc = args.cluster_neurons
        cluster = run_child("cluster", nc, m, k, tmp / f"cluster-{nc}.npy")
        cluster["self_peak_mib"] += sum(cluster["workers_peak_mib"])
        same = ""
        if nc in tiled:
            got = np.load(tmp / f"cluster-{nc}.npy")
            equal = np.array_equal(got, np.load(tmp / f"tiled-{nc}.npy"))
            same = ", deaths equal to local" if equal else ", DEATHS DIFFER FROM LOCAL"
        rows.append(
            (f"tiled, {nc} neurons, Dask LocalCluster (2 processes × 1 thread){same}", cluster)
        )
    tile = run_child("tile", k, m, k, tmp / "tile.npy")

    print()
    print("| measurement | time | peak RSS | time ÷ giotto-ph at", ng, "|")
    print("|---|---:|---:|---:|")
    for name, r in rows:
        print(
            f"| {name} | {r['time_s']:.2f} s | {r['self_peak_mib'] / 1024:.2f} GiB "
            f"| {r['time_s'] / giotto['time_s']:.2f} |"
        )
    print()
    print(
        f"one block pair ({k} + {k} neurons, {m} examples, one thread): {tile['pair_s'] * 1e3:.0f}"
        f" ms; one diagonal block: {tile['diag_s'] * 1e3:.0f} ms"
    )
    goals = []
    if 32768 in tiled:
        r = tiled[32768]
        goals.append(
            f"32768: {r['time_s']:.2f} s vs giotto-ph {giotto['time_s']:.2f} s at {ng} "
            f"(goal < 1×: {r['time_s'] / giotto['time_s']:.2f}×), "
            f"peak {r['self_peak_mib'] / 1024:.2f} GiB (goal < 1.5 GiB)"
        )
    if 131072 in tiled:
        r = tiled[131072]
        goals.append(
            f"131072: {r['time_s']:.1f} s (goal < 300 s), peak {r['self_peak_mib'] / 1024:.2f} GiB "
            "(goal < 3 GiB)"
        )
    for g in goals:
        print("goal:", g)
    # Paper estimate: 1 M neurons, blocks of k, 64 single-thread workers.
    n1 = 1 << 20
    nb = -(-n1 // k)
    pairs = nb * (nb - 1) // 2
    work = pairs * tile["pair_s"] + nb * tile["diag_s"]
    print(
        f"estimate, {n1} neurons: {nb} blocks, {pairs} block pairs × {tile['pair_s'] * 1e3:.0f} ms "
        f"= {work / 3600:.1f} core-hours; on 64 workers ≈ {work / 64 / 60:.0f} min of tile work "
        f"(+ shipping Z: {n1 * m * 4 / 2**30:.1f} GiB in {nb} blocks)"
    )
    end = datetime.datetime.now(datetime.timezone.utc)
    load = os.getloadavg()
    print(f"# finished {end:%H:%M} UTC, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
