"""Benchmark: cost of each regulariser in a training step of the paper's MNIST MLP.

The model is the MLP of Ballester et al. (784-450-350-200-10, ReLU); one step is
``zero_grad`` → forward → loss → ``backward`` → SGD ``step`` on a batch of 256 random inputs of
the MNIST shape (1 × 28 × 28) with random labels. Every regularised variant records the 1010
neurons the paper regularises, the post-ReLU outputs of the three hidden layers and the logits
(``tn.ActivationRecorder(model, ["net.relu1", "net.relu2", "net.relu3", "net.out"])`` with
``AllNeurons``), and adds ``λ·T`` to the cross-entropy:

* ``plain``        cross-entropy only (the reference, ratio 1);
* ``recording``    not a regulariser: the plain step plus recording the 1010 neurons with a
                   gradient path from them (``0 · ΣA`` added to the loss): the floor of any
                   activation regulariser, ``T1 k=∞`` included;
* ``T1``           ``tn.TopologicalRedundancy()`` (MST found without grad, ``n − 1`` edge
                   correlations recomputed with grad);
* ``T1 k=5``, ``T1 k=20``  ``tn.TopologicalRedundancy(refresh_every=k)``: the tree is searched
                   every ``k`` steps, the steps between evaluate T1 on the cached ``n − 1``
                   edges. Their step time is the cycle's average,
                   ``(median search step + (k − 1) · median cached step) / k``, so that the
                   median of mostly cheap steps does not hide the search;
* ``T2``           ``tn.DeathSpread()``;
* ``T1 naive``     autograd through the whole ``n × n`` matrix
                   (``tn.correlation_dissimilarity`` with grad) and giotto-ph edges
                   (``tn.differentiable_deaths(D, backend="giotto")``): what the design avoids;
* ``Corr``         ``tn.CorrelationPenalty()`` (all ``n(n − 1)`` correlations with grad);
* ``DeCov``        ``tn.DeCov()``;
* ``L1``, ``L2``   ``tn.L1Penalty()`` / ``tn.L2Penalty()`` on the weights (no recording);
* ``floor``        not a regulariser: the plain step plus recording and one full no-grad
                   ``ZᵀZ`` GEMM (``256 × 1010 × 1010``), the obvious way to get every
                   correlation that the tree needs (T1 itself multiplies only the upper
                   block triangle).

Before timing, T1 and its naive version are checked to agree (value and gradient, float64).

The variants are interleaved: each round runs one step of every variant in a shuffled order, so
slow drifts of a shared machine hit all of them alike; the table reports the median step time
over the rounds and its ratio to the plain step's median.

``--device cuda`` runs the model, the batch and every loss on the GPU (timed with
``torch.cuda.synchronize()`` around each step); the tree search then copies the ``n × n``
no-grad ranking matrix (4 MB in float32 for 1010 neurons) to the host.

Usage::

    python benchmarks/training_overhead.py                  # 45 rounds, 1 torch thread
    python benchmarks/training_overhead.py --rounds 20 --threads 0  # torch's default threads
    python benchmarks/training_overhead.py --device cuda    # on a GPU
    python benchmarks/training_overhead.py --breakdown      # the pieces of a T1 step alone
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

import topo_neurons as tn
from topo_neurons._edges import tree_correlations
from topo_neurons.experiments.models import make_model


def naive_t1(A: torch.Tensor) -> torch.Tensor:
    """T1 by autograd through the full dissimilarity matrix, edges from giotto-ph."""
    threads = torch.get_num_threads()
    D = tn.correlation_dissimilarity(A, "abs")
    deaths = tn.differentiable_deaths(D, backend="giotto")
    # giotto-ph sets the process-wide OpenMP thread count (to all cores), which torch shares:
    # restore it so that the other variants keep running with the same number of threads.
    torch.set_num_threads(threads)
    return (1.0 - deaths).sum()


def recording_only(A: torch.Tensor) -> torch.Tensor:
    """Not a regulariser: ``0 · ΣA``, so that the recorded activations join the backward."""
    return 0.0 * A.sum()


def gemm_floor(A: torch.Tensor) -> torch.Tensor:
    """Not a regulariser: the no-grad ``ZᵀZ`` GEMM alone (what any exact T1 must compute)."""
    with torch.no_grad():
        Z = A - A.mean(dim=0)
        Z.T @ Z
    return A.new_zeros(())


#: The paper's neurons: post-ReLU hidden outputs and the logits.
LAYERS = ["net.relu1", "net.relu2", "net.relu3", "net.out"]

ACTIVATION_LOSSES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "recording": recording_only,
    "floor (plain + ZᵀZ)": gemm_floor,
    "T1": tn.TopologicalRedundancy(),
    "T1 k=5": tn.TopologicalRedundancy(refresh_every=5),
    "T1 k=20": tn.TopologicalRedundancy(refresh_every=20),
    "T2": tn.DeathSpread(),
    "T1 naive": naive_t1,
    "Corr": tn.CorrelationPenalty(),
    "DeCov": tn.DeCov(),
}
WEIGHT_LOSSES = {"L1": tn.L1Penalty(), "L2": tn.L2Penalty()}
VARIANTS = ("plain", *ACTIVATION_LOSSES, *WEIGHT_LOSSES)


def make_step(variant: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, lam: float):
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    rec = tn.ActivationRecorder(model, LAYERS)
    ce = nn.functional.cross_entropy

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        if variant in ACTIVATION_LOSSES:
            with rec:
                out = model(x)
            loss = ce(out, y) + lam * ACTIVATION_LOSSES[variant](rec.activations())
            rec.clear()
        elif variant in WEIGHT_LOSSES:
            loss = ce(model(x), y) + lam * WEIGHT_LOSSES[variant](model)
        else:
            loss = ce(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def check_t1_against_naive(x: torch.Tensor) -> None:
    """Before timing: T1 and its naive version agree in value and gradient (float64)."""
    model = make_model("trapezium", 784, 10).double().to(x.device)  # 784-450-350-200-10
    with tn.ActivationRecorder(model, LAYERS) as rec:
        model(x.double())
    A = rec.activations()
    fast, naive = tn.TopologicalRedundancy()(A), naive_t1(A)
    g_fast = torch.autograd.grad(fast, model.net.fc1.weight, retain_graph=True)[0]
    g_naive = torch.autograd.grad(naive, model.net.fc1.weight)[0]
    if not (torch.allclose(fast, naive, rtol=1e-9) and torch.allclose(g_fast, g_naive, atol=1e-9)):
        raise RuntimeError(f"T1 {fast.item()} and naive T1 {naive.item()} disagree")


def breakdown(x: torch.Tensor, y: torch.Tensor, rounds: int) -> None:
    """Time the pieces of a T1 step alone (medians of interleaved rounds) and print them.

    The pieces are the CPU path of ``tn.TopologicalRedundancy()`` (native backend) called one
    by one on the activations of the paper's MLP, beside the whole steps they belong to.
    """
    from topo_neurons._edges import EdgeCorrelationCPU, _mirror_diagonal, _prim_abs
    from topo_neurons.regularizers import _deaths
    from topo_neurons.regularizers._base import _activations

    torch.manual_seed(0)
    model = make_model("trapezium", 784, 10)
    rec = tn.ActivationRecorder(model, LAYERS)
    t1 = tn.TopologicalRedundancy()
    ce = nn.functional.cross_entropy
    with rec:
        model(x)
    A = rec.activations().detach().clone().requires_grad_()
    rec.clear()
    Ad = A.detach()
    amax, amin = _deaths._extrema(Ad)
    const = amax == amin
    Zt, norm, _ = _deaths._normalized_rows(Ad, const)
    n, rows, top = Zt.shape[0], _deaths._RANK_BLOCK, 1.0 + _deaths._RANK_SLACK
    G = torch.empty((n, n), dtype=Zt.dtype)
    edges, rho = tree_correlations(Zt.numpy(), rows, top)
    i, j = edges[:, 0].copy(), edges[:, 1].copy()
    args = (rho, Zt.numpy(), norm.numpy().astype(np.float64), const.numpy(), i, j)

    def step(loss_fn):
        def run() -> None:
            model.zero_grad(set_to_none=True)
            if loss_fn is None:
                ce(model(x), y).backward()
                return
            with rec:
                out = model(x)
            loss = ce(out, y) + 1e-3 * loss_fn(rec.activations())
            rec.clear()
            loss.backward()

        return run

    def gemm() -> None:
        for i0 in range(0, n, rows):
            torch.mm(Zt[i0 : i0 + rows], Zt[i0:].T, out=G[i0 : i0 + rows, i0:])

    def mirror() -> None:
        for i0 in range(0, n, rows):
            i1 = min(i0 + rows, n)
            G[i1:, i0:i1].copy_(G[i0:i1, i1:].T)
            _mirror_diagonal(G.numpy(), i0, i1)

    def checks() -> None:
        B = _activations(A, "T1")
        mx, mn = _deaths._extrema(B)
        _deaths.rescale_extreme_columns(B, mx, mn)

    def edges_fwd_bwd() -> None:
        r = EdgeCorrelationCPU.apply(A, *args)
        (1.0 - _deaths.dissimilarity_from_correlation(r, "abs")).sum().backward()

    gemm()
    mirror()
    pieces = {
        "step: plain (model forward + backward)": step(None),
        "step: recording (0·ΣA)": step(lambda B: 0.0 * B.sum()),
        "step: T1": step(t1),
        "T1 alone on a leaf (forward + backward)": lambda: t1(A).backward(),
        "  checks (finite, extrema, rescale)": checks,
        "  normalisation Zᵀ (torch, transposed copy)": lambda: _deaths._normalized_rows(Ad, const),
        "  Gram GEMM, upper block triangle": gemm,
        "  mirror (lower image, diagonal blocks)": mirror,
        "  Prim on the keys (1 + slack) − abs(ρ)": lambda: _prim_abs(G.numpy(), top),
        "  tree search whole (GEMM + mirror + Prim + sort)": lambda: tree_correlations(
            Zt.numpy(), rows, top
        ),
        "  edge correlations: forward, map, backward": edges_fwd_bwd,
    }
    times: dict[str, list[float]] = {k: [] for k in pieces}
    for r in range(3 + rounds):
        for k, f in pieces.items():
            t0 = time.perf_counter()
            f()
            if r >= 3:
                times[k].append(time.perf_counter() - t0)
    print(f"# T1 step breakdown: {torch.get_num_threads()} thread(s), {rounds} rounds")
    print()
    print("| piece | median (ms) |")
    print("|---|---:|")
    for k in pieces:
        print(f"| {k} | {1e3 * statistics.median(times[k]):.2f} |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=45, help="interleaved rounds (default 45)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a small shared machine OpenMP barriers under "
        "contention swamp the measurement; 0: torch's default)",
    )
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default cpu)")
    ap.add_argument(
        "--breakdown",
        action="store_true",
        help="time the pieces of a T1 step alone (CPU) instead of the variants",
    )
    args = ap.parse_args(argv)
    # 1010 neurons on a batch of 256 is the paper's setting; the recorder warns that m < n.
    warnings.filterwarnings("ignore", message=r"\d+ examples for \d+ neurons")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device on this machine")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = list(dict.fromkeys(["plain", *args.variants]))

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x = torch.randn(args.batch, 1, 28, 28).to(device)
    y = torch.randint(0, 10, (args.batch,)).to(device)
    if args.breakdown:
        breakdown(x, y, args.rounds)
        return
    check_t1_against_naive(x)
    steps = {}
    for v in variants:
        torch.manual_seed(args.seed)
        steps[v] = make_step(v, make_model("trapezium", 784, 10).to(device), x, y, lam=1e-3)
    times: dict[str, list[float]] = {v: [] for v in variants}
    searched: dict[str, list[bool]] = {v: [] for v in variants}
    for r in range(args.warmup + args.rounds):
        for v in rng.permutation(variants):
            sync()
            t0 = time.perf_counter()
            steps[v]()
            sync()
            dt = time.perf_counter() - t0
            if r >= args.warmup:
                times[v].append(dt)
                loss = ACTIVATION_LOSSES.get(v)
                searched[v].append(getattr(loss, "_age", 1) == 1)

    def step_time(v: str) -> float:
        k = getattr(ACTIVATION_LOSSES.get(v), "refresh_every", 1)
        if k == 1:
            return statistics.median(times[v])
        search = [t for t, s in zip(times[v], searched[v]) if s]
        cached = [t for t, s in zip(times[v], searched[v]) if not s]
        if not search:
            raise SystemExit(f"{v}: no tree search among the timed steps; use more --rounds")
        return (statistics.median(search) + (k - 1) * statistics.median(cached)) / k

    plain = step_time("plain")
    print(
        f"# training_overhead: MNIST MLP 784-450-350-200-10, batch {args.batch}, 1010 neurons, "
        f"{args.rounds} interleaved rounds"
    )
    print(
        f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, torch "
        f"{torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"{platform.processor() or platform.machine()}, device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    )
    print()
    print("| variant | median step (ms) | ratio to plain |")
    print("|---|---:|---:|")
    for v in variants:
        med = step_time(v)
        print(f"| {v} | {1e3 * med:.2f} | {med / plain:.2f}× |")


if __name__ == "__main__":
    main()
