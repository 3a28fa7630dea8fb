"""Benchmark: 0-dim persistence backends side by side on the same correlation matrices.

For each size ``n`` the script builds one correlation dissimilarity matrix (``1 − |ρ|``, float32
by default) from random activations with some correlation structure (256 examples: a few shared
factors plus noise), then times, interleaved over ``--repeats`` rounds (median reported):

* ``native``  ``tn.zero_persistence(D, backend="native")``: the whole user-facing call, input
  validation included;
* ``giotto``  giotto-ph ``ripser_parallel(D, maxdim=0, metric="precomputed",
  return_generators=True, n_threads=-1)`` (all cores), the raw library call;
* ``gudhi``   GUDHI ``RipsComplex(distance_matrix=D)``, ``create_simplex_tree(1)``,
  ``compute_persistence()``, ``persistence_pairs()``, the raw library calls;
* ``scipy``   ``scipy.cluster.hierarchy.linkage(squareform(D, checks=False), "single")``
  (heights only), the fastest outside peer;
* ``floor``   ``D.min(axis=1)``: one pass over ``D``, what no exact method can beat.

Before timing, every method's deaths are checked against the native ones (exactly for GUDHI and
scipy, to float32 precision for giotto-ph on float64 input).

Peak memory is measured in a fresh subprocess per method that imports everything, loads ``D``
from a ``.npy`` file, warms up, and runs the method once: ``base`` is its resident set size just
before the method (interpreter, imports and ``D``), ``peak`` its high-water mark during the
method (Linux: the kernel's VmHWM, reset to the current RSS just before the call through
``/proc/self/clear_refs``; elsewhere ``ru_maxrss``). ``peak − base`` is what the method needed.

Usage::

    python benchmarks/persistence.py                       # n = 512 … 16384, giotto ≤ 8192
    python benchmarks/persistence.py --full                # giotto-ph also at 16384
    python benchmarks/persistence.py --sizes 512 1024 --repeats 3 --no-memory
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

METHODS = ("native", "giotto", "gudhi", "scipy", "floor")
DEFAULT_SIZES = (512, 1024, 2048, 4096, 8192, 16384)


# --------------------------------------------------------------------------- data
def correlation_matrix(n: int, m: int = 256, dtype: str = "float32", seed: int = 0) -> np.ndarray:
    """``1 − |ρ|`` of ``m`` examples of ``n`` neurons driven by 8 shared factors plus noise."""
    import topo_neurons as tn

    rng = np.random.default_rng(seed)
    factors = rng.standard_normal((m, 8)).astype(np.float32)
    loadings = rng.standard_normal((8, n)).astype(np.float32)
    A = factors @ loadings + rng.standard_normal((m, n), dtype=np.float32)
    return tn.correlation_dissimilarity(A.astype(dtype), kind="abs")


# --------------------------------------------------------------------------- methods
def run_method(name: str, D: np.ndarray) -> np.ndarray:
    """Run one method on ``D``; return its sorted deaths (the floor returns row minima)."""
    if name == "native":
        import topo_neurons as tn

        return tn.zero_persistence(D, backend="native").deaths
    if name == "giotto":
        from gph import ripser_parallel

        res = ripser_parallel(
            D, maxdim=0, metric="precomputed", return_generators=True, n_threads=-1
        )
        dgm = res["dgms"][0]
        return np.sort(dgm[np.isfinite(dgm[:, 1]), 1])
    if name == "gudhi":
        import gudhi

        st = gudhi.RipsComplex(distance_matrix=D).create_simplex_tree(max_dimension=1)
        st.compute_persistence(min_persistence=-1.0)
        pairs = st.persistence_pairs()
        return np.sort([st.filtration(death) for _, death in pairs if len(death) == 2])
    if name == "scipy":
        from scipy.cluster.hierarchy import linkage
        from scipy.spatial.distance import squareform

        return np.sort(linkage(squareform(D, checks=False), method="single")[:, 2])
    if name == "floor":
        return D.min(axis=1)
    raise ValueError(f"unknown method {name!r}; valid methods are {METHODS}")


def check_agreement(results: dict[str, np.ndarray], dtype: np.dtype) -> None:
    """Every method's deaths equal the native ones (giotto-ph: to float32 precision)."""
    ref = np.asarray(results["native"], dtype=np.float64)
    for name, deaths in results.items():
        if name in ("native", "floor"):
            continue
        got = np.asarray(deaths, dtype=np.float64)
        if got.shape != ref.shape:
            raise AssertionError(f"{name}: {got.shape[0]} deaths, native has {ref.shape[0]}")
        atol = 1e-6 if name == "giotto" and dtype == np.float64 else 0.0
        # giotto-ph's deaths come from its float32 copy of D; on float32 input they are exact.
        if not np.allclose(got, ref, rtol=0, atol=atol):
            worst = float(np.max(np.abs(got - ref)))
            raise AssertionError(f"{name} deaths differ from native by up to {worst:g}")


def methods_for(n: int, args: argparse.Namespace) -> list[str]:
    out = ["native", "scipy", "floor"]
    if n <= (args.giotto_max if not args.full else max(args.giotto_max, 16384)):
        out.insert(1, "giotto")
    if n <= args.gudhi_max:
        out.insert(2 if "giotto" in out else 1, "gudhi")
    return out


def time_interleaved(D: np.ndarray, names: list[str], repeats: int) -> dict[str, list[float]]:
    """Seconds per call, methods interleaved within each round."""
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            t0 = time.perf_counter()
            run_method(name, D)
            times[name].append(time.perf_counter() - t0)
    return times


# --------------------------------------------------------------------------- memory
def _maxrss_mb() -> float:
    """Peak RSS of this process in MiB (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def _status_mb(field: str) -> float | None:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in MiB; None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 2**10
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux ≥ 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def child_main(method: str, path: str) -> None:
    """Subprocess entry: load ``D``, warm up, reset the peak mark, run ``method`` once.

    On Linux the peak mark (VmHWM) is reset after the imports, the warm-up and loading ``D``,
    so ``peak − base`` is the method's own high-water mark; elsewhere ``ru_maxrss`` is used
    and an import-time peak can hide a smaller method peak.
    """
    import topo_neurons  # noqa: F401  (imported in every child, so the base is comparable)

    D = np.load(path)
    run_method(method, np.zeros((4, 4), dtype=D.dtype))  # JIT / import warm-up
    if _reset_peak() and _status_mb("VmHWM") is not None:
        base = _status_mb("VmRSS")
        run_method(method, D)
        peak, how = _status_mb("VmHWM"), "VmHWM"
    else:
        base = _maxrss_mb()
        run_method(method, D)
        peak, how = _maxrss_mb(), "ru_maxrss"
    print(json.dumps({"base_mb": base, "peak_mb": peak, "how": how}))


def measure_memory(method: str, path: Path) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--_child", method, str(path)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- report
def fmt_s(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x * 1e3:.1f} ms" if x < 1 else f"{x:.2f} s"


def fmt_ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None else f"{a / b:.1f}×"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (median reported)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--giotto-max", type=int, default=8192, help="largest n for giotto-ph")
    parser.add_argument("--gudhi-max", type=int, default=2048, help="largest n for GUDHI")
    parser.add_argument("--full", action="store_true", help="giotto-ph up to 16384 as well")
    parser.add_argument("--no-memory", action="store_true", help="skip the RSS subprocesses")
    parser.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        child_main(*args._child)
        return 0
    if args.repeats < 1:
        parser.error(f"--repeats must be ≥ 1; got {args.repeats}")

    import gph
    import gudhi
    import numba
    import scipy

    import topo_neurons as tn

    print(
        f"# persistence benchmark, {datetime.date.today().isoformat()}, "
        f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"topo_neurons {tn.__version__}, giotto-ph {gph.__version__}, GUDHI {gudhi.__version__}, "
        f"scipy {scipy.__version__}, numba {numba.__version__}"
    )
    print(
        f"# D = 1 − |ρ| of 256 examples ({args.dtype}); median of {args.repeats} interleaved "
        "rounds; memory = peak RSS of a fresh subprocess per method (VmHWM reset before the call), "
        "base = its RSS before the call (imports + D)"
    )
    run_method("native", correlation_matrix(16, dtype=args.dtype))  # compile / load the JIT

    rows = []
    for n in args.sizes:
        D = correlation_matrix(n, dtype=args.dtype)
        names = methods_for(n, args)
        results = {name: run_method(name, D) for name in names}  # also a warm-up round
        check_agreement(results, D.dtype)
        times = time_interleaved(D, names, args.repeats)
        med = {name: statistics.median(ts) for name, ts in times.items()}
        mem: dict[str, dict[str, float]] = {}
        if not args.no_memory:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "D.npy"
                np.save(path, D)
                del D, results
                for name in names:
                    if name != "floor":
                        mem[name] = measure_memory(name, path)
        rows.append((n, med, mem))
        print(f"# n = {n}: " + ", ".join(f"{k} {fmt_s(v)}" for k, v in med.items()), flush=True)

    print()
    print(
        "| n | native | giotto-ph | GUDHI | scipy single | floor `D.min(1)` "
        "| giotto/native | scipy/native | native/floor |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, med, _ in rows:
        g = med.get
        print(
            f"| {n} | {fmt_s(g('native'))} | {fmt_s(g('giotto'))} | {fmt_s(g('gudhi'))} "
            f"| {fmt_s(g('scipy'))} | {fmt_s(g('floor'))} "
            f"| {fmt_ratio(g('giotto'), g('native'))} | {fmt_ratio(g('scipy'), g('native'))} "
            f"| {fmt_ratio(g('native'), g('floor'))} |"
        )
    if not args.no_memory:
        print()
        print(
            "| n | D (MiB) | base RSS | native peak (+extra) | giotto-ph peak (+extra) "
            "| GUDHI peak (+extra) | scipy peak (+extra) |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|")
        itemsize = np.dtype(args.dtype).itemsize
        for n, _, mem in rows:
            cells = []
            for name in ("native", "giotto", "gudhi", "scipy"):
                if name in mem:
                    peak, base = mem[name]["peak_mb"], mem[name]["base_mb"]
                    cells.append(f"{peak:.0f} MiB (+{peak - base:.0f})")
                else:
                    cells.append("—")
            base = mem["native"]["base_mb"]
            print(
                f"| {n} | {n * n * itemsize / 2**20:.0f} | {base:.0f} MiB | "
                + " | ".join(cells)
                + " |"
            )
    for n, med, _ in rows:
        if n == 4096 and "giotto" in med:
            g, s, f, nat = med["giotto"], med["scipy"], med["floor"], med["native"]
            print()
            print(
                f"goals at n = 4096: native {g / nat:.1f}× faster than giotto-ph (goal ≥ 30×), "
                f"{s / nat:.1f}× faster than scipy single linkage (goal > 1×), "
                f"{nat / f:.1f}× one pass over D (goal ≤ 3×)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
