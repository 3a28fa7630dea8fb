"""Benchmark: topology where the tensors are — the torch backend on one GPU, in one run.

Three tables, each measured side by side in this one run on this one machine:

1. **Training steps** (median over interleaved rounds, ratio to the plain step): the paper's
   MLP (784-450-350-200-10, batch 256, 1010 neurons: the post-ReLU hidden outputs and the
   logits) and a wide token-mixing MLP stack (``--wide-blocks`` residual blocks
   ``d → 4d → d`` with GELU, ``--wide-tokens`` tokens as examples; the 4d hidden units of two
   blocks are the ``8d`` regularised neurons: 8192 at ``d = 1024``). Variants: plain; T1 exact,
   T1 ``refresh_every=20``, T2, all on the device (``backend="torch"``, what ``"auto"`` picks on
   a GPU); DeCov; and T1 exact / ``refresh_every=20`` with ``backend="native"``: today's host
   round trip (the ``n × n`` ranking matrix copied to the host, one-thread Prim). The refresh
   variants are timed as a cycle, ``(median search step + 19 · median cached step) / 20``.
   Activations are taken by plain forward hooks (``ActivationRecorder`` adds its own NaN/Inf
   check, which reads one value back per layer; its count is reported on its own line).
2. **Exact H0 from activations** (float32, 256 examples): ``correlation_persistence`` of
   131 072 and 1 048 576 neurons on the device (time, peak device memory), the CPU tiled
   engine at 131 072 on this machine's cores (deaths compared with the device's), giotto-ph at
   8192 (precomputed dense matrix). The 1 048 576 run is skipped, and says so, when the
   131 072 run's time × 64 (the ``n²`` work) exceeds ``--h0-budget`` seconds.
3. **Host synchronisations per regularised step**, counted on a GPU with
   ``torch.cuda.set_sync_debug_mode("warn")`` and captured warnings (expected 0).

``--smoke`` runs everything at toy sizes on any device (the CPU included; no sync count
there): the test suite runs it. ``--out DIR`` writes ``gpu.json`` and ``gpu.md`` there.

Usage::

    python benchmarks/gpu.py                 # on the GPU (under 8 minutes on one H100)
    python benchmarks/gpu.py --smoke         # seconds, any machine
    python benchmarks/gpu.py --cpu-compare 1024 4096   # native vs torch backend on the CPU
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

import topo_neurons as tn
from topo_neurons.experiments.models import make_model

#: The paper's neurons in its MLP: post-ReLU hidden outputs and the logits.
PAPER_LAYERS = ["net.relu1", "net.relu2", "net.relu3", "net.out"]


class WideMixer(nn.Module):
    """A stack of residual MLP blocks over tokens (an MLP-Mixer's channel MLPs)."""

    def __init__(self, d: int, blocks: int, classes: int = 10) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
            for _ in range(blocks)
        )
        self.head = nn.Linear(d, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (tokens, d)
        for blk in self.blocks:
            x = x + blk(x)
        return self.head(x)


def _hooks(model: nn.Module, names: list[str], store: list[torch.Tensor]) -> None:
    for name in names:
        mod = model.get_submodule(name)
        mod.register_forward_hook(lambda _m, _i, out: store.append(out.reshape(out.shape[0], -1)))


def make_losses() -> dict[str, Callable[[torch.Tensor], torch.Tensor] | None]:
    return {
        "plain": None,
        "T1 (device)": tn.TopologicalRedundancy(backend="torch"),
        "T1 k=20 (device)": tn.TopologicalRedundancy(backend="torch", refresh_every=20),
        "T2 (device)": tn.DeathSpread(backend="torch"),
        "DeCov": tn.DeCov(),
        "T1 (host round trip)": tn.TopologicalRedundancy(backend="native"),
        "T1 k=20 (host round trip)": tn.TopologicalRedundancy(backend="native", refresh_every=20),
    }


def make_step(model, names, x, y, loss_fn, lam: float = 1e-3):
    store: list[torch.Tensor] = []
    _hooks(model, names, store)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    ce = nn.functional.cross_entropy

    def step() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        store.clear()
        out = model(x)
        loss = ce(out, y)
        if loss_fn is not None:
            loss = loss + lam * loss_fn(torch.cat(store, dim=1))
        loss.backward()
        opt.step()
        return loss.detach()

    return step


def time_steps(steps: dict, losses: dict, rounds: int, warmup: int, sync, seed: int) -> dict:
    """Median step time per variant (refresh variants: the cycle's average)."""
    rng = np.random.default_rng(seed)
    times: dict[str, list[float]] = {v: [] for v in steps}
    searched: dict[str, list[bool]] = {v: [] for v in steps}
    for r in range(warmup + rounds):
        for v in rng.permutation(list(steps)):
            sync()
            t0 = time.perf_counter()
            steps[v]()
            sync()
            if r >= warmup:
                times[v].append(time.perf_counter() - t0)
                searched[v].append(getattr(losses[v], "_age", 1) == 1)
    out = {}
    for v in steps:
        k = getattr(losses[v], "refresh_every", 1)
        search = [t for t, s in zip(times[v], searched[v]) if s]
        cached = [t for t, s in zip(times[v], searched[v]) if not s]
        if k == 1 or not search or not cached:
            out[v] = statistics.median(times[v])
        else:
            out[v] = (statistics.median(search) + (k - 1) * statistics.median(cached)) / k
    return out


def count_syncs(step: Callable[[], torch.Tensor], device: torch.device, n: int = 5) -> float | None:
    """Host synchronisations per step (CUDA sync debug mode, warnings captured); None on CPU."""
    if device.type != "cuda":
        return None
    step()
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(n):
                step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    found = [w for w in caught if "synchroniz" in str(w.message).lower()]
    return len(found) / n


def training_table(args, device, sync) -> list[dict]:
    rows = []
    specs = [
        ("paper MLP", args.batch, None),
        ("wide mixer", args.wide_tokens, args.wide_d),
    ]
    for name, m, d in specs:
        torch.manual_seed(args.seed)
        if d is None:
            x = torch.randn(m, 784, device=device)
            names, build = PAPER_LAYERS, lambda: make_model("trapezium", 784, 10)
        else:
            x = torch.randn(m, d, device=device)
            names = [f"blocks.{i}.2" for i in (0, args.wide_blocks - 1)]  # two GELU outputs

            def build(d=d):
                return WideMixer(d, args.wide_blocks)

        y = torch.randint(0, 10, (m,), device=device)
        losses = make_losses()
        steps = {}
        for v, fn in losses.items():
            torch.manual_seed(args.seed)
            steps[v] = make_step(build().to(device), names, x, y, fn)
        med = time_steps(steps, losses, args.rounds, args.warmup, sync, args.seed)
        neurons = 450 + 350 + 200 + 10 if d is None else 2 * 4 * d
        syncs = {v: count_syncs(steps[v], device) for v in ("T1 (device)", "T1 k=20 (device)")}
        for v, t in med.items():
            rows.append(
                {
                    "model": name,
                    "neurons": neurons,
                    "examples": m,
                    "variant": v,
                    "step_ms": 1e3 * t,
                    "ratio": t / med["plain"],
                    "syncs_per_step": syncs.get(v),
                }
            )
    return rows


def recorder_syncs(args, device) -> float | None:
    """Syncs per T1 step when the activations come from ActivationRecorder."""
    if device.type != "cuda":
        return None
    torch.manual_seed(args.seed)
    model = make_model("trapezium", 784, 10).to(device)
    t1 = tn.TopologicalRedundancy()
    x = torch.randn(args.batch, 784, device=device)

    def step():
        with tn.ActivationRecorder(model, PAPER_LAYERS) as rec:
            model(x)
        t1(rec.activations()).backward()

    return count_syncs(step, device)


class _Rows(list):
    """A list of table rows that saves the results after every row."""

    def __init__(self, save: Callable[[], object]) -> None:
        super().__init__()
        self._save = save

    def append(self, row: dict) -> None:
        super().append(row)
        self._save()


def h0_table(args, device, sync, rows: list | None = None) -> list[dict]:
    rows = [] if rows is None else rows
    g = torch.Generator(device="cpu").manual_seed(args.seed)

    def activations(n: int) -> torch.Tensor:
        # Low-rank structure plus noise: many close neurons, like a trained layer's.
        basis = torch.randn(args.h0_examples, 32, generator=g)
        return (basis @ torch.randn(32, n, generator=g)).add_(
            torch.randn(args.h0_examples, n, generator=g)
        )

    def on_device(A_host: torch.Tensor) -> tuple[float, float | None, tn.Barcode]:
        A = A_host.to(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        sync()
        t0 = time.perf_counter()
        bc = tn.correlation_persistence(A, backend="torch", block_size=args.h0_block)
        sync()
        dt = time.perf_counter() - t0
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
        return dt, peak, bc

    n1, n2 = args.h0_sizes
    A1 = activations(n1)
    t1, peak1, bc1 = on_device(A1)
    rows.append({"what": f"device H0, {n1} neurons", "seconds": t1, "peak_GiB": peak1})
    t0 = time.perf_counter()
    ref = tn.correlation_persistence(A1, backend="cpu")  # the CPU tiled engine
    tc = time.perf_counter() - t0
    err = float(np.max(np.abs(ref.deaths - bc1.deaths)))
    rows.append(
        {
            "what": f"CPU engine, {n1} neurons ({torch.get_num_threads()} threads)",
            "seconds": tc,
            "peak_GiB": None,
            "max_death_difference_vs_device": err,
        }
    )
    A3 = activations(args.giotto_n).numpy()
    D = tn.correlation_dissimilarity(A3)
    t0 = time.perf_counter()
    tn.zero_persistence(D, backend="giotto")
    rows.append(
        {
            "what": f"giotto-ph, {args.giotto_n} neurons (dense matrix given)",
            "seconds": time.perf_counter() - t0,
            "peak_GiB": None,
        }
    )
    estimate = t1 * (n2 / n1) ** 2
    if estimate > args.h0_budget:
        rows.append(
            {
                "what": f"device H0, {n2} neurons",
                "seconds": None,
                "peak_GiB": None,
                "skipped": f"estimated {estimate:.0f} s > --h0-budget {args.h0_budget:.0f} s",
            }
        )
    else:
        del A1, bc1, ref
        t2, peak2, _ = on_device(activations(n2))
        rows.append({"what": f"device H0, {n2} neurons", "seconds": t2, "peak_GiB": peak2})
    return rows


def render(meta: dict, train: list[dict], h0: list[dict], rec: float | None, examples: int) -> str:
    lines = [f"# benchmarks/gpu.py — {meta['when']}, {meta['device']}", ""]
    lines += [
        "| model | neurons | examples | variant | step (ms) | ratio to plain | syncs/step |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for r in train:
        s = "" if r["syncs_per_step"] is None else f"{r['syncs_per_step']:g}"
        lines.append(
            f"| {r['model']} | {r['neurons']} | {r['examples']} | {r['variant']} | "
            f"{r['step_ms']:.2f} | {r['ratio']:.2f}× | {s} |"
        )
    if rec is not None:
        lines += ["", f"T1 step with ActivationRecorder: {rec:g} host syncs per step"]
    lines += ["", f"| exact H0 ({examples} examples, float32) | seconds | peak device GiB | note |"]
    lines += ["|---|---:|---:|---|"]
    for r in h0:
        sec = "—" if r["seconds"] is None else f"{r['seconds']:.2f}"
        peak = "—" if r["peak_GiB"] is None else f"{r['peak_GiB']:.2f}"
        note = r.get("skipped", "")
        if "max_death_difference_vs_device" in r:
            note = f"max |Δdeath| vs device: {r['max_death_difference_vs_device']:.2e}"
        lines.append(f"| {r['what']} | {sec} | {peak} | {note} |")
    return "\n".join(lines) + "\n"


def cpu_compare(sizes: list[int], repeats: int = 5, seed: int = 0) -> str:
    """Native Prim vs the torch backend on the CPU: ``zero_persistence`` of one float32 ``D``
    (256 random examples) per size, interleaved, median of ``repeats`` (after one warm-up)."""
    rng = np.random.default_rng(seed)
    lines = ["| n | native Prim (ms) | torch backend on the CPU (ms) | deaths equal |"]
    lines.append("|---:|---:|---:|---|")
    for n in sizes:
        D = torch.from_numpy(tn.correlation_dissimilarity(rng.standard_normal((256, n), "f4")))
        times: dict[str, list[float]] = {"native": [], "torch": []}
        for r in range(repeats + 1):
            for b in times:
                t0 = time.perf_counter()
                tn.zero_persistence(D, backend=b)
                if r:
                    times[b].append(time.perf_counter() - t0)
        same = np.array_equal(
            tn.zero_persistence(D, backend="native").deaths,
            tn.zero_persistence(D, backend="torch").deaths,
        )
        nat, tor = (1e3 * statistics.median(times[b]) for b in ("native", "torch"))
        lines.append(f"| {n} | {nat:.1f} | {tor:.1f} | {same} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    ap.add_argument("--device", default=default_device)
    ap.add_argument("--smoke", action="store_true", help="toy sizes, seconds, any device")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--wide-d", type=int, default=1024, help="width d (8d regularised neurons)")
    ap.add_argument("--wide-blocks", type=int, default=6)
    ap.add_argument("--wide-tokens", type=int, default=4096, help="tokens (examples) per step")
    ap.add_argument("--h0-sizes", type=int, nargs=2, default=[131072, 1048576])
    ap.add_argument("--h0-examples", type=int, default=256)
    ap.add_argument("--h0-block", type=int, default=None, help="tile width (default per device)")
    ap.add_argument("--h0-budget", type=float, default=200.0, help="seconds allowed for 1M")
    ap.add_argument("--giotto-n", type=int, default=8192)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="folder for gpu.json and gpu.md")
    ap.add_argument(
        "--cpu-compare",
        type=int,
        nargs="+",
        default=None,
        metavar="N",
        help="only compare native Prim and the torch backend on the CPU at these sizes",
    )
    args = ap.parse_args(argv)
    if args.cpu_compare:
        print(
            f"# {torch.get_num_threads()} torch threads, {platform.machine()}, "
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"
        )
        print(cpu_compare(args.cpu_compare), end="")
        return {}
    if args.smoke:
        args.rounds, args.warmup, args.batch = 2, 0, 64
        args.wide_d, args.wide_blocks, args.wide_tokens = 16, 2, 96
        args.h0_sizes, args.h0_examples, args.giotto_n = [600, 1200], 32, 300
        args.h0_budget = 120.0
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device on this machine")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    # Fewer examples than neurons in the wide model: the recorder-free hooks do not warn, but
    # the losses' degenerate-batch warnings are not the subject here.
    warnings.filterwarnings("ignore", message=r".*examples for .*neurons")
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "no GPU"
    meta = {
        "when": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        "device": f"{device} ({card}), torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores",
        "smoke": args.smoke,
    }
    t_start = time.perf_counter()
    result: dict = {"meta": meta, "training": [], "recorder_syncs": None, "h0": []}

    def save() -> str:
        # After every table, so that a run stopped by a time limit keeps what it measured.
        meta["total_seconds"] = time.perf_counter() - t_start
        text = render(
            meta, result["training"], result["h0"], result["recorder_syncs"], args.h0_examples
        )
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            tn.io.atomic_write_text(args.out / "gpu.json", json.dumps(result, indent=2))
            tn.io.atomic_write_text(args.out / "gpu.md", text)
        return text

    result["training"] = training_table(args, device, sync)
    result["recorder_syncs"] = recorder_syncs(args, device)
    save()
    result["h0"] = _Rows(save)
    h0_table(args, device, sync, result["h0"])
    text = save()
    print(text, end="")
    print(f"total {meta['total_seconds']:.1f} s", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
