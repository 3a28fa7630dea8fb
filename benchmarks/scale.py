"""Benchmark: correlation + exact native barcode of 32 768 neurons, end to end.

From activations of ``--neurons`` (default 32 768) neurons × ``--examples`` (256) examples,
float32 (8 shared factors plus noise, seeded; generating them is not timed), one subprocess
times ``tn.correlation_dissimilarity(A)`` followed by ``tn.zero_persistence(D)`` (native, input
validation included). Another subprocess, in the same run, times giotto-ph alone
(``ripser_parallel(D, maxdim=0, metric="precomputed", return_generators=True, n_threads=-1)``)
on the ``--giotto-neurons`` (8192) matrix, whose correlation is computed beforehand and not
timed; the same subprocess also times the native end to end at that size.

Peak memory: each measurement runs in its own subprocess; the parent reads
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` after each one (the largest peak RSS among
the children waited for so far), and each child also reports its own ``ru_maxrss``. The giotto-ph
child runs first, so a larger value after the native child is the native child's own peak.

Usage::

    python benchmarks/scale.py                                   # 32768 vs giotto-ph at 8192
    python benchmarks/scale.py --neurons 4096 --giotto-neurons 2048   # quick check
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np


def _mib(ru_maxrss: int) -> float:
    """``ru_maxrss`` in MiB (KiB on Linux, bytes on macOS)."""
    return ru_maxrss / 2**20 if sys.platform == "darwin" else ru_maxrss / 2**10


def activations(n: int, m: int, seed: int = 0) -> np.ndarray:
    """float32 activations, ``m`` examples × ``n`` neurons: 8 shared factors plus noise."""
    rng = np.random.default_rng(seed)
    factors = rng.standard_normal((m, 8), dtype=np.float32)
    loadings = rng.standard_normal((8, n), dtype=np.float32)
    return factors @ loadings + rng.standard_normal((m, n), dtype=np.float32)


def child_native(n: int, m: int) -> dict:
    import topo_neurons as tn

    tn.zero_persistence(tn.correlation_dissimilarity(activations(16, m)))  # JIT warm-up
    A = activations(n, m)
    t0 = time.perf_counter()
    D = tn.correlation_dissimilarity(A)
    t1 = time.perf_counter()
    bc = tn.zero_persistence(D)
    t2 = time.perf_counter()
    assert len(bc) == n - 1 and D.dtype == np.float32
    return {
        "correlation_s": t1 - t0,
        "persistence_s": t2 - t1,
        "total_s": t2 - t0,
        "bars": len(bc),
        "total_persistence": bc.total_persistence,
        "self_maxrss_mib": _mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
    }


def child_giotto(n: int, m: int) -> dict:
    from gph import ripser_parallel

    import topo_neurons as tn

    D = tn.correlation_dissimilarity(activations(n, m))  # not timed
    t0 = time.perf_counter()
    res = ripser_parallel(D, maxdim=0, metric="precomputed", return_generators=True, n_threads=-1)
    t1 = time.perf_counter()
    finite = np.isfinite(res["dgms"][0][:, 1])
    native = tn.zero_persistence(D)
    if not np.array_equal(np.sort(res["dgms"][0][finite, 1]), native.deaths[native.deaths > 0]):
        raise AssertionError("giotto-ph and native deaths differ")
    del D, res
    native_e2e = child_native(n, m)
    return {
        "giotto_s": t1 - t0,
        "native_total_s": native_e2e["total_s"],
        "self_maxrss_mib": _mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
    }


def run_child(kind: str, n: int, m: int) -> tuple[dict, float]:
    cmd = [sys.executable, __file__, "--_child", kind, str(n), str(m)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} child failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    children = _mib(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return json.loads(out.stdout.strip().splitlines()[-1]), children


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--neurons", type=int, default=32768)
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--giotto-neurons", type=int, default=8192)
    parser.add_argument("--_child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        kind, n, m = args._child[0], int(args._child[1]), int(args._child[2])
        result = child_native(n, m) if kind == "native" else child_giotto(n, m)
        print(json.dumps(result))
        return 0

    import gph

    import topo_neurons as tn

    n, m, ng = args.neurons, args.examples, args.giotto_neurons
    print(
        f"# scale benchmark, {datetime.date.today().isoformat()}, {platform.machine()} "
        f"{os.cpu_count()} cores, topo_neurons {tn.__version__}, giotto-ph {gph.__version__}; "
        f"activations float32, {m} examples"
    )
    giotto, rss_after_giotto = run_child("giotto", ng, m)
    native, rss_after_native = run_child("native", n, m)
    native_peak = rss_after_native if rss_after_native > rss_after_giotto else None
    shown_peak = native_peak if native_peak is not None else native["self_maxrss_mib"]
    print()
    print("| measurement | time | peak RSS |")
    print("|---|---:|---:|")
    print(
        f"| giotto-ph, {ng} neurons (persistence only) | {giotto['giotto_s']:.2f} s "
        f"| {rss_after_giotto / 1024:.2f} GiB (child, incl. its native run) |"
    )
    print(
        f"| native, {ng} neurons (correlation + barcode) | {giotto['native_total_s']:.2f} s | — |"
    )
    print(
        f"| native, {n} neurons: correlation | {native['correlation_s']:.2f} s | |\n"
        f"| native, {n} neurons: barcode | {native['persistence_s']:.2f} s | |\n"
        f"| **native, {n} neurons, end to end** | **{native['total_s']:.2f} s** "
        f"| **{shown_peak / 1024:.2f} GiB** |"
    )
    print()
    ratio = giotto["giotto_s"] / native["total_s"]
    print(
        f"end to end at {n} neurons is {ratio:.1f}× faster than giotto-ph at {ng} "
        f"(goal: > 1×); peak RSS {shown_peak / 1024:.2f} GiB (goal: < 8 GB); "
        f"D alone is {n * n * 4 / 2**30:.2f} GiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
