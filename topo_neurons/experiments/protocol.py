"""The training protocol of Ballester et al. and the resumable sweep over its grid.

One *run* trains one network (task × model × seed) with one regulariser at one weight:

* loss ``task_loss + λ · R``: cross-entropy (classification) or mean squared error
  (regression), with ``R`` one of :data:`REGULARIZERS`:

  ================ ===================================================================
  ``none``         no regulariser (one run per network, ``λ = 0``)
  ``l1``, ``l2``   :class:`topo_neurons.L1Penalty`, :class:`topo_neurons.L2Penalty` (over
                   all trainable parameters, biases included, under the paper protocol;
                   weights only under ``adam``)
  ``correlation``  :class:`topo_neurons.CorrelationPenalty`, "minimise all correlations"
  ``t1``           :class:`topo_neurons.TopologicalRedundancy` (``reduction="sum"`` as in
                   the paper, so its size grows with the number of neurons)
  ``t2``           :class:`topo_neurons.DeathSpread` (``α = 0.5``)
  ``decov``        :class:`topo_neurons.DeCov` (an extra column, not in the paper)
  ================ ===================================================================

  The activation-based terms see the paper's neurons of the training batch: each hidden
  layer's output *after* its ReLU and the logits (:func:`~topo_neurons.experiments.models.
  neuron_layers`, passed to the recorder by name), all of them (``p = 1``, as the paper did
  for its MNIST MLPs) unless :attr:`TrainConfig.sampling_p` asks for importance sampling.

Two training recipes (:attr:`TrainConfig.protocol`):

``"paper"`` (the default; the authors' ``model/mnist_experiments.py`` and ``model/train.py``)
    SGD with Nesterov momentum 0.9, learning rate ``0.01 · 0.95^⌊step / 3520⌋`` (staircase,
    counted in optimiser steps); Keras' initialisation (Glorot-uniform kernels, zero biases);
    each epoch a fresh shuffle cut into batches of 256 (the last one smaller); at most 1200
    epochs; early stopping on the validation **loss** (an epoch improves when its loss is
    strictly lower than the best so far; training stops when 21 epochs in a row did not, i.e.
    the authors' ``count > patience`` with patience 20) with the best weights restored; for a
    network with dropout the activation term is computed on a second forward pass of the same
    batch with dropout off (the authors call the layers outside ``fit``, where Keras' dropout is
    inactive).
``"adam"`` (this package's earlier recipe, kept for comparison)
    Adam (learning rate ``1e-3``), batches of at most 256 examples (each epoch's shuffled
    training set is cut into ``ceil(m / 256)`` batches of equal size ± 1), torch's default
    initialisation, early stopping on the validation metric (ties broken by the lower validation
    loss) after ``patience`` epochs without improvement; the term on the training forward (with
    dropout); L1/L2 on weights only.

Either way the test metric of the restored network is reported.

A run whose loss or activations become NaN or infinite is recorded with status ``diverged``
(this happens for large weights, e.g. T1 with ``reduction="sum"`` over about a thousand
deaths), never as a crash; non-finite activations are told by the type of the recorder's error
(:class:`~topo_neurons.NonFiniteActivationsError`), not by its message.

:func:`run_sweep` executes many runs, in parallel processes with ``jobs > 1``, and rewrites
the results file atomically after each one, so that an interrupted sweep loses nothing and a
rerun skips the runs already recorded (same task, model, regulariser, weight, seed and
configuration hash).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..io import atomic_write_text
from .data import TASKS, Dataset, load_task
from .models import MODELS, make_model

__all__ = [
    "PAPER_GRID",
    "PROTOCOLS",
    "REFIT_SEED_OFFSET",
    "REGULARIZERS",
    "REGULARIZER_LABELS",
    "RESULT_FIELDS",
    "STAGES",
    "DamagedResultsWarning",
    "RunSpec",
    "TrainConfig",
    "build_regularizer",
    "format_weight",
    "plan_runs",
    "read_results",
    "run_one",
    "run_sweep",
    "train_network",
    "write_results",
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

#: Columns of the results file, in order.
RESULT_FIELDS: tuple[str, ...] = (
    "task",
    "model",
    "regularizer",
    "weight",
    "seed",
    "stage",
    "config_hash",
    "status",
    "metric",
    "val_metric",
    "test_metric",
    "val_loss",
    "best_epoch",
    "epochs",
    "seconds",
    "message",
)
_KEY_FIELDS = ("task", "model", "regularizer", "weight", "seed", "stage", "config_hash")


def format_weight(weight: float) -> str:
    """Canonical text of a weight (the form stored in results files): ``format(w, ".6g")``.

    Examples
    --------
    >>> format_weight(1e-4), format_weight(0.001), format_weight(10)
    ('0.0001', '0.001', '10')
    """
    return format(float(weight), ".6g")


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
    from .. import (
        CorrelationPenalty,
        DeathSpread,
        DeCov,
        L1Penalty,
        L2Penalty,
        TopologicalRedundancy,
    )

    _check_names([name], REGULARIZERS, "regularizers")
    return {
        "none": lambda: None,
        "l1": lambda: L1Penalty(include_biases=config.protocol == "paper"),
        "l2": lambda: L2Penalty(include_biases=config.protocol == "paper"),
        "correlation": CorrelationPenalty,
        "t1": lambda: TopologicalRedundancy(kind=config.kind, reduction=config.t1_reduction),
        "t2": lambda: DeathSpread(alpha=config.t2_alpha, kind=config.kind),
        "decov": DeCov,
    }[name]()


def _batches(m: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """``ceil(m / batch_size)`` batches of equal size ± 1 (the ``"adam"`` recipe)."""
    n_batches = max(1, math.ceil(m / batch_size))
    perm = torch.randperm(m, generator=generator)
    return list(torch.tensor_split(perm, n_batches))


def _keras_batches(m: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Batches of ``batch_size`` and a smaller last one (Keras' ``batch``, the paper recipe).

    A last batch of a single example (no correlation exists) joins the previous batch.
    """
    perm = torch.randperm(m, generator=generator)
    batches = list(torch.split(perm, batch_size))
    if len(batches) > 1 and len(batches[-1]) < 2:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


class _Diverged(Exception):
    pass


def _evaluate(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor, task_type: str
) -> tuple[float, float]:
    """(metric, loss) of ``model`` on ``(X, y)``; metric: accuracy or R²."""
    model.eval()
    with torch.no_grad():
        out = model(X)
        if task_type == "classification":
            loss = nn.functional.cross_entropy(out, y).item()
            metric = (out.argmax(dim=1) == y).double().mean().item()
        else:
            pred = out.reshape(-1)
            loss = nn.functional.mse_loss(pred, y).item()
            sst = torch.sum((y - y.mean()) ** 2).item()
            metric = 1.0 - torch.sum((pred - y) ** 2).item() / sst if sst > 0 else float("nan")
    return metric, loss


def train_network(
    spec: RunSpec,
    config: TrainConfig,
    dataset: Dataset | None = None,
    *,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> tuple[nn.Module, dict[str, object]]:
    """Train one network by the protocol and return it with its result row.

    Parameters
    ----------
    spec : RunSpec
        Which network and regulariser.
    config : TrainConfig
        The recipe (:attr:`TrainConfig.protocol`) and its settings.
    dataset : Dataset, optional
        The loaded task (loaded from ``spec.task`` and ``config`` when ``None``).
    on_epoch : callable, optional
        Called as ``on_epoch(epoch, val_metric, val_loss)`` after each epoch.

    Returns
    -------
    model : torch.nn.Module
        In eval mode, with the weights of the best validation epoch (lowest validation loss
        under ``"paper"``, highest validation metric under ``"adam"``; a diverged run returns
        the best epoch so far, if any).
    row : dict
        One row of the results file (:data:`RESULT_FIELDS`); ``status`` is ``"ok"`` or
        ``"diverged"``; a diverged row has empty metrics and a ``message``. ``val_metric`` and
        ``val_loss`` are those of the restored epoch.
    """
    from .. import AllNeurons, FewExamplesWarning, ImportanceSampling, Regularized
    from .models import keras_init_, neuron_layers

    if dataset is None:
        dataset = load_task(
            spec.task,
            seed=config.split_seed,
            fractions=config.fractions,
            data_dir=config.data_dir,
        )
    if spec.regularizer != "none" and not (spec.weight > 0 and math.isfinite(spec.weight)):
        raise ValueError(
            f"regulariser {spec.regularizer!r} needs a positive weight; got {spec.weight!r}"
        )
    paper = config.protocol == "paper"
    start = time.perf_counter()
    torch.manual_seed(spec.seed)
    model = make_model(spec.model, dataset.input_shape, dataset.n_outputs)
    if paper:
        keras_init_(model)
    reg = build_regularizer(spec.regularizer, config)
    # the paper computes the term on a second forward pass with dropout off; without dropout
    # that pass equals the training forward, which is reused
    second_pass = paper and any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules())
    regularized = None
    if spec.regularizer in ACTIVATION_REGULARIZERS:
        sampling = AllNeurons() if config.sampling_p >= 1 else ImportanceSampling(config.sampling_p)
        regularized = Regularized(
            model,
            reg,  # type: ignore[arg-type]
            spec.weight,
            layers=neuron_layers(model),
            sampling=sampling,
            positions="neurons",
            penalty_pass="eval" if second_pass else "same",
        )
    elif reg is not None:  # L1 / L2: a penalty on the model's parameters
        regularized = Regularized(model, reg, spec.weight)
    if paper:
        opt: torch.optim.Optimizer = torch.optim.SGD(
            model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=True
        )
        make_batches = _keras_batches
    else:
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
        make_batches = _batches
    # The output of a network regularised on the training pass is checked before the
    # activations (a run diverging there is told by its outputs).
    check_outputs = spec.regularizer in ACTIVATION_REGULARIZERS and not second_pass

    with warnings.catch_warnings():
        # The paper's batches hold fewer examples (256) than its networks have neurons (1010
        # for trapezium): a deliberate part of the protocol, so the m ≤ n warning would only
        # repeat itself (docs/reproducing.md discusses it).
        warnings.simplefilter("ignore", FewExamplesWarning)
        return _train_loop(
            spec,
            config,
            dataset,
            model,
            regularized,
            opt,
            make_batches,
            check_outputs=check_outputs,
            on_epoch=on_epoch,
            start=start,
        )


def _train_loop(
    spec: RunSpec,
    config: TrainConfig,
    dataset: Dataset,
    model: nn.Module,
    regularized: nn.Module | None,
    opt: torch.optim.Optimizer,
    make_batches: Callable[[int, int, torch.Generator], list[torch.Tensor]],
    *,
    check_outputs: bool,
    on_epoch: Callable[[int, float, float], None] | None,
    start: float,
) -> tuple[nn.Module, dict[str, object]]:
    """The epochs of :func:`train_network`: ``regularized`` (a :class:`topo_neurons.Regularized`
    of ``model``, or ``None`` for no regulariser) returns each batch's output and penalty."""
    from .. import NonFiniteActivationsError

    paper = config.protocol == "paper"
    gen = torch.Generator().manual_seed(spec.seed)
    classification = dataset.task_type == "classification"
    Xtr = torch.from_numpy(dataset.X_train)
    ytr = torch.from_numpy(dataset.y_train)
    Xva, yva = torch.from_numpy(dataset.X_val), torch.from_numpy(dataset.y_val)

    def task_loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if classification:
            return nn.functional.cross_entropy(out, target)
        return nn.functional.mse_loss(out.reshape(-1), target)

    def outputs_finite(module: nn.Module, args: object, out: torch.Tensor) -> None:
        # a forward hook of the training passes (evaluation ones are told by their loss): it
        # runs before the regulariser reads the recorded activations
        if module.training and not bool(torch.isfinite(out).all()):
            raise _Diverged(f"non-finite outputs at epoch {epoch}")

    best_score: tuple[float, float] | None = None  # (val_metric, -val_loss) of the best epoch
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch = 0
    stale = 0
    epoch = 0
    step = 0
    message = ""
    status = "ok"
    hook = model.register_forward_hook(outputs_finite) if check_outputs else None
    try:
        for epoch in range(1, config.max_epochs + 1):
            model.train()
            for idx in make_batches(len(ytr), config.batch_size, gen):
                xb, yb = Xtr[idx], ytr[idx]
                if paper:
                    lr = config.lr * config.lr_decay ** (step // config.lr_decay_steps)
                    for group in opt.param_groups:
                        group["lr"] = lr
                if regularized is None:
                    out, penalty = model(xb), None
                else:
                    try:
                        out, penalty = regularized(xb)  # penalty = weight · R
                    except NonFiniteActivationsError as exc:  # names layer, example, neuron
                        raise _Diverged(f"epoch {epoch}: {exc}") from exc
                loss = task_loss(out, yb)
                if penalty is not None:
                    loss = loss + penalty
                if not bool(torch.isfinite(loss)):
                    raise _Diverged(f"loss {loss.item()} at epoch {epoch}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
            val_metric, val_loss = _evaluate(model, Xva, yva, dataset.task_type)
            if not (math.isfinite(val_metric) and math.isfinite(val_loss)):
                raise _Diverged(f"validation loss {val_loss} at epoch {epoch}")
            if on_epoch is not None:
                on_epoch(epoch, val_metric, val_loss)
            score = (val_metric, -val_loss)
            if paper:  # the authors' check_early_stopping: strictly lower loss, count > patience
                improved = best_score is None or val_loss < -best_score[1]
            else:
                improved = best_score is None or score > best_score
            if improved:
                best_score, best_epoch, stale = score, epoch, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
                if (stale > config.patience) if paper else (stale >= config.patience):
                    break
    except _Diverged as exc:
        status, message = "diverged", str(exc)
    finally:
        if hook is not None:
            hook.remove()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    row: dict[str, object] = {
        "task": spec.task,
        "model": spec.model,
        "regularizer": spec.regularizer,
        "weight": format_weight(spec.weight),
        "seed": int(spec.seed),
        "stage": spec.stage,
        "config_hash": config.config_hash(),
        "status": status,
        "metric": dataset.metric,
        "val_metric": "",
        "test_metric": "",
        "val_loss": "",
        "best_epoch": best_epoch if status == "ok" else "",
        "epochs": epoch,
        "seconds": round(time.perf_counter() - start, 3),
        "message": message,
    }
    if status == "ok":
        Xte, yte = torch.from_numpy(dataset.X_test), torch.from_numpy(dataset.y_test)
        test_metric, _ = _evaluate(model, Xte, yte, dataset.task_type)
        row.update(
            val_metric=repr(best_score[0]),  # type: ignore[index]
            val_loss=repr(-best_score[1]),  # type: ignore[index]
            test_metric=repr(test_metric),
        )
    return model, row


_DATA_CACHE: dict[tuple, Dataset] = {}


def _dataset_for(task: str, config: TrainConfig) -> Dataset:
    key = (task, config.split_seed, config.fractions, config.data_dir)
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = load_task(
            task, seed=config.split_seed, fractions=config.fractions, data_dir=config.data_dir
        )
    return _DATA_CACHE[key]


def run_one(spec: RunSpec, config: TrainConfig) -> dict[str, object]:
    """Train one run with one torch thread and return its result row (for worker processes).

    Parameters
    ----------
    spec : RunSpec
    config : TrainConfig

    Returns
    -------
    dict
        The row (see :func:`train_network`).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _, row = train_network(spec, config, _dataset_for(spec.task, config))
    finally:
        torch.set_num_threads(threads)
    return row


class DamagedResultsWarning(UserWarning):
    """Rows of a results file that fail the schema or value checks (they are re-run)."""


_METRICS = ("accuracy", "r2")


def _check_row(row: dict) -> str | None:
    """Why ``row`` (a :class:`csv.DictReader` row) is damaged, or ``None`` when it is sound."""
    if None in row:
        return f"{len(RESULT_FIELDS) + len(row[None])} fields, more than the header's"
    short = [f for f in RESULT_FIELDS if row.get(f) is None]
    if short:
        return (
            f"only {len(RESULT_FIELDS) - len(short)} of {len(RESULT_FIELDS)} fields "
            f"(the row was cut before {short[0]!r})"
        )
    for name, valid in (
        ("task", TASKS),
        ("model", tuple(MODELS)),
        ("regularizer", REGULARIZERS),
        ("stage", STAGES),
        ("status", ("ok", "diverged")),
        ("metric", _METRICS),
    ):
        if row[name] not in valid:
            return f"{name} {row[name]!r} is not one of {', '.join(valid)}"
    if len(row["config_hash"]) != 10 or any(
        c not in "0123456789abcdef" for c in row["config_hash"]
    ):
        return f"config_hash {row['config_hash']!r} is not 10 hexadecimal digits"

    def number(name: str, kind: type = float) -> float | None:
        try:
            v = kind(row[name])
        except ValueError:
            return None
        return v if math.isfinite(v) else None

    weight = number("weight")
    if weight is None or weight < 0 or (weight == 0) != (row["regularizer"] == "none"):
        return f"weight {row['weight']!r} is not valid for regulariser {row['regularizer']!r}"
    for name in ("seed", "epochs"):
        v = number(name, int)
        if v is None or v < 0:
            return f"{name} {row[name]!r} is not a non-negative integer"
    sec = number("seconds")
    if sec is None or sec < 0:
        return f"seconds {row['seconds']!r} is not a non-negative number"
    if row["status"] == "ok":
        for name in ("val_metric", "test_metric", "val_loss"):
            v = number(name)
            if v is None:
                return f"{name} {row[name]!r} is not a finite number in a finished run"
            if row["metric"] == "accuracy" and name != "val_loss" and not 0 <= v <= 1:
                return f"{name} {row[name]!r} is not an accuracy in [0, 1]"
        be = number("best_epoch", int)
        if be is None or not 0 < be <= int(row["epochs"]):
            return f"best_epoch {row['best_epoch']!r} is not in 1 … epochs ({row['epochs']})"
    return None


def read_results(path: str | os.PathLike[str], *, damaged: str = "warn") -> list[dict[str, str]]:
    """Rows of a results file (empty when it does not exist), each checked on read.

    Every row is checked against the schema (:data:`RESULT_FIELDS`, no field missing or extra)
    and its values (known task, model, regulariser, stage, status and metric; numbers where
    numbers belong, finite, accuracies in [0, 1], ``best_epoch ≤ epochs``). A row that fails
    (e.g. cut by a crash mid-write, or edited by hand) is *damaged*: it is never returned, so a
    sweep re-runs it and a report never tabulates it. Files written before the ``stage`` column
    existed are read as ``stage = "select"``.

    Parameters
    ----------
    path : path-like
        A CSV written by :func:`write_results`.
    damaged : {"warn", "raise", "ignore"}
        What to do with damaged rows: a :class:`DamagedResultsWarning` naming each by its line
        in the file and the reason (the default), a :class:`ValueError` at the first one, or
        nothing.

    Returns
    -------
    list of dict
        One dict per sound row, values as text.
    """
    return _read_results(path, damaged=damaged)[0]


def _read_results(
    path: str | os.PathLike[str], *, damaged: str = "warn"
) -> tuple[list[dict[str, str]], list[tuple[int, str, str]]]:
    """``(sound rows, [(line, reason, raw text)] of damaged rows)``."""
    if damaged not in ("warn", "raise", "ignore"):
        raise ValueError(f"damaged={damaged!r} is not valid; valid are 'warn', 'raise', 'ignore'")
    path = Path(path)
    if not path.exists():
        return [], []
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    reader = csv.DictReader(io.StringIO(text, newline=""))
    fields = list(reader.fieldnames or [])
    required = [f for f in RESULT_FIELDS if f != "stage"]
    missing = [f for f in required if f not in fields]
    if missing:
        raise ValueError(
            f"{path} is not a results file: missing column(s) {', '.join(missing)} "
            f"(expected {', '.join(RESULT_FIELDS)})"
        )
    legacy = "stage" not in fields
    rows: list[dict[str, str]] = []
    bad: list[tuple[int, str, str]] = []
    first = 2
    try:
        for raw in reader:
            last = reader.line_num
            if legacy:
                raw = {**raw, "stage": "select"}
            reason = _check_row(raw)
            if reason is None:
                rows.append({f: raw[f] for f in RESULT_FIELDS})
            else:
                bad.append((first, reason, "\n".join(lines[first - 1 : last])))
            first = last + 1
    except csv.Error as exc:
        bad.append((first, f"not CSV ({exc})", "\n".join(lines[first - 1 :])))
    if bad and damaged != "ignore":
        listing = "; ".join(f"line {ln}: {why}" for ln, why, _ in bad)
        msg = (
            f"{path}: {len(bad)} damaged row(s) left out (never tabulated; a sweep re-runs "
            f"them): {listing}"
        )
        if damaged == "raise":
            raise ValueError(msg)
        warnings.warn(msg, DamagedResultsWarning, stacklevel=3)
    return rows, bad


def write_results(path: str | os.PathLike[str], rows: Sequence[dict[str, object]]) -> Path:
    """Write ``rows`` as CSV with :data:`RESULT_FIELDS`, atomically.

    Parameters
    ----------
    path : path-like
    rows : sequence of dict

    Returns
    -------
    pathlib.Path
    """
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(RESULT_FIELDS), extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow(r)
    return atomic_write_text(path, buf.getvalue())


def _row_key(row: dict[str, object]) -> tuple[str, ...]:
    return tuple(
        format_weight(float(row[f])) if f == "weight" else str(row[f]) for f in _KEY_FIELDS
    )


@dataclass
class SweepOutcome:
    """What :func:`run_sweep` did.

    Attributes
    ----------
    rows : list of dict
        Every row of the results file for this configuration and these runs (old and new).
    skipped : int
        Runs found already finished in the results file.
    ran : int
        Runs trained now.
    seconds : float
        Wall time of this call.
    """

    rows: list[dict[str, object]] = field(default_factory=list)
    skipped: int = 0
    ran: int = 0
    seconds: float = 0.0


def run_sweep(
    specs: Sequence[RunSpec],
    config: TrainConfig,
    results_path: str | os.PathLike[str],
    *,
    jobs: int = 1,
    progress: bool = True,
) -> SweepOutcome:
    """Run every spec not yet in ``results_path``; rewrite that file atomically after each run.

    Parameters
    ----------
    specs : sequence of RunSpec
        From :func:`plan_runs`.
    config : TrainConfig
    results_path : path-like
        The results CSV (created when missing). Rows of other configurations or runs are kept.
        Damaged rows (see :func:`read_results`) are reported by line, copied to
        ``<results_path>.damaged`` for the record, dropped from the file and re-run.
    jobs : int
        Parallel worker processes (each with one torch thread); 1 runs in this process.
    progress : bool
        Show a tqdm progress bar on stderr.

    Returns
    -------
    SweepOutcome
    """
    from tqdm.auto import tqdm

    if not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise ValueError(f"jobs must be a positive int; got {jobs!r}")
    start = time.perf_counter()
    chash = config.config_hash()
    sound, bad = _read_results(results_path)
    all_rows: list[dict[str, object]] = list(sound)
    if bad:  # keep the damaged lines for the record; the rewritten file leaves them out
        keep = Path(f"{results_path}.damaged")
        old = keep.read_text(encoding="utf-8") if keep.exists() else ""
        atomic_write_text(
            keep, old + "".join(f"# line {ln}: {why}\n{raw}\n" for ln, why, raw in bad)
        )
        write_results(results_path, all_rows)
    done = {_row_key(r) for r in all_rows}
    todo = [s for s in specs if s.key(chash) not in done]
    wanted = {s.key(chash) for s in specs}
    outcome = SweepOutcome(skipped=len(specs) - len(todo))
    # Load the data once here so that errors (missing files) surface before any work starts.
    for task in dict.fromkeys(s.task for s in todo):
        _dataset_for(task, config)

    bar = tqdm(total=len(todo), desc="runs", unit="run", disable=not progress or not todo)

    def record(row: dict[str, object]) -> None:
        all_rows.append(row)
        write_results(results_path, all_rows)
        outcome.ran += 1
        bar.set_postfix_str(
            f"{row['task']}/{row['model']} {row['regularizer']} λ={row['weight']} "
            f"seed {row['seed']}: {row['status']}",
            refresh=False,
        )
        bar.update(1)

    try:
        if jobs == 1 or len(todo) <= 1:
            for spec in todo:
                record(run_one(spec, config))
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, as_completed

            ctx = mp.get_context("spawn")
            with ProcessPoolExecutor(max_workers=int(jobs), mp_context=ctx) as pool:
                futures = [pool.submit(run_one, spec, config) for spec in todo]
                try:
                    for fut in as_completed(futures):
                        record(fut.result())
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
    finally:
        bar.close()
    outcome.rows = [r for r in all_rows if _row_key(r) in wanted]
    outcome.seconds = time.perf_counter() - start
    write_results(results_path, all_rows)
    return outcome
