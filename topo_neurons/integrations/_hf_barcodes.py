"""The Hugging Face ``Trainer``'s barcode callback and the checkpoint files of the integration.

Imported by :mod:`topo_neurons.integrations.transformers`, which re-exports
:class:`BarcodeCallback`; ``transformers`` must be installed.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from . import require

_tf = require("transformers", "transformers")

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR  # noqa: E402

from ..capture import AllNeurons  # noqa: E402
from ..correlation import check_kind  # noqa: E402
from ..io import atomic_write_text  # noqa: E402
from ..persistence import Barcode  # noqa: E402
from ..tracking import BarcodeHistory, BarcodeTracker, barcode_scalars  # noqa: E402
from ..tracking._tracker import check_batch  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from ..capture import SamplingStrategy
    from ..tracking import SummaryWriterLike

__all__ = ["DEAD_FILE", "HISTORY_FILE", "BarcodeCallback", "checkpoint_dir"]

#: The file of a checkpoint folder that holds a :class:`BarcodeCallback`'s history.
HISTORY_FILE = "topo_neurons_barcodes.npz"
#: Beside it, the dead-neuron counts (JSON).
DEAD_FILE = "topo_neurons_dead_neurons.json"


def checkpoint_dir(args: Any, state: Any) -> Path | None:
    """The folder the ``Trainer`` just saved (``{output_dir}/checkpoint-{global_step}``), or
    ``None`` (with a warning) where it is not there (e.g. a hyper-parameter search's run
    folder)."""
    folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
    if folder.is_dir():
        return folder
    warnings.warn(
        f"topo_neurons: no checkpoint folder {str(folder)!r} to save into; the regulariser's "
        "and the barcodes' state are not in this checkpoint",
        stacklevel=3,
    )
    return None


class BarcodeCallback(_tf.TrainerCallback):
    """Record the barcodes of chosen layers on a fixed probe batch at every evaluation.

    At each evaluation (``on_evaluate``; once per ``global_step``) the model runs once on
    ``probe`` in eval mode without gradient (a :class:`~topo_neurons.BarcodeTracker`); each
    layer's barcode is appended to :attr:`history` at the current ``global_step``, and its
    summary scalars ``{tag}/{layer}/{s}`` (:data:`topo_neurons.tracking.SUMMARY_SCALARS`, plus
    ``dead_neurons``) are added to the evaluation metrics (what ``Trainer.evaluate`` returns)
    and to ``state.log_history``. With ``writer=`` (a ``SummaryWriter``) the death histograms
    and barcode figures are logged too.

    At each checkpoint the main process writes the history into the checkpoint folder
    (:data:`HISTORY_FILE`, :data:`DEAD_FILE`); a resumed run reads it back (by
    :class:`TopologicalTrainer.train`, or, under a plain ``Trainer``, at ``on_train_begin``
    from ``{output_dir}/checkpoint-{global_step}``), so the history continues from the
    checkpoint: records made after it by the interrupted run are dropped.

    Parameters
    ----------
    probe : torch.Tensor or mapping of str to torch.Tensor
        A fixed batch (``m ≥ 2`` examples): the model's keyword arguments
        (``{"input_ids": …, "attention_mask": …}``) or one input tensor.
    layers : sequence of str, optional
        Layers to track (default: :class:`~topo_neurons.ActivationRecorder`'s).
    kind : {"abs", "sqrt"}, default "abs"
    sampling : sampling strategy, optional
    network : bool, default False
        Also the whole network's barcode, as layer ``"network"``.
    tag : str, default "barcodes"
    mask : str or None, default "attention_mask"
        The probe entry whose zeros mark padded tokens (``None``: no mask).
    writer : SummaryWriter, optional
        Also log histograms and figures (see :func:`topo_neurons.tracking.log_barcodes`).
    forward_fn : callable, optional
        ``forward_fn(model, probe)`` runs the model (default: ``model(**probe)`` or
        ``model(probe)``).
    **recorder_options
        Passed to :class:`~topo_neurons.ActivationRecorder`.

    Attributes
    ----------
    history : BarcodeHistory
    dead_neurons : dict of str to list of int
        Per layer, the number of neurons constant over the probe at each record.
    """

    def __init__(
        self,
        probe: torch.Tensor | Mapping[str, Any],
        layers: Sequence[str] | None = None,
        *,
        kind: str = "abs",
        sampling: SamplingStrategy | None = None,
        network: bool = False,
        tag: str = "barcodes",
        mask: str | None = "attention_mask",
        writer: SummaryWriterLike | None = None,
        forward_fn: Callable[[nn.Module, Any], Any] | None = None,
        **recorder_options: Any,
    ) -> None:
        check_batch(probe, "probe")
        if not isinstance(tag, str) or not tag:
            raise ValueError(f"tag must be a non-empty str; got {tag!r}")
        if mask is not None and not isinstance(probe, Mapping):
            mask = None  # a tensor probe has no named mask
        self.probe = probe
        self.layers = layers if layers is None or isinstance(layers, str) else list(layers)
        self.kind = check_kind(kind)
        self.sampling = AllNeurons() if sampling is None else sampling
        self.network = bool(network)
        self.tag = tag
        self.mask = mask
        self.writer = writer
        self.forward_fn = forward_fn
        self.recorder_options = dict(recorder_options)
        self.history = BarcodeHistory()
        self.dead_neurons: dict[str, list[int]] = {}
        self._tracker: BarcodeTracker | None = None
        self._loaded_from: str | None = None

    def _tracker_for(self, model: nn.Module) -> BarcodeTracker:
        if self._tracker is None or self._tracker.model is not model:
            tracker = BarcodeTracker(
                model,
                self.layers,
                kind=self.kind,
                sampling=self.sampling,
                network=self.network,
                writer=self.writer,
                tag=self.tag,
                forward_fn=self.forward_fn,
                mask=self.mask,
                **self.recorder_options,
            )
            tracker.history, tracker.dead_neurons = self.history, self.dead_neurons
            self._tracker = tracker
        return self._tracker

    def record(self, model: nn.Module, step: int) -> dict[str, float]:
        """Record the barcodes of ``model`` on the probe at ``step``; returns the scalars."""
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        probe = self.probe
        if isinstance(probe, Mapping):
            probe = {
                k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in probe.items()
            }
        else:
            probe = probe.to(device)
        barcodes = self._tracker_for(model).record(probe, step=step)
        scalars: dict[str, float] = {}
        for name, bc in barcodes.items():
            for key, value in barcode_scalars(bc).items():
                scalars[f"{self.tag}/{name}/{key}"] = value
            scalars[f"{self.tag}/{name}/dead_neurons"] = float(self.dead_neurons[name][-1])
        return scalars

    # ---------------------------------------------------------------- events
    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: dict | None = None, **kwargs: Any
    ) -> None:
        step = int(state.global_step)
        if self.history.steps and self.history.steps[-1] == step:
            return  # one record per step (several evaluation sets)
        model = kwargs.get("model")
        if model is None:
            return
        scalars = self.record(model, step)
        if metrics is not None:
            metrics.update(scalars)
        state.log_history.append({**scalars, "step": step})

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        folder = checkpoint_dir(args, state)
        if folder is not None:
            self.save_checkpoint(folder)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # Under a plain Trainer, a resumed run: read the history of the checkpoint it resumed
        # from, where the Trainer keeps it (TopologicalTrainer.train has done it already).
        if state.global_step > 0 and self._loaded_from is None:
            name = f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            folder = Path(args.output_dir) / name
            if (folder / HISTORY_FILE).is_file():
                self.load_checkpoint(folder)

    # ---------------------------------------------------------------- files
    def save_checkpoint(self, folder: str | os.PathLike[str]) -> None:
        """Write :attr:`history` and :attr:`dead_neurons` into ``folder`` (atomically)."""
        folder = Path(folder)
        if self.history.steps:
            self.history.save(folder / HISTORY_FILE)
        atomic_write_text(folder / DEAD_FILE, json.dumps(self.dead_neurons))

    def load_checkpoint(self, folder: str | os.PathLike[str]) -> None:
        """Replace :attr:`history` by the one saved in ``folder`` (empty where none was)."""
        folder = Path(folder)
        path = folder / HISTORY_FILE
        loaded = BarcodeHistory.load(path) if path.is_file() else BarcodeHistory()
        self.history.steps[:] = loaded.steps
        self.history.barcodes.clear()
        self.history.barcodes.update(loaded.barcodes)
        self.dead_neurons.clear()
        if (folder / DEAD_FILE).is_file():
            dead = json.loads((folder / DEAD_FILE).read_text())
            self.dead_neurons.update({k: [int(c) for c in v] for k, v in dead.items()})
        self._loaded_from = str(folder)

    @property
    def barcodes(self) -> dict[str, list[Barcode]]:
        """``history.barcodes``: per layer, one barcode per evaluation."""
        return self.history.barcodes
