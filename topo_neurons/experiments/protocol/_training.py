"""One training run of the protocol: :func:`train_network`, on `topo_neurons.Regularized`."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from .._threads import one_torch_thread
from ..data import Dataset, load_task
from ..models import keras_init_, make_model, neuron_layers
from ._config import ACTIVATION_REGULARIZERS, RunSpec, TrainConfig, build_regularizer, format_weight

if TYPE_CHECKING:  # pragma: no cover
    from ... import Regularized

__all__ = ["RunFailedError", "run_one", "train_network"]


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


class RunFailedError(RuntimeError):
    """A run of the sweep failed with an error that is not a divergence (a bug to report).

    The message names the run (task, model, regulariser, weight, seed, stage) and the error;
    the original exception is its ``__cause__``. Finished runs are already in the results
    file, so the same command resumes after a fix.
    """


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
    regularizer: nn.Module | None = None,
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
    regularizer : torch.nn.Module, optional
        The loss module to use instead of ``build_regularizer(spec.regularizer, config)``
        (a variant the protocol's names do not cover, e.g. ``benchmarks/dead_neurons.py``);
        ``spec.regularizer`` still says how it is applied (activations or weights).

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
    from ... import AllNeurons, FewExamplesWarning, ImportanceSampling, Regularized

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
    reg = build_regularizer(spec.regularizer, config) if regularizer is None else regularizer
    # the paper computes the term on a second forward pass with dropout off; without dropout
    # that pass equals the training forward, which is reused
    second_pass = paper and any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules())
    regularized: Regularized | None = None
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
    regularized: Regularized | None,
    opt: torch.optim.Optimizer,
    make_batches: Callable[[int, int, torch.Generator], list[torch.Tensor]],
    *,
    check_outputs: bool,
    on_epoch: Callable[[int, float, float], None] | None,
    start: float,
) -> tuple[nn.Module, dict[str, object]]:
    """Run the epochs of :func:`train_network`; return the restored model and its row.

    ``regularized`` (a :class:`topo_neurons.Regularized` of ``model``, or ``None`` for no
    regulariser) returns each batch's output and ``weight · R``. With ``check_outputs`` a
    non-finite training output ends the run before the regulariser reads the activations.
    """
    from ... import NonFiniteActivationsError

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

    Raises
    ------
    RunFailedError
        Training raised (a divergence is not an error: it is a ``"diverged"`` row).
    """
    try:
        with one_torch_thread():
            _, row = train_network(spec, config, _dataset_for(spec.task, config))
    except Exception as exc:
        raise RunFailedError(
            f"run {spec.task}/{spec.model} {spec.regularizer} λ={format_weight(spec.weight)} "
            f"seed {spec.seed} ({spec.stage}) failed: {type(exc).__name__}: {exc}"
        ) from exc
    return row
