"""Recording the barcodes of chosen layers every few training steps: :class:`BarcodeTracker`."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._modes import eval_mode
from ..capture import ActivationRecorder, AllNeurons, SamplingStrategy
from ..correlation import check_kind, constant_neurons, correlation_dissimilarity
from ..persistence import Barcode, zero_persistence
from ._history import BarcodeHistory
from ._tensorboard import SummaryWriterLike, log_barcodes

__all__ = ["NETWORK", "BarcodeTracker", "Batch", "check_batch", "run_forward"]

#: One input batch: a tensor (``model(x)``) or a mapping of the model's keyword arguments
#: (``model(**x)``, e.g. a Hugging Face tokenizer's ``{"input_ids": …, "attention_mask": …}``).
Batch = torch.Tensor | Mapping[str, Any]


def check_batch(x: object, what: str = "batch") -> None:
    """A batch of at least 2 examples: a tensor, or a mapping holding tensors (keyword
    arguments); ``TypeError`` / ``ValueError`` naming ``what`` otherwise."""
    if isinstance(x, Mapping):
        tensors = [v for v in x.values() if isinstance(v, torch.Tensor)]
        if not tensors:
            raise TypeError(
                f"{what} as a mapping must hold the model's keyword arguments as tensors "
                f"(e.g. {{'input_ids': ..., 'attention_mask': ...}}); got keys {list(x)}"
            )
        first = tensors[0]
    elif isinstance(x, torch.Tensor):
        first = x
    else:
        raise TypeError(
            f"{what} must be a torch.Tensor batch or a mapping of the model's keyword "
            f"arguments (tensors); got {type(x).__name__}"
        )
    if first.ndim < 1 or first.shape[0] < 2:
        raise ValueError(
            f"{what} must be a batch of at least 2 examples; got shape {tuple(first.shape)}"
        )


def run_forward(
    model: torch.nn.Module,
    x: Batch,
    forward_fn: Callable[[torch.nn.Module, Batch], Any] | None = None,
) -> None:
    """Run ``model`` on batch ``x``: ``forward_fn(model, x)`` if given, else ``model(**x)``
    for a mapping and ``model(x)`` for a tensor."""
    if forward_fn is not None:
        forward_fn(model, x)
    elif isinstance(x, Mapping):
        model(**x)
    elif isinstance(x, torch.Tensor):
        model(x)
    else:
        raise TypeError(
            "a batch must be a tensor (model(x)) or a mapping of the model's keyword arguments "
            f"(model(**x), e.g. {{'input_ids': ..., 'attention_mask': ...}}); got "
            f"{type(x).__name__}"
        )


#: Key of the whole-network barcode when a tracker records it (``network=True``).
NETWORK = "network"


class BarcodeTracker:
    """Record the barcode of chosen layers every ``every`` training steps.

    Call :meth:`step` once per training step with a batch (usually a fixed probe batch, so that
    changes come from the weights, not the data). On every ``every``-th call (the first
    included) the model runs once on it in eval mode under ``torch.no_grad()`` (training mode is
    restored; batch-norm statistics are not touched), the activations are recorded detached by an
    :class:`~topo_neurons.ActivationRecorder`, and each layer's barcode is computed with the
    native backend. Nothing is kept but the barcodes: the cost is one forward pass and one
    ``O(n²)`` correlation + MST per layer per record. If the training loop already records the
    activations, :meth:`record_activations` adds them without a second forward.

    Parameters
    ----------
    model : torch.nn.Module
    layers : sequence of str or modules, optional
        Layers to track (default: every leaf module with parameters).
    every : int, default 10
        Record on calls ``0, every, 2·every, …`` of :meth:`step`.
    kind : {"abs", "sqrt"}, default "abs"
        Dissimilarity.
    sampling : sampling strategy, optional
        Neuron sampling (default :class:`~topo_neurons.AllNeurons`).
    network : bool, default False
        Also track the whole network's barcode (all tracked layers together) as ``"network"``.
    writer : torch.utils.tensorboard.SummaryWriter, optional
        Log every record to TensorBoard with :func:`log_barcodes` (scalars, death histograms,
        barcode figures) under ``tag``.
    tag : str, default "barcodes"
        Prefix of the TensorBoard tags.
    figures : bool, default True
        Whether to log the barcode figures to ``writer`` (drawing costs ~0.1 s per layer).
    forward_fn : callable, optional
        ``forward_fn(model, batch)`` runs the model on a batch (default: ``model(batch)``, or
        ``model(**batch)`` for a mapping such as a Hugging Face tokenizer's output).
    **recorder_options
        Passed to :class:`~topo_neurons.ActivationRecorder` (``point=``, ``positions=``, …).

    Attributes
    ----------
    history : BarcodeHistory
        Steps and per-layer barcodes recorded so far.
    dead_neurons : dict of str to list of int
        Per layer (and ``"network"``), the number of dead neurons at each record, aligned with
        ``history.steps``: neurons constant over the batch
        (:func:`~topo_neurons.constant_neurons`, the definition
        :func:`~topo_neurons.analyse` reports), which count as uncorrelated with every other
        neuron (``d = 1``, the largest death), so the death statistics alone hide them. Logged
        to ``writer`` as ``{tag}/{layer}/dead_neurons``. Kept in memory (not in
        :meth:`save`'s file).

    Examples
    --------
    >>> import torch, topo_neurons as tn
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> tracker = tn.BarcodeTracker(model, every=5)
    >>> probe = torch.randn(64, 4)
    >>> for step in range(12):
    ...     _ = tracker.step(probe)          # training would happen here
    >>> tracker.history.steps, tracker.history.layers
    ([0, 5, 10], ('0', '2'))
    """

    def __init__(
        self,
        model: torch.nn.Module,
        layers: Sequence[str | torch.nn.Module] | None = None,
        every: int = 10,
        *,
        kind: str = "abs",
        sampling: SamplingStrategy | None = None,
        network: bool = False,
        writer: SummaryWriterLike | None = None,
        tag: str = "barcodes",
        figures: bool = True,
        forward_fn: Callable[[torch.nn.Module, Batch], Any] | None = None,
        **recorder_options: Any,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"every must be a positive int; got {every!r}")
        self.model = model
        self.every = int(every)
        self.kind = check_kind(kind)
        self.sampling = AllNeurons() if sampling is None else sampling
        self.network = bool(network)
        if writer is not None and not callable(getattr(writer, "add_scalar", None)):
            raise TypeError(
                "writer must be a torch.utils.tensorboard.SummaryWriter; got "
                f"{type(writer).__name__}"
            )
        if not isinstance(tag, str) or not tag:
            raise ValueError(f"tag must be a non-empty str; got {tag!r}")
        self.writer, self.tag, self.figures = writer, tag, bool(figures)
        if forward_fn is not None and not callable(forward_fn):
            raise TypeError(f"forward_fn must be callable; got {type(forward_fn).__name__}")
        self.forward_fn = forward_fn
        # Resolves the layer names now: an unknown layer fails here, not mid-training.
        if "detach" in recorder_options:
            raise ValueError("BarcodeTracker always records detached activations; drop detach=")
        self._recorder = ActivationRecorder(
            model, layers=layers, sampling=self.sampling, detach=True, **recorder_options
        )
        self.history = BarcodeHistory()
        self.dead_neurons: dict[str, list[int]] = {}
        self._calls = 0

    def __repr__(self) -> str:
        return f"BarcodeTracker(every={self.every}, kind={self.kind!r}, {self.history!r})"

    def step(self, x: Batch, step: int | None = None) -> bool:
        """Count one training step; on every ``every``-th, record the barcodes on batch ``x``.

        Parameters
        ----------
        x : torch.Tensor of shape (m, ...), or mapping of str to tensors
            Input batch (``m ≥ 2``): a tensor (``model(x)``) or the model's keyword arguments
            (``model(**x)``, e.g. ``{"input_ids": …, "attention_mask": …}`` with
            ``mask="attention_mask"`` to drop padded tokens).
        step : int, optional
            The step number stored in the history (default: the number of calls so far).

        Returns
        -------
        bool
            Whether this call recorded.
        """
        call = self._calls
        self._calls += 1
        if call % self.every:
            return False
        self.record(x, step=call if step is None else step)
        return True

    def record(self, x: Batch, step: int | None = None) -> dict[str, Barcode]:
        """Record the barcodes on batch ``x`` now (whatever the step count).

        Returns
        -------
        dict of str to Barcode
            The barcodes just appended to :attr:`history`.
        """
        model = self.model
        try:
            with eval_mode(model), torch.no_grad(), self._recorder as rec:
                run_forward(model, x, self.forward_fn)
                per_layer = rec.per_layer()
        finally:
            self._recorder.clear()
        return self.record_activations(per_layer, step)

    def record_activations(
        self, per_layer: Mapping[str, torch.Tensor], step: int | None = None
    ) -> dict[str, Barcode]:
        """Record barcodes from activations already captured (no extra forward).

        Parameters
        ----------
        per_layer : mapping of str to torch.Tensor, each of shape (m, n_layer)
            E.g. ``ActivationRecorder.per_layer()`` of the training step (detached here).
        step : int, optional
            Step number (default: the number of records so far).

        Returns
        -------
        dict of str to Barcode
        """
        if not per_layer:
            raise ValueError("per_layer is empty: no activations to record")
        out: dict[str, Barcode] = {}
        dead: dict[str, int] = {}
        for name, a in per_layer.items():
            D = correlation_dissimilarity(a.detach(), kind=self.kind)
            out[str(name)] = zero_persistence(D, backend="native")
            dead[str(name)] = len(constant_neurons(a.detach()))
        if self.network:
            A = torch.cat([a.detach() for a in per_layer.values()], dim=1)
            out[NETWORK] = zero_persistence(
                correlation_dissimilarity(A, kind=self.kind), backend="native"
            )
            dead[NETWORK] = sum(dead.values())
        step = len(self.history) if step is None else int(step)
        self.history.append(step, out)
        for name, count in dead.items():
            self.dead_neurons.setdefault(name, []).append(count)
        if self.writer is not None:
            log_barcodes(self.writer, out, step, tag=self.tag, figures=self.figures)
            for name, count in dead.items():
                self.writer.add_scalar(f"{self.tag}/{name}/dead_neurons", count, step)
        return out

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save :attr:`history` (see :meth:`BarcodeHistory.save`)."""
        return self.history.save(path)

    @staticmethod
    def load(path: str | os.PathLike[str]) -> BarcodeHistory:
        """Load a saved history (see :meth:`BarcodeHistory.load`)."""
        return BarcodeHistory.load(path)
