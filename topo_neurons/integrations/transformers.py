"""The Hugging Face ``Trainer``: a topological regulariser in its loss, barcodes at evaluation.

``pip install topo_neurons[transformers]`` installs ``transformers``.

* :class:`TopologicalTrainer` is a ``transformers.Trainer`` whose ``compute_loss`` adds
  ``weight · T(activations)`` to the loss that the ``Trainer`` backpropagates, logs the penalty
  through ``Trainer.log`` (the ``log_history``, the console and every reporting integration:
  TensorBoard, W&B, …) and saves the regulariser's state (the ``refresh_every`` tree cache)
  in every checkpoint folder, restored by ``train(resume_from_checkpoint=...)``.
* :class:`BarcodeCallback` is a ``TrainerCallback`` that records the barcodes of chosen layers
  on a fixed probe batch at every evaluation (a :class:`~topo_neurons.BarcodeTracker`), logs
  their summary scalars, and keeps its :class:`~topo_neurons.BarcodeHistory` in the
  checkpoints, so that a resumed run continues it.

**How the loss is changed.** A change to the loss belongs in ``compute_loss`` (the
``Trainer``'s documented extension point; a callback only observes). The override records the
activations of the chosen layers with an :class:`~topo_neurons.ActivationRecorder` while the
``Trainer``'s own ``compute_loss`` runs the model, so the task loss, label smoothing,
``compute_loss_func`` and ``num_items_in_batch`` are the ``Trainer``'s. The penalty is added to
what it returns, scaled as the ``Trainer`` scales the loss for gradient accumulation (divided by
the number of accumulated batches when the task loss is already normalised over them), so each
optimiser step gets the mean of ``λ ∇T`` over its batches. Evaluation (``model.eval()``, no
gradient) is not regularised: ``eval_loss`` stays the task loss. Padded tokens are dropped by
the batch's ``attention_mask`` (``mask="attention_mask"``, the default; ``mask=None`` for a
model without one).

Examples
--------
>>> from transformers import TrainingArguments  # doctest: +SKIP
>>> from topo_neurons.integrations.transformers import BarcodeCallback, TopologicalTrainer
>>> trainer = TopologicalTrainer(  # doctest: +SKIP
...     model=model, args=TrainingArguments("out", eval_strategy="steps", eval_steps=100),
...     train_dataset=train, eval_dataset=valid,
...     regularizer=tn.TopologicalRedundancy(reduction="mean", refresh_every=5), weight=0.1,
...     callbacks=[BarcodeCallback(probe_batch)])
>>> trainer.train()  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from . import require

_tf = require("transformers", "transformers")

from transformers.trainer_utils import get_last_checkpoint  # noqa: E402

from ..capture import ActivationRecorder  # noqa: E402
from ..io import atomic_path  # noqa: E402
from ..training import check_activation_loss, match_checks, warn_small_batch  # noqa: E402
from ._hf_barcodes import DEAD_FILE, HISTORY_FILE, BarcodeCallback, checkpoint_dir  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from ..capture import SamplingStrategy

__all__ = ["DEAD_FILE", "HISTORY_FILE", "REGULARIZER_FILE", "BarcodeCallback", "TopologicalTrainer"]

#: The file of a checkpoint folder that holds the regulariser's state (``torch.save`` of its
#: ``state_dict()``: the cached tree of ``refresh_every``).
REGULARIZER_FILE = "topo_neurons_regularizer.pt"


def _resolve_checkpoint(resume_from_checkpoint: str | bool | None, output_dir: str) -> str | None:
    """The folder ``Trainer.train(resume_from_checkpoint=...)`` resumes from (``True``: the
    last checkpoint of ``output_dir``, as the ``Trainer`` resolves it)."""
    if resume_from_checkpoint is None or resume_from_checkpoint is False:
        return None
    if resume_from_checkpoint is True:
        return get_last_checkpoint(output_dir)
    return os.fspath(resume_from_checkpoint)


class TopologicalTrainer(_tf.Trainer):
    """A ``transformers.Trainer`` whose training loss is ``task loss + weight · T``.

    Takes every argument of ``transformers.Trainer`` plus the keyword-only ones below.

    Parameters
    ----------
    *args
        ``transformers.Trainer``'s positional arguments (``model``, ``args``, …).
    regularizer : torch.nn.Module
        An activation loss, ``(m, n) → scalar``: :class:`~topo_neurons.TopologicalRedundancy`,
        :class:`~topo_neurons.DeathSpread`, :class:`~topo_neurons.CorrelationPenalty`,
        :class:`~topo_neurons.DeCov` (weight penalties: use the optimiser's weight decay).
    weight : float, default 1.0
        The factor ``λ ≥ 0``.
    layers : str, module or sequence of them, optional
        Layers whose neurons are regularised, by name as in ``model.named_modules()``
        (default: :class:`~topo_neurons.ActivationRecorder`'s: in a model with attention
        blocks, the hidden layer of each block's MLP after its activation — a GPT-2 block's
        ``mlp.c_fc`` after its GELU, and no other layer; elsewhere every leaf layer with
        parameters).
    sampling : sampling strategy, optional
        Neuron sampling (default: all neurons).
    mask : str or None, default "attention_mask"
        The batch entry whose zeros mark padded tokens (dropped from the examples); ``None``
        for a model without one. A batch without that entry is a ``ValueError``.
    log_name : str or None, default "topo_penalty"
        Key of the penalty in the training logs: the mean of ``weight · T`` over the training
        batches since the last log (averaged over processes). ``None``: not logged.
    **kwargs
        ``transformers.Trainer``'s keyword arguments (``model``, ``args``, ``train_dataset``,
        ``callbacks``, …; ``model`` must be given, not ``model_init``: its layers are resolved
        here), and the :class:`~topo_neurons.ActivationRecorder` options ``point=``,
        ``positions=``, ``batch_dim=``, ``select_output=``.

    Attributes
    ----------
    regularizer : torch.nn.Module
        Its ``state_dict()`` (the ``refresh_every`` cache) is written to
        :data:`REGULARIZER_FILE` in every checkpoint folder (by the main process) and read back
        by :meth:`train` with ``resume_from_checkpoint``.
    last_penalty : torch.Tensor or None
        ``weight · T`` of the last training batch (detached).
    """

    #: Keywords of ``ActivationRecorder`` accepted beside the ``Trainer``'s.
    _RECORDER_OPTIONS = ("point", "positions", "batch_dim", "select_output")

    def __init__(
        self,
        *args: Any,
        regularizer: nn.Module,
        weight: float = 1.0,
        layers: str | nn.Module | Iterable[str | nn.Module] | None = None,
        sampling: SamplingStrategy | None = None,
        mask: str | None = "attention_mask",
        log_name: str | None = "topo_penalty",
        **kwargs: Any,
    ) -> None:
        check_activation_loss(
            regularizer, weight, weight_penalties="use the optimiser's weight_decay"
        )
        if mask is not None and (not isinstance(mask, str) or not mask):
            raise TypeError(f"mask must be the name of a batch entry or None; got {mask!r}")
        if log_name is not None and (not isinstance(log_name, str) or not log_name):
            raise ValueError(f"log_name must be a non-empty str or None; got {log_name!r}")
        recorder_options = {k: kwargs.pop(k) for k in self._RECORDER_OPTIONS if k in kwargs}
        super().__init__(*args, **kwargs)
        if self.model is None:
            raise ValueError("TopologicalTrainer needs model= (model_init is not supported)")
        if self.args.n_gpu > 1:
            raise ValueError(
                f"TopologicalTrainer: {self.args.n_gpu} GPUs in one process (torch DataParallel) "
                "would record each replica's activations in its own thread; run one process "
                "per GPU instead (torchrun / accelerate launch: DistributedDataParallel)"
            )
        self.regularizer = regularizer
        self.weight = float(weight)
        self.log_name = log_name
        self.recorder = ActivationRecorder(
            self.model, layers, sampling=sampling, mask=mask, **recorder_options
        )
        self.recorder._warn_few_examples = False  # warned once below, with the advice
        self.last_penalty: torch.Tensor | None = None
        self._penalty_sum: torch.Tensor | None = None
        self._penalty_count = 0
        self._warned_small_batch = False
        self.add_callback(_RegularizerCheckpoint(self))

    # ---------------------------------------------------------------- the loss
    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """The ``Trainer``'s loss plus ``weight · T`` of the activations of this batch.

        The penalty is added in training only (the model in training mode, gradients on); its
        share of the loss is scaled for gradient accumulation as the ``Trainer`` scales the
        task loss (see the module docstring).
        """
        if not (model.training and torch.is_grad_enabled()):
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
        rec = self.recorder
        try:
            with rec:
                loss, outputs = super().compute_loss(
                    model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
                )
            match_checks(rec, self.regularizer)
            A = rec.activations()
            if not self._warned_small_batch:
                self._warned_small_batch = warn_small_batch(
                    "TopologicalTrainer", A, self.regularizer, 4
                )
            if getattr(self.regularizer, "refresh_every", 1) > 1:
                value = self.regularizer(A, selection=rec.selection())
            else:
                value = self.regularizer(A)
        finally:
            rec.clear()  # release the activations and their graph
        penalty = self.weight * value
        self.last_penalty = penalty.detach()
        self._penalty_sum = (
            self.last_penalty
            if self._penalty_sum is None
            else self._penalty_sum + self.last_penalty
        )
        self._penalty_count += 1
        loss = loss + penalty / self._accumulation_divisor(num_items_in_batch)
        return (loss, outputs) if return_outputs else loss

    def _accumulation_divisor(self, num_items_in_batch: torch.Tensor | int | None) -> int:
        """What the penalty is divided by so that, after the ``Trainer``'s own scaling of the
        loss for gradient accumulation, each accumulated batch contributes ``λ T / k``."""
        scaled = getattr(self, "loss_is_scaled_for_ga", None)
        if scaled is None:  # the Trainer's own rule (training_step)
            scaled = (
                getattr(self, "model_accepts_loss_kwargs", False) and num_items_in_batch is not None
            ) or getattr(self, "compute_loss_func", None) is not None
        return int(getattr(self, "current_gradient_accumulation_steps", 1)) if scaled else 1

    # ---------------------------------------------------------------- logging
    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        """``Trainer.log`` with the mean penalty since the last log added to training logs
        (those with a ``"loss"`` entry) under :attr:`log_name`."""
        if self.log_name is not None and "loss" in logs and self._penalty_count:
            mean = self._penalty_sum / self._penalty_count
            if getattr(self.args, "world_size", 1) > 1:
                mean = self.accelerator.reduce(mean.reshape(1), reduction="mean")
            logs[self.log_name] = float(mean.reshape(()))
            self._penalty_sum, self._penalty_count = None, 0
        super().log(logs, *args, **kwargs)

    # ---------------------------------------------------------------- checkpoints
    def train(
        self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any
    ) -> Any:
        """``Trainer.train``; with ``resume_from_checkpoint``, the regulariser's state (and
        the history of every :class:`BarcodeCallback`) is first read from that checkpoint.

        A checkpoint without :data:`REGULARIZER_FILE` (written by a plain ``Trainer``) starts
        the regulariser afresh (its next training call searches a new tree).
        """
        folder = _resolve_checkpoint(resume_from_checkpoint, self.args.output_dir)
        if folder is not None:
            path = Path(folder) / REGULARIZER_FILE
            if path.is_file():
                state = torch.load(path, map_location="cpu", weights_only=True)
                self.regularizer.load_state_dict(state)
            elif hasattr(self.regularizer, "refresh"):
                self.regularizer.refresh()
            for cb in self.callback_handler.callbacks:
                if isinstance(cb, BarcodeCallback):
                    cb.load_checkpoint(folder)
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def save_regularizer(self, folder: str | os.PathLike[str]) -> Path:
        """Write the regulariser's ``state_dict()`` to ``folder``/:data:`REGULARIZER_FILE`
        (atomically); returns the path."""
        target = Path(folder) / REGULARIZER_FILE
        with atomic_path(target) as tmp:
            torch.save(self.regularizer.state_dict(), tmp)
        return target


class _RegularizerCheckpoint(_tf.TrainerCallback):
    """Writes a :class:`TopologicalTrainer`'s regulariser state into each checkpoint folder."""

    def __init__(self, trainer: TopologicalTrainer) -> None:
        self.trainer = trainer

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        folder = checkpoint_dir(args, state)
        if folder is not None:
            self.trainer.save_regularizer(folder)
