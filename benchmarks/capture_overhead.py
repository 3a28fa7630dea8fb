"""Benchmark: what recording the post-activation neurons costs, and what finding them costs.

Model: the paper's MNIST MLP (784-450-350-200-10, ReLU), batch 256 of random inputs; and its
*functional* twin, the same weights with ``F.relu`` applied in ``forward`` (so the recorder has
to find the activations by tracing with ``torch.fx`` and apply them to the recorded outputs).
One step is forward → ``rec.activations()`` (1010 columns) → ``backward`` of their sum.

* ``plain``       forward and backward of the output's sum, no recording (ratio 1);
* ``pre``         ``point="pre"``: the ``Linear`` outputs (hooks on the Linear layers);
* ``post``        ``point="post"`` (default): hooks on the ``ReLU`` modules;
* ``post (F.relu)``  ``point="post"`` on the functional twin: hooks on the ``Linear`` layers,
                  the ReLU applied again, out of place, to each recorded output.

Variants are interleaved (one step of each per round, shuffled order); the table reports the
median step time and its ratio to ``plain``. The second table is the cost of building an
``ActivationRecorder`` for the MLP, the functional twin and a 2-layer BERT built from a small
config: the first time on a model (which traces the forward with ``torch.fx`` to find the
activations: the trace cache is cleared before it) and again on the same, unchanged model (the
cache's plan), side by side in each of ``--builds`` rounds; a line
``recorder construction (model): first X ms, again Y ms`` repeats each row.

Run: ``.venv/bin/python benchmarks/capture_overhead.py [--rounds 30] [--threads 1] [--builds 50]``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn

import topo_neurons as tn
from topo_neurons.capture import clear_trace_cache


class FunctionalMLP(nn.Module):
    def __init__(self, seq: nn.Sequential) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3, self.out = seq[1], seq[3], seq[5], seq[7]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc1(x.flatten(1)))
        h = F.relu(self.fc2(h))
        return self.out(F.relu(self.fc3(h)))


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 450), nn.ReLU(),
        nn.Linear(450, 350), nn.ReLU(),
        nn.Linear(350, 200), nn.ReLU(),
        nn.Linear(200, 10),
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    parser.add_argument("--builds", type=int, default=50, help="rounds of recorder builds")
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)  # 256 examples < 1010 neurons: the paper's case
    if args.threads:
        torch.set_num_threads(args.threads)
    seq = mlp()
    twin = FunctionalMLP(seq)
    x = torch.randn(256, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    recorders = {
        "pre": (seq, tn.ActivationRecorder(seq, point="pre")),
        "post": (seq, tn.ActivationRecorder(seq)),
        "post (F.relu)": (twin, tn.ActivationRecorder(twin)),
    }
    with recorders["post"][1] as a:
        seq(x)
    with recorders["post (F.relu)"][1] as b:
        twin(x)
    torch.testing.assert_close(a.activations(), b.activations())  # same neurons

    def step(name: str) -> float:
        t0 = time.perf_counter()
        if name == "plain":
            seq(x).sum().backward()
        else:
            model, rec = recorders[name]
            with rec:
                model(x)
            rec.activations().sum().backward()
            rec.clear()
        seq.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    names = ["plain", *recorders]
    times: dict[str, list[float]] = {n: [] for n in names}
    rng = random.Random(0)
    for n in names:  # warm-up
        step(n)
    for _ in range(args.rounds):
        order = names[:]
        rng.shuffle(order)
        for n in order:
            times[n].append(step(n))
    base = statistics.median(times["plain"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.rounds} rounds")
    print("| variant | median step (ms) | ratio |\n|---|---:|---:|")
    for n in names:
        med = statistics.median(times[n])
        print(f"| {n} | {1e3 * med:.2f} | {med / base:.2f}× |")

    from transformers import BertConfig, BertModel

    bert = BertModel(
        BertConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            vocab_size=100,
        )
    )
    print(
        f"\n| model | build ActivationRecorder, first (traced; ms, median of {args.builds}) "
        "| again (same model, cached; ms) | ratio |\n|---|---:|---:|---:|"
    )
    for label, model in (("MLP", seq), ("functional MLP", twin), ("BERT, 2 layers", bert)):
        first, again = construction_times(model, args.builds)
        print(f"| {label} | {1e3 * first:.3f} | {1e3 * again:.4f} | {first / again:.0f}× |")
        print(f"recorder construction ({label}): first {1e3 * first:.3f} ms, again "
              f"{1e3 * again:.4f} ms")  # fmt: skip


def construction_times(model: nn.Module, rounds: int) -> tuple[float, float]:
    """Median seconds to build ``ActivationRecorder(model)`` after the trace cache of the model
    is cleared (``first``: the torch.fx trace runs) and right after that (``again``: cached),
    side by side in each round."""
    first, again = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(rounds):
            clear_trace_cache(model)
            t0 = time.perf_counter()
            tn.ActivationRecorder(model)
            t1 = time.perf_counter()
            tn.ActivationRecorder(model)
            t2 = time.perf_counter()
            first.append(t1 - t0)
            again.append(t2 - t1)
    return statistics.median(first), statistics.median(again)


if __name__ == "__main__":
    main()
