"""Benchmark: exact barcodes of 32 768 … 1 048 576 neurons from activations, beside the GEMM floor.

From float32 activations of ``n`` neurons × ``--examples`` (256) examples (8 shared factors
plus noise, seeded, generated in column chunks so that only ``A`` itself is held; generating
them is not timed), each measurement runs in its own fresh subprocess, so its ``ru_maxrss`` is
that measurement's own peak RSS (the interpreter, torch and ``A`` included):

* ``floor``   the tiled engine's GEMMs and nothing else: ``Z`` in panels of 256 neurons (not
  timed), then every ``256 × m × 256`` panel product ``P[a]ᵀ P[b]`` (``a ≤ b``) that the engine
  multiplies, grouped by block pair as the engine's tasks are, ``torch.mm`` on one thread per
  task (``torch.set_num_threads(1)`` in each pool thread: OpenMP's count is per thread), two
  tasks at a time. Measured before and after the engine (two children) at every
  ``--neurons`` size; the ratio is the engine's time over their mean;
* ``tiled``   ``tn.correlation_persistence(A, block_size=…)``, end to end on local threads
  (normalisation, panels, tiles, merges; no ``n × n`` matrix), at every ``--neurons`` size;
* ``giotto``  giotto-ph ``ripser_parallel(D, maxdim=0, metric="precomputed",
  return_generators=True, n_threads=-1)`` on the ``--giotto-neurons`` (8192) matrix, whose
  correlation is computed beforehand (not timed): persistence only (0: skipped);
* ``dense``   ``tn.zero_persistence(tn.correlation_dissimilarity(A))``, end to end (the
  ``n × n`` matrix; at 8192 and at ``--dense-max``; 0: skipped);
* ``cluster`` the same call with ``scheduler=`` a ``distributed.Client`` of a ``LocalCluster``
  (2 worker processes × 1 thread, started before the clock) at ``--cluster-neurons`` (0:
  skipped); the peak RSS is the client process's plus each worker's own peak.

The tiled deaths at the dense sizes are compared with the dense deaths bit for bit (both run the
same GEMM calls on this machine; see docs/guarantees.md for other machines). ``--profile``
times the parts of one block pair of ``--block`` neurons on one thread (median of 7): the 16
GEMMs alone, the earlier pair task (map and transposed copy of the cross tile, dense pair
Prim) and today's (GEMM panels streamed through the anchor filter, Kruskal on the candidates),
a diagonal block and one level-0 merge: the breakdown of docs/benchmarks.md.

Usage::

    python benchmarks/scale.py                        # floor and engine, 32 768 and 131 072
    python benchmarks/scale.py --profile              # the per-pair breakdown only
    python benchmarks/scale.py --neurons 1048576 --no-floor --progress   # a million neurons
    python benchmarks/scale.py --neurons 8192 16384 --dense-max 8192 --giotto-neurons 4096 \
        --cluster-neurons 8192                        # quick check of every row
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


def activations(n: int, m: int, seed: int = 0, chunk: int = 65536) -> np.ndarray:
    """float32 activations, ``m`` examples × ``n`` neurons: 8 shared factors plus noise.

    Made ``chunk`` columns at a time into one array (no full-size temporaries).
    """
    rng = np.random.default_rng(seed)
    factors = rng.standard_normal((m, 8), dtype=np.float32)
    A = np.empty((m, n), np.float32)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        np.matmul(factors, rng.standard_normal((8, e - s), dtype=np.float32), out=A[:, s:e])
        A[:, s:e] += rng.standard_normal((m, e - s), dtype=np.float32)
    return A


def floor_seconds(A: np.ndarray, block: int, threads: int = 2) -> float:
    """Seconds of the tiled engine's GEMMs alone (see the module docstring)."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from topo_neurons.correlation import GEMM_TILE, _prepare, gemm_panels

    with torch.no_grad():
        P = gemm_panels(_prepare(A, "uncorrelated")[0])
    per = block // GEMM_TILE
    nb = P.shape[0]
    blocks = [(s, min(nb, s + per)) for s in range(0, nb, per)]
    tasks = [(i, j) for i in range(len(blocks)) for j in range(i, len(blocks))]

    def task(ij: tuple[int, int]) -> None:
        (a0, a1), (b0, b1) = blocks[ij[0]], blocks[ij[1]]
        tmp = torch.empty((GEMM_TILE, GEMM_TILE), dtype=P.dtype)
        for a in range(a0, a1):
            for b in range(max(a, b0) if ij[0] == ij[1] else b0, b1):
                torch.mm(P[a].T, P[b], out=tmp)

    # torch.set_num_threads(1) in each pool thread too: OpenMP's count is per thread, and a
    # fresh thread would otherwise run MKL on every core (oversubscribed, two tasks at a time).
    pool = ThreadPoolExecutor(threads, initializer=torch.set_num_threads, initargs=(1,))
    with torch_threads(1), torch.no_grad(), pool:
        t0 = time.perf_counter()
        list(pool.map(task, tasks))
        return time.perf_counter() - t0


# --------------------------------------------------------------------------- children
def child(kind: str, n: int, m: int, block: int, out: str, progress: bool = False) -> dict:
    import topo_neurons as tn

    if kind == "profile":
        return profile(m, block)
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
    elif kind == "floor":
        result["time_s"] = floor_seconds(A, block)
        result["self_peak_mib"] = _self_peak_mib()
        return result
    elif kind == "tiled":
        t0 = time.perf_counter()
        bc = tn.correlation_persistence(A, block_size=block, progress=progress)
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


def profile(m: int, block: int) -> dict:
    """Milliseconds of the parts of one block pair (one thread, median of 7)."""
    import torch

    from topo_neurons.correlation import GEMM_TILE, _prepare, gemm_panels
    from topo_neurons.persistence import _tiled, _tiled_filter
    from topo_neurons.persistence._tiled_kernels import pair_tree

    def ms(f: object) -> float:
        f()
        times = []
        for _ in range(7):
            t0 = time.perf_counter()
            f()
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1e3

    with torch_threads(1), torch.no_grad():
        per = block // GEMM_TILE
        pairs = []
        for seed in range(8):  # 8 independent pairs: the inputs of one level-0 merge
            Z = _prepare(activations(2 * block, m, seed), "uncorrelated")[0]
            P = gemm_panels(Z).numpy()
            c = np.zeros(block, bool)
            ti = _tiled.diag_task(P[:per], c, 0, 1)
            tj = _tiled.diag_task(P[per:], c, block, 1)
            pairs.append((P[:per], P[per:], c, ti, tj))
        PI, PJ, c, ti, tj = pairs[0]
        tI, tJ = torch.from_numpy(PI), torch.from_numpy(PJ)
        tmp = np.empty((GEMM_TILE, GEMM_TILE), np.float32)
        tt = torch.from_numpy(tmp)
        X = np.empty((block, block), np.float32)
        XT = np.empty((block, block), np.float32)

        def gemm() -> None:
            for a in range(per):
                for b in range(per):
                    torch.mm(tI[a].T, tJ[b], out=tt)

        def pair(t: int) -> tuple:
            PI, PJ, c, ti, tj = pairs[t]
            off = 2 * block * t
            a, b, w = _tiled.pair_task(PI, PJ, c, c, 0, block, 1, ti, tj)
            return a + off, b + off, w

        outs = [pair(t) for t in range(8)]
        cap = _tiled._CANDIDATES_PER_NEURON * 2 * block
        args = (PI, PJ, c, c, 0, block, 1, ti, tj, tmp, cap)
        kept = _tiled_filter.filtered_pair_edges(*args)[0].size
        return {
            "gemm": ms(gemm),
            "old_tiles": ms(lambda: _tiled._tiles(PI, PJ, X, XT, 1)),
            "old_prim": ms(lambda: pair_tree(X, XT, block, block, 0, block, ti, tj)),
            "new_map": ms(lambda: _tiled_filter.candidates(*args)),
            "new_pair": ms(lambda: _tiled_filter.filtered_pair_edges(*args)),
            "diag": ms(lambda: _tiled.diag_task(PI, c, 0, 1)),
            "merge": ms(lambda: _tiled.merge_task(16 * block, *outs)),
            "cross_edges": int(kept),
            "merge_edges": int(sum(o[0].size for o in outs)),
        }


def run_child(kind: str, n: int, m: int, block: int, out: Path, progress: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--_child", kind, str(n), str(m), str(block), str(out)]
    if progress:  # the tqdm bar (with its ETA) goes to this terminal
        cmd.append("--_progress")
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        proc.stderr = ""
    else:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} {n} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- main
def print_profile(p: dict, m: int, k: int) -> None:
    g = p["gemm"]
    print(f"\none block pair ({k} + {k} neurons, {m} examples, float32, one thread, median of 7):")
    print("| part | ms | ÷ the 16 GEMMs |")
    print("|---|---:|---:|")
    rows = [
        ("16 GEMMs of 256 × m × 256 (the floor of a pair)", g),
        ("earlier pair task: GEMMs + map + transposed copy into X, Xᵀ", p["old_tiles"]),
        ("earlier pair task: dense pair Prim on X, Xᵀ", p["old_prim"]),
        ("earlier pair task, whole", p["old_tiles"] + p["old_prim"]),
        ("today: GEMMs + map and anchor filter of each panel", p["new_map"]),
        (f"today: whole filtered pair task ({p['cross_edges']} cross edges)", p["new_pair"]),
        ("diagonal block (10 GEMMs + dense block Prim)", p["diag"]),
        (f"one level-0 merge (8 pair outputs, {p['merge_edges']} edges)", p["merge"]),
    ]
    for name, t in rows:
        print(f"| {name} | {t:.2f} | {t / g:.2f}× |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--neurons", type=int, nargs="+", default=[32768, 131072])
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--block", type=int, default=1024)
    parser.add_argument("--no-floor", action="store_true", help="skip the GEMM floor")
    parser.add_argument("--progress", action="store_true", help="the engine's tqdm bar")
    parser.add_argument("--profile", action="store_true", help="only the per-pair breakdown")
    parser.add_argument("--giotto-neurons", type=int, default=0)
    parser.add_argument("--dense-max", type=int, default=0)
    parser.add_argument("--cluster-neurons", type=int, default=0)
    parser.add_argument("--_child", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--_progress", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        kind, n, m, block, out = args._child
        print(json.dumps(child(kind, int(n), int(m), int(block), out, args._progress)))
        return 0

    import topo_neurons as tn

    m, ng, k = args.examples, args.giotto_neurons, args.block
    start = datetime.datetime.now(datetime.timezone.utc)
    load = os.getloadavg()
    cpu = platform.processor() or platform.machine()
    with open("/proc/cpuinfo") as fh:
        names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
    cpu = names[0] if names else cpu
    print(
        f"# scale benchmark, {start:%Y-%m-%d %H:%M} UTC, load average {load[0]:.2f} "
        f"{load[1]:.2f} {load[2]:.2f}, {cpu}, {os.cpu_count()} cores, "
        f"topo_neurons {tn.__version__}; float32 activations, {m} examples, block {k}",
        flush=True,
    )
    tmp = Path(tempfile.mkdtemp(prefix="tn-scale-"))
    if args.profile:
        print_profile(run_child("profile", 0, m, k, tmp / "p.npy"), m, k)
        return 0
    rows: list[tuple[str, dict]] = []
    giotto = None
    if ng:
        giotto = run_child("giotto", ng, m, k, tmp / "giotto.npy")
        rows.append((f"giotto-ph, {ng} neurons (persistence only)", giotto))
    dense_sizes = sorted({*([ng] if ng else []), *[n for n in args.neurons if n <= args.dense_max]})
    dense = {}
    for n in dense_sizes:
        dense[n] = run_child("dense", n, m, k, tmp / f"dense-{n}.npy")
        rows.append((f"dense native, {n} neurons (correlation + barcode)", dense[n]))
    ratios = []
    for n in args.neurons:
        floors = [] if args.no_floor else [run_child("floor", n, m, k, tmp / "f.npy")]
        r = run_child("tiled", n, m, k, tmp / f"tiled-{n}.npy", progress=args.progress)
        if not args.no_floor:
            floors.append(run_child("floor", n, m, k, tmp / "f.npy"))
        same = ""
        if n in dense:
            equal = np.array_equal(np.load(tmp / f"tiled-{n}.npy"), np.load(tmp / f"dense-{n}.npy"))
            same = ", deaths bitwise equal to dense" if equal else ", DEATHS DIFFER FROM DENSE"
        rows.append((f"**tiled, {n} neurons, local threads**{same}", r))
        if floors:
            f = statistics.mean(x["time_s"] for x in floors)
            ratios.append((n, floors, r, r["time_s"] / f))
        print(f"# done {n} at {datetime.datetime.now(datetime.timezone.utc):%H:%M:%S}", flush=True)
    if args.cluster_neurons:
        nc = args.cluster_neurons
        cluster = run_child("cluster", nc, m, k, tmp / f"cluster-{nc}.npy")
        cluster["self_peak_mib"] += sum(cluster["workers_peak_mib"])
        same = ""
        if nc in args.neurons:
            got = np.load(tmp / f"cluster-{nc}.npy")
            equal = np.array_equal(got, np.load(tmp / f"tiled-{nc}.npy"))
            same = ", deaths equal to local" if equal else ", DEATHS DIFFER FROM LOCAL"
        rows.append(
            (f"tiled, {nc} neurons, Dask LocalCluster (2 processes × 1 thread){same}", cluster)
        )

    print()
    print("| measurement | time | peak RSS |" + (f" time ÷ giotto-ph at {ng} |" if giotto else ""))
    print("|---|---:|---:|" + ("---:|" if giotto else ""))
    for name, r in rows:
        cell = f" {r['time_s'] / giotto['time_s']:.2f} |" if giotto else ""
        print(f"| {name} | {r['time_s']:.2f} s | {r['self_peak_mib'] / 1024:.2f} GiB |{cell}")
    if ratios:
        print()
        print(
            "| n (× 256 examples, float32) | GEMM-only floor (before, after) "
            "| tiled engine | ratio |"
        )
        print("|---:|---:|---:|---:|")
        for n, floors, r, ratio in ratios:
            fs = ", ".join(f"{x['time_s']:.2f}" for x in floors)
            print(f"| {n} | {fs} s | {r['time_s']:.2f} s | **{ratio:.2f}×** |")
        for n, _, _, ratio in ratios:
            print(f"goal: {n}: engine ÷ floor {ratio:.2f}× (goal ≤ 1.5×)")
    if 1 << 20 in args.neurons:
        r = dict(rows)[f"**tiled, {1 << 20} neurons, local threads**"]
        print(
            f"goal: 1048576: {r['time_s'] / 60:.1f} min (goal < 30 min), peak RSS "
            f"{r['self_peak_mib'] / 1024:.2f} GiB (goal < 4 GiB)"
        )
    end = datetime.datetime.now(datetime.timezone.utc)
    load = os.getloadavg()
    print(f"# finished {end:%H:%M} UTC, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
