"""Lightning callbacks: a topological regulariser in the training loss, barcodes in the logs.

``pip install topo_neurons[lightning]`` installs Lightning and TensorBoard.

* :class:`TopologicalRegularization` adds ``weight · T(activations)`` to the loss that a
  ``LightningModule``'s ``training_step`` returns, so that it is backpropagated with it.
* :class:`BarcodeLogger` records the barcodes of chosen layers on a fixed probe batch every
  ``N`` epochs and logs them through ``trainer.loggers``.

**How the loss is changed.** Under automatic optimisation Lightning backpropagates the loss
*inside* its optimiser closure, right after ``training_step`` returns, before any
``on_train_batch_end`` hook runs: a callback that edits the loss afterwards is too late, and
one that adds a second ``backward`` would double the work. So :class:`TopologicalRegularization`
wraps the module's ``training_step`` for the duration of the fit (``on_fit_start`` installs the
wrapper on the instance, ``on_fit_end``/``teardown`` removes it; the class is not touched): the
wrapper records the activations of the chosen layers with an
:class:`~topo_neurons.ActivationRecorder` while the original ``training_step`` runs its
forward, then returns ``loss + weight · T`` (for a dict output, its ``"loss"`` entry). The
gradient of the penalty therefore flows in Lightning's own ``backward`` (and through DDP,
precision plugins and gradient accumulation like the task loss). Every forward that
``training_step`` runs is recorded; a step that runs the model on two batches needs
``layers`` that see one of them, or a manual loop.

Examples
--------
>>> import lightning.pytorch as pl  # doctest: +SKIP
>>> from topo_neurons.integrations.lightning import BarcodeLogger, TopologicalRegularization
>>> reg = TopologicalRegularization(  # doctest: +SKIP
...     tn.TopologicalRedundancy(reduction="mean", refresh_every=5), weight=0.1,
...     layers=["net.relu1", "net.relu2", "net.out"])
>>> bars = BarcodeLogger(probe_batch, every_n_epochs=1)  # doctest: +SKIP
>>> pl.Trainer(callbacks=[reg, bars]).fit(module, loader)  # doctest: +SKIP
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import torch
from torch import nn

from . import require

_pl = require("lightning.pytorch", "lightning")

from ..capture import ActivationRecorder, AllNeurons  # noqa: E402
from ..capture._trace import defines_no_forward  # noqa: E402
from ..correlation import check_kind  # noqa: E402
from ..persistence import Barcode  # noqa: E402
from ..tracking import BarcodeHistory, BarcodeTracker, barcode_scalars, log_barcodes  # noqa: E402
from ..tracking._tracker import check_batch  # noqa: E402
from ..training import check_activation_loss, match_checks, warn_small_batch  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    import lightning.pytorch as pl

    from ..capture import SamplingStrategy

__all__ = ["BarcodeLogger", "TopologicalRegularization"]

#: What a ``training_step`` returns: the loss, or a mapping with a ``"loss"`` entry.
StepOutput: TypeAlias = torch.Tensor | Mapping[str, Any]

Callback = _pl.Callback


def _check_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} is not valid; it must be an int ≥ 1")
    return value


class TopologicalRegularization(Callback):
    """Add ``weight · regularizer(activations)`` to a LightningModule's training loss.

    Parameters
    ----------
    regularizer : torch.nn.Module
        An activation loss, ``(m, n) → scalar``: :class:`~topo_neurons.TopologicalRedundancy`,
        :class:`~topo_neurons.DeathSpread`, :class:`~topo_neurons.CorrelationPenalty`,
        :class:`~topo_neurons.DeCov` (weight penalties need no callback: add them to the loss
        or use the optimiser's weight decay).
    weight : float, default 1.0
        The factor ``λ ≥ 0``.
    layers : str, module or sequence of them, optional
        Layers of the LightningModule whose neurons are regularised, by name as in
        ``module.named_modules()`` (default: :class:`~topo_neurons.ActivationRecorder`'s).
    sampling : sampling strategy, optional
        Neuron sampling (default: all neurons).
    every_n_steps : int, default 1
        Add the penalty on training steps ``0, N, 2N, …`` (Lightning's ``global_step``); the
        other steps run unchanged (no recording).
    log_name : str or None, default "topo/penalty"
        Name under which ``weight · T`` is logged with ``LightningModule.log`` (on step and on
        epoch) when it is computed; ``None``: not logged.
    **recorder_options
        Passed to :class:`~topo_neurons.ActivationRecorder` (e.g. ``point=``, ``positions=``).

    Notes
    -----
    The wrapper is installed on the module instance at ``on_fit_start`` and removed at
    ``on_fit_end`` (or ``teardown``); see the module docstring for why. :meth:`state_dict`
    keeps the regulariser's state (e.g. the cached tree of ``refresh_every``) across a resumed
    fit.
    """

    def __init__(
        self,
        regularizer: nn.Module,
        weight: float = 1.0,
        *,
        layers: str | nn.Module | Iterable[str | nn.Module] | None = None,
        sampling: SamplingStrategy | None = None,
        every_n_steps: int = 1,
        log_name: str | None = "topo/penalty",
        **recorder_options: Any,
    ) -> None:
        super().__init__()
        check_activation_loss(
            regularizer,
            weight,
            weight_penalties="they take the model: add them to the loss in training_step",
        )
        if log_name is not None and (not isinstance(log_name, str) or not log_name):
            raise ValueError(f"log_name must be a non-empty str or None; got {log_name!r}")
        self.regularizer = regularizer
        self.weight = float(weight)
        self.layers = layers
        self.sampling = sampling
        self.every_n_steps = _check_positive_int(every_n_steps, "every_n_steps")
        self.log_name = log_name
        self.recorder_options = dict(recorder_options)
        self._recorder: ActivationRecorder | None = None
        self._wrapped: Callable[..., StepOutput] | None = None
        self.last_penalty: torch.Tensor | None = None

    # ---------------------------------------------------------------- hooks
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.regularizer.to(pl_module.device)
        self._recorder = ActivationRecorder(
            pl_module, self.layers, sampling=self.sampling, **self.recorder_options
        )
        self._install(trainer, pl_module)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._uninstall(pl_module)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._uninstall(pl_module)

    def state_dict(self) -> dict[str, Any]:
        return {"regularizer": self.regularizer.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.regularizer.load_state_dict(state_dict["regularizer"])

    # ---------------------------------------------------------------- the wrapper
    def _install(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._wrapped is not None:
            return
        original = pl_module.training_step  # the bound method of the class
        callback = self

        @functools.wraps(original)
        def training_step(*args: Any, **kwargs: Any) -> StepOutput:
            if trainer.global_step % callback.every_n_steps:
                return original(*args, **kwargs)
            rec = callback._recorder
            with rec:
                out = original(*args, **kwargs)
            try:
                return callback._add_penalty(pl_module, out, rec)
            finally:
                rec.clear()  # release the activations and their graph

        self._wrapped = original
        pl_module.training_step = training_step  # an instance attribute: the class is intact

    def _uninstall(self, pl_module: pl.LightningModule) -> None:
        if self._wrapped is not None:
            if "training_step" in vars(pl_module):
                del pl_module.training_step
            self._wrapped = None

    def _add_penalty(
        self, pl_module: pl.LightningModule, out: StepOutput, rec: ActivationRecorder
    ) -> StepOutput:
        loss = out["loss"] if isinstance(out, Mapping) else out
        if not isinstance(loss, torch.Tensor):
            raise TypeError(
                "TopologicalRegularization needs training_step to return the loss tensor or a "
                f"dict with a 'loss' tensor; got {type(out).__name__} (manual optimisation: "
                "record and add the penalty in training_step, see topo_neurons.Regularized)"
            )
        match_checks(rec, self.regularizer)
        A = rec.activations()
        if not getattr(self, "_warned_small_batch", False):  # once per callback
            self._warned_small_batch = warn_small_batch(
                "TopologicalRegularization", A, self.regularizer, 4
            )
        if getattr(self.regularizer, "refresh_every", 1) > 1:
            value = self.regularizer(A, selection=rec.selection())
        else:
            value = self.regularizer(A)
        penalty = self.weight * value
        self.last_penalty = penalty.detach()
        if self.log_name is not None:
            pl_module.log(
                self.log_name, penalty.detach(), on_step=True, on_epoch=True, batch_size=A.shape[0]
            )
        total = loss + penalty
        if isinstance(out, Mapping):
            return {**out, "loss": total}
        return total


class BarcodeLogger(Callback):
    """Record barcodes on a fixed probe batch every ``N`` epochs and log them.

    At the end of training epochs ``N − 1, 2N − 1, …`` (0-based) the LightningModule runs once
    on ``probe`` in eval mode without gradient (a :class:`~topo_neurons.BarcodeTracker`), and
    each tracked layer's barcode is logged at the current ``global_step``:

    * to **every** logger in ``trainer.loggers`` (TensorBoard, CSV, …): the summary scalars
      ``{tag}/{layer}/{s}`` of :data:`topo_neurons.tracking.SUMMARY_SCALARS` and, beside
      them, ``{tag}/{layer}/dead_neurons``, the number of neurons constant over the probe
      (dead: they count as uncorrelated, ``d = 1``, so the death statistics alone hide them;
      see :attr:`BarcodeTracker.dead_neurons <topo_neurons.BarcodeTracker>`), via
      ``logger.log_metrics``;
    * to loggers whose ``experiment`` is a TensorBoard ``SummaryWriter`` (e.g.
      ``TensorBoardLogger``), also the death histograms ``{tag}/{layer}/deaths`` and the barcode
      figures ``{tag}/{layer}`` (see :func:`topo_neurons.tracking.log_barcodes`).

    The module is run with ``pl_module(probe)`` (``pl_module(**probe)`` for a mapping), so it
    must define ``forward``, or ``forward_fn`` must say how to run it: this is checked when the
    fit starts (``setup``), with a ``TypeError``, not after the first epoch.

    Parameters
    ----------
    probe : torch.Tensor or mapping of str to torch.Tensor
        A fixed input batch, shape ``(m, ...)`` (``m ≥ 2``), moved to the module's device; or
        the module's keyword arguments (Hugging Face style ``{"input_ids": …,
        "attention_mask": …}``, with ``mask="attention_mask"`` to drop padded tokens).
    layers : sequence of str, optional
        Layers to track (default: :class:`~topo_neurons.ActivationRecorder`'s).
    every_n_epochs : int, default 1
    kind : {"abs", "sqrt"}, default "abs"
    sampling : sampling strategy, optional
    network : bool, default False
        Also the whole network's barcode, as layer ``"network"``.
    tag : str, default "barcodes"
    figures : bool, default True
        Log the barcode figures to TensorBoard.
    forward_fn : callable, optional
        ``forward_fn(pl_module, probe)`` runs the module on the probe (e.g.
        ``lambda module, x: module.net(x)`` for a module without ``forward``).
    **recorder_options
        Passed to :class:`~topo_neurons.ActivationRecorder` (``point=``, ``positions=``,
        ``mask=``, …).

    Attributes
    ----------
    history : BarcodeHistory
        Everything recorded (kept in :meth:`state_dict`, so a resumed fit continues it).
    dead_neurons : dict of str to list of int
        Per layer, the number of dead (constant) neurons at each record, aligned with
        ``history.steps`` (kept in :meth:`state_dict` too).
    """

    def __init__(
        self,
        probe: torch.Tensor,
        layers: Sequence[str] | None = None,
        *,
        every_n_epochs: int = 1,
        kind: str = "abs",
        sampling: SamplingStrategy | None = None,
        network: bool = False,
        tag: str = "barcodes",
        figures: bool = True,
        forward_fn: Callable[[pl.LightningModule, Any], Any] | None = None,
        **recorder_options: Any,
    ) -> None:
        super().__init__()
        check_batch(probe, "probe")
        if forward_fn is not None and not callable(forward_fn):
            raise TypeError(f"forward_fn must be callable; got {type(forward_fn).__name__}")
        self.forward_fn = forward_fn
        if not isinstance(tag, str) or not tag:
            raise ValueError(f"tag must be a non-empty str; got {tag!r}")
        self.probe = probe
        self.layers = layers if layers is None or isinstance(layers, str) else list(layers)
        self.every_n_epochs = _check_positive_int(every_n_epochs, "every_n_epochs")
        self.kind = check_kind(kind)
        self.sampling = AllNeurons() if sampling is None else sampling
        self.network = bool(network)
        self.tag = tag
        self.figures = bool(figures)
        self.recorder_options = dict(recorder_options)
        self.history = BarcodeHistory()
        self.dead_neurons: dict[str, list[int]] = {}
        self._tracker: BarcodeTracker | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.forward_fn is None and defines_no_forward(pl_module):
            raise TypeError(
                f"BarcodeLogger runs the module on the probe batch as pl_module(probe), but "
                f"{type(pl_module).__name__} defines no forward method; define forward, or "
                "pass forward_fn=lambda module, probe: module.net(probe) (whatever runs your "
                "network on a batch)"
            )
        if self._tracker is None or self._tracker.model is not pl_module:
            tracker = BarcodeTracker(
                pl_module,
                self.layers,
                kind=self.kind,
                sampling=self.sampling,
                network=self.network,
                forward_fn=self.forward_fn,
                **self.recorder_options,
            )
            tracker.history = self.history
            tracker.dead_neurons = self.dead_neurons
            self._tracker = tracker

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        if trainer.sanity_checking or self._tracker is None:
            return
        step = int(trainer.global_step)
        probe = self.probe
        if isinstance(probe, Mapping):
            probe = {
                k: v.to(pl_module.device) if isinstance(v, torch.Tensor) else v
                for k, v in probe.items()
            }
        else:
            probe = probe.to(pl_module.device)
        barcodes = self._tracker.record(probe, step=step)
        self._log(trainer, barcodes, step)

    def _log(self, trainer: pl.Trainer, barcodes: Mapping[str, Barcode], step: int) -> None:
        if trainer.global_rank != 0:
            return
        metrics = {}
        for name, bc in barcodes.items():
            for key, value in barcode_scalars(bc).items():
                metrics[f"{self.tag}/{name}/{key}"] = value
            if self.dead_neurons.get(name):  # beside the death statistics
                metrics[f"{self.tag}/{name}/dead_neurons"] = float(self.dead_neurons[name][-1])
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
            writer = getattr(logger, "experiment", None)
            if callable(getattr(writer, "add_histogram", None)) and callable(
                getattr(writer, "add_figure", None)
            ):
                log_barcodes(
                    writer, barcodes, step, tag=self.tag, scalars=False, figures=self.figures
                )

    def state_dict(self) -> dict[str, Any]:
        h = self.history
        return {
            "dead_neurons": {name: list(c) for name, c in self.dead_neurons.items()},
            "steps": list(h.steps),
            "barcodes": {
                name: [
                    (
                        torch.from_numpy(bc.deaths.copy()),
                        torch.from_numpy(bc.edges.copy()),
                        int(bc.n_points),
                    )
                    for bc in bcs
                ]
                for name, bcs in h.barcodes.items()
            },
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history.steps[:] = [int(s) for s in state_dict["steps"]]
        self.dead_neurons.clear()
        for name, counts in state_dict.get("dead_neurons", {}).items():
            self.dead_neurons[name] = [int(c) for c in counts]
        self.history.barcodes.clear()
        for name, bcs in state_dict["barcodes"].items():
            self.history.barcodes[name] = [
                Barcode(deaths=d.numpy(), edges=e.numpy(), n_points=n) for d, e, n in bcs
            ]
