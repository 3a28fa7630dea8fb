"""The protocol's vocabulary: regularisers, the grid, the configuration and the run keys."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from torch import nn

from ..data import TASKS
from ..models import MODELS

__all__ = [
    "ACTIVATION_REGULARIZERS",
    "PAPER_GRID",
    "PROTOCOLS",
    "REFIT_SEED_OFFSET",
    "REGULARIZERS",
    "REGULARIZER_LABELS",
    "STAGES",
    "RunSpec",
    "TrainConfig",
    "build_regularizer",
    "format_weight",
    "plan_runs",
]

#: Regularisers of the protocol, in the column order of the reports.
REGULARIZERS: tuple[str, ...] = ("none", "l1", "l2", "correlation", "t1", "t2", "decov")
#: Display names.
REGULARIZER_LABELS: dict[str, str] = {
    "none": "none",
    "l1": "L1",
    "l2": "L2",
    "correlation": "Corr",
    "t1": "T1",
    "t2": "T2",
    "decov": "DeCov",
}
#: Regularisers computed from activations (they need an :class:`ActivationRecorder`).
ACTIVATION_REGULARIZERS: tuple[str, ...] = ("correlation", "t1", "t2", "decov")
#: The paper's grid of weights, 1e-6 … 100 (``mnist_server_execution.py``: 10 values).
PAPER_GRID: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 5.0, 10.0, 100.0)
#: Training recipes of :class:`TrainConfig`.
PROTOCOLS: tuple[str, ...] = ("paper", "adam")
#: Stages of a run: ``"select"`` (the sweep whose validation metric chooses the weights) and
#: ``"refit"`` (the chosen weight retrained from a fresh seed, for an estimate that the choice
#: does not inflate).
STAGES: tuple[str, ...] = ("select", "refit")
#: A refit of network seed ``s`` trains from seed ``s + REFIT_SEED_OFFSET`` (stored as ``seed``).
REFIT_SEED_OFFSET = 1000


def format_weight(weight: float) -> str:
    """Canonical text of a weight (the form stored in results files): ``format(w, ".6g")``.

    Examples
    --------
    >>> format_weight(1e-4), format_weight(0.001), format_weight(10)
    ('0.0001', '0.001', '10')
    """
    return format(float(weight), ".6g")


def _weight_label(weight: str | float) -> str:
    """A weight as the report and the figures print it: ``–`` for 0, ``1e-3``, ``5``, ``100``."""
    x = float(weight) if weight not in ("", None) else math.nan
    if x == 0:
        return "–"
    if x >= 1:
        return f"{x:g}"
    return f"{x:.0e}".replace("e-0", "e-")


@dataclass(frozen=True)
class TrainConfig:
    """Everything about a run that is not its key (task, model, regulariser, weight, seed).

    Two sweeps with equal configurations share results; :meth:`config_hash` identifies them in
    the results file.

    The defaults are the paper's protocol (see the module notes).

    Attributes
    ----------
    protocol : {"paper", "adam"}
        Training recipe.
    max_epochs : int
        Upper bound on epochs (the paper: 1200).
    patience : int
        Early-stopping patience in epochs (the paper: 20, on the validation loss; a run stops
        after ``patience + 1`` epochs without improvement under ``"paper"``, after ``patience``
        under ``"adam"``).
    lr : float
        Initial learning rate (the paper's SGD: 0.01; ``"adam"``: 1e-3).
    momentum : float
        Nesterov momentum of the paper's SGD.
    lr_decay, lr_decay_steps : float, int
        The learning rate is multiplied by ``lr_decay`` every ``lr_decay_steps`` optimiser
        steps (staircase; the paper: 0.95 every 3520 steps). ``"adam"`` ignores the three.
    batch_size : int
        Batch size (see the module notes for how an epoch is cut).
    kind : {"abs", "sqrt"}
        Correlation dissimilarity of the persistence terms.
    t1_reduction : {"sum", "mean"}
        T1 reduction (the paper sums).
    t2_alpha : float
        α of T2.
    sampling_p : float
        Fraction of each hidden layer's neurons the activation terms see (1.0: all; otherwise
        :class:`topo_neurons.ImportanceSampling`).
    split_seed : int
        Seed of the train / validation / test split (fixed across runs).
    fractions : tuple of 3 floats
        Train, validation, test fractions.
    data_dir : str or None
        Directory with MNIST / CIFAR-10 files.
    """

    protocol: str = "paper"
    max_epochs: int = 1200
    patience: int = 20
    lr: float = 0.01
    momentum: float = 0.9
    lr_decay: float = 0.95
    lr_decay_steps: int = 3520
    batch_size: int = 256
    kind: str = "abs"
    t1_reduction: str = "sum"
    t2_alpha: float = 0.5
    sampling_p: float = 1.0
    split_seed: int = 0
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    data_dir: str | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(
                f"protocol={self.protocol!r} is not valid; valid protocols are "
                f"{', '.join(map(repr, PROTOCOLS))}"
            )
        for name in ("max_epochs", "patience", "batch_size", "lr_decay_steps"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int; got {v!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number; got {self.lr!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1); got {self.momentum!r}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must lie in (0, 1]; got {self.lr_decay!r}")
        if self.kind not in ("abs", "sqrt"):
            raise ValueError(f"kind={self.kind!r} is not valid; valid kinds are 'abs', 'sqrt'")
        if self.t1_reduction not in ("sum", "mean"):
            raise ValueError(
                f"t1_reduction={self.t1_reduction!r} is not valid; valid are 'sum', 'mean'"
            )
        if not 0 <= self.t2_alpha <= 1:
            raise ValueError(f"t2_alpha must lie in [0, 1]; got {self.t2_alpha!r}")
        if not 0 < self.sampling_p <= 1:
            raise ValueError(f"sampling_p must lie in (0, 1]; got {self.sampling_p!r}")
        object.__setattr__(self, "fractions", tuple(float(f) for f in self.fractions))

    @classmethod
    def adam(cls, **overrides) -> TrainConfig:
        """The ``"adam"`` recipe: Adam lr 1e-3, at most 60 epochs, patience 10 (overridable)."""
        kw = {"protocol": "adam", "max_epochs": 60, "patience": 10, "lr": 1e-3, **overrides}
        return cls(**kw)

    def config_hash(self) -> str:
        """Short stable hash (10 hex digits) of the configuration."""
        text = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


@dataclass(frozen=True, order=True)
class RunSpec:
    """The key of one run: which network, which regulariser at which weight.

    Attributes
    ----------
    task : str
    model : str
    regularizer : str
        One of :data:`REGULARIZERS`.
    weight : float
        λ (0 for ``"none"``).
    seed : int
        Seed of the initialisation and of the batch order.
    stage : {"select", "refit"}
        ``"refit"``: a retraining of a chosen weight from a fresh seed (see :data:`STAGES`).
    """

    task: str
    model: str
    regularizer: str
    weight: float
    seed: int
    stage: str = "select"

    def key(self, config_hash: str) -> tuple[str, ...]:
        """The identity of the run in a results file."""
        return (
            self.task,
            self.model,
            self.regularizer,
            format_weight(self.weight),
            str(int(self.seed)),
            self.stage,
            config_hash,
        )


def _check_names(values: Iterable[str], valid: Sequence[str], what: str) -> list[str]:
    values = list(values)
    if not values:
        raise ValueError(f"no {what} given; valid {what} are {', '.join(valid)}")
    for v in values:
        if v not in valid:
            raise ValueError(f"unknown {what[:-1]} {v!r}; valid {what} are {', '.join(valid)}")
    return values


def plan_runs(
    tasks: Sequence[str],
    models: Sequence[str],
    regularizers: Sequence[str],
    grid: Sequence[float],
    seeds: Sequence[int],
) -> list[RunSpec]:
    """All runs of a sweep, network by network (seed, task, model), then regulariser and weight.

    ``"none"`` is run once per network; every other regulariser once per weight of ``grid``.

    Parameters
    ----------
    tasks, models, regularizers : sequence of str
        Names from :data:`~topo_neurons.experiments.data.TASKS`,
        :data:`~topo_neurons.experiments.models.MODELS` and :data:`REGULARIZERS`.
    grid : sequence of float
        Positive weights λ.
    seeds : sequence of int

    Returns
    -------
    list of RunSpec

    Examples
    --------
    >>> len(plan_runs(["digits"], ["trapezium"], ["none", "t1", "t2"], [1e-4, 1e-3], [0, 1]))
    10
    """
    tasks = _check_names(tasks, TASKS, "tasks")
    models = _check_names(models, tuple(MODELS), "models")
    regularizers = _check_names(regularizers, REGULARIZERS, "regularizers")
    grid = [float(w) for w in grid]
    bad = [w for w in grid if not (w > 0 and math.isfinite(w))]
    if bad:
        raise ValueError(f"grid weights must be positive and finite; got {bad}")
    if not grid and any(r != "none" for r in regularizers):
        raise ValueError("the grid of weights is empty; give at least one weight (e.g. 1e-4)")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("no seeds given; give at least one seed")
    specs = []
    for seed in seeds:
        for task in tasks:
            for model in models:
                for reg in regularizers:
                    for w in [0.0] if reg == "none" else grid:
                        specs.append(RunSpec(task, model, reg, w, seed))
    return specs


def build_regularizer(name: str, config: TrainConfig) -> nn.Module | None:
    """The loss module of regulariser ``name`` (``None`` for ``"none"``).

    Parameters
    ----------
    name : str
        One of :data:`REGULARIZERS`.
    config : TrainConfig
        Supplies ``kind``, ``t1_reduction``, ``t2_alpha`` and the protocol (L1/L2 cover the
        biases too under ``"paper"``).

    Returns
    -------
    torch.nn.Module or None
        ``l1``/``l2`` take the model; the others take activations of shape (m, n).
    """
    import topo_neurons as tn

    _check_names([name], REGULARIZERS, "regularizers")
    return {
        "none": lambda: None,
        "l1": lambda: tn.L1Penalty(include_biases=config.protocol == "paper"),
        "l2": lambda: tn.L2Penalty(include_biases=config.protocol == "paper"),
        "correlation": tn.CorrelationPenalty,
        "t1": lambda: tn.TopologicalRedundancy(kind=config.kind, reduction=config.t1_reduction),
        "t2": lambda: tn.DeathSpread(alpha=config.t2_alpha, kind=config.kind),
        "decov": tn.DeCov,
    }[name]()
