"""The named configurations of ``reproduce`` (the paper's full run, ``--quick``, ``adam``)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..protocol import PAPER_GRID, REGULARIZERS

__all__ = ["ADAM_FULL", "ADAM_QUICK", "FULL", "PRESETS", "QUICK", "Preset", "run_count"]


@dataclass(frozen=True)
class Preset:
    """A named configuration of ``reproduce``.

    Attributes
    ----------
    tasks, models, regularizers : tuple of str
    seeds : int
        Number of seeds (``0 … seeds − 1``).
    grid : tuple of float
        Weights λ tried for every regulariser but ``none``.
    max_epochs, patience : int
    protocol : {"paper", "adam"}
        Training recipe (:attr:`TrainConfig.protocol`).
    refits : int
        Fresh-seed retrainings of each chosen weight (and of ``none``) per network.
    """

    tasks: tuple[str, ...]
    models: tuple[str, ...]
    regularizers: tuple[str, ...]
    seeds: int
    grid: tuple[float, ...]
    max_epochs: int
    patience: int
    protocol: str = "paper"
    refits: int = 1


#: The default (full) configuration, the paper's protocol on mnist5k: the three MLPs, 3 seeds,
#: the paper's 10 weights, at most 1200 epochs, patience 20 (``run_count``: 9 × 61 = 549 runs +
#: 63 refits = 612).
FULL = Preset(
    tasks=("mnist5k",),
    models=("trapezium", "trapezium_dropout", "deep_trapezium"),
    regularizers=REGULARIZERS,
    seeds=3,
    grid=PAPER_GRID,
    max_epochs=1200,
    patience=20,
)
#: ``--quick``: the paper's protocol on mnist5k, one MLP, 2 seeds, three weights, at most
#: 20 epochs (2 × 19 = 38 runs + 14 refits = 52); a smoke test of minutes, not a result.
QUICK = replace(FULL, models=("trapezium",), seeds=2, grid=(1e-4, 1e-2, 1.0), max_epochs=20)
#: ``--protocol adam``: the package's earlier recipe on scikit-learn's digits (825 runs).
ADAM_FULL = replace(FULL, tasks=("digits",), seeds=5, max_epochs=60, patience=10, protocol="adam")
#: ``--protocol adam --quick``: digits, one MLP, 3 seeds, five weights, at most 40 epochs.
ADAM_QUICK = replace(
    QUICK,
    tasks=("digits",),
    seeds=3,
    grid=(1e-5, 1e-4, 1e-3, 1e-1, 1.0),
    max_epochs=40,
    patience=10,
    protocol="adam",
)
#: ``{(protocol, quick): preset}``.
PRESETS: dict[tuple[str, bool], Preset] = {
    ("paper", False): FULL,
    ("paper", True): QUICK,
    ("adam", False): ADAM_FULL,
    ("adam", True): ADAM_QUICK,
}


def run_count(preset: Preset) -> tuple[int, int]:
    """How many runs a preset trains: ``(sweep runs, fresh-seed refits)``.

    Per network (task × model × seed), ``none`` once and every other regulariser once per
    weight of the grid (as :func:`~topo_neurons.experiments.protocol.plan_runs`); then
    ``refits`` retrainings of each regulariser's chosen weight, ``none`` included (as
    :func:`~topo_neurons.experiments.reproduction.refit_specs`). ``--help`` and the README
    give these numbers (a test checks the README's).

    Examples
    --------
    >>> run_count(FULL)
    (549, 63)
    """
    networks = len(preset.tasks) * len(preset.models) * preset.seeds
    others = sum(r != "none" for r in preset.regularizers)
    per_network = ("none" in preset.regularizers) + others * len(preset.grid)
    return networks * per_network, networks * len(preset.regularizers) * preset.refits
