"""Barcodes recorded during training: :class:`BarcodeTracker` → :class:`BarcodeHistory`.

Every ``every`` training steps the tracker runs the model once more on a batch, in eval mode
and without gradient, records the activations of the chosen layers (detached), and keeps each
layer's 0-dimensional barcode (native backend). The history gives death quantiles over the
steps for :func:`~topo_neurons.plot_barcode_evolution` and saves to one ``.npz`` file.

Given a ``torch.utils.tensorboard.SummaryWriter`` (``writer=``), every record is also logged to
TensorBoard by :func:`log_barcodes`: a histogram of each layer's deaths, summary scalars, and
the barcode figure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._modes import eval_mode
from .capture import ActivationRecorder, AllNeurons
from .correlation import check_kind, correlation_dissimilarity
from .io import atomic_path
from .persistence import Barcode, zero_persistence

__all__ = [
    "NETWORK",
    "SUMMARY_SCALARS",
    "BarcodeHistory",
    "BarcodeTracker",
    "barcode_scalars",
    "log_barcodes",
]

#: Key of the whole-network barcode when a tracker records it (``network=True``).
NETWORK = "network"


#: The scalars :func:`log_barcodes` logs per layer, each a function of the deaths ``d``.
SUMMARY_SCALARS: tuple[str, ...] = (
    "death_min",
    "death_median",
    "death_mean",
    "death_max",
    "redundancy",
)


def barcode_scalars(bc: Barcode) -> dict[str, float]:
    """Summary scalars of one barcode (see :data:`SUMMARY_SCALARS`); empty for one neuron.

    ``redundancy`` is the mean T1, ``mean(1 − d)``, in ``[0, 1]``.
    """
    d = np.asarray(bc.deaths, dtype=np.float64)
    if d.size == 0:
        return {}
    return {
        "death_min": float(d.min()),
        "death_median": float(np.median(d)),
        "death_mean": float(d.mean()),
        "death_max": float(d.max()),
        "redundancy": float(np.mean(1.0 - d)),
    }


def log_barcodes(
    writer: Any,
    barcodes: Mapping[str, Barcode],
    step: int,
    *,
    tag: str = "barcodes",
    scalars: bool = True,
    histograms: bool = True,
    figures: bool = True,
) -> None:
    """Log barcodes to a TensorBoard ``SummaryWriter``.

    For each layer ``name``: the scalars ``{tag}/{name}/{s}`` for ``s`` in
    :data:`SUMMARY_SCALARS`, the histogram of the deaths ``{tag}/{name}/deaths``, and the
    barcode drawn by :func:`~topo_neurons.plot_barcode` as the figure ``{tag}/{name}``.

    Parameters
    ----------
    writer : torch.utils.tensorboard.SummaryWriter
        Or any object with its ``add_scalar``, ``add_histogram`` and ``add_figure`` methods.
    barcodes : mapping of str to Barcode
        E.g. what :meth:`BarcodeTracker.record` returns.
    step : int
        The global step stored with every value.
    tag : str, default "barcodes"
        Prefix of every tag.
    scalars, histograms, figures : bool, default True
        Whether to log the summary scalars, the death histograms and the figures.

    Raises
    ------
    TypeError
        ``writer`` lacks one of the methods needed.
    """
    needed = ["add_scalar"] * scalars + ["add_histogram"] * histograms + ["add_figure"] * figures
    missing = [m for m in needed if not callable(getattr(writer, m, None))]
    if missing:
        raise TypeError(
            f"writer must be a torch.utils.tensorboard.SummaryWriter (or have {needed}); "
            f"{type(writer).__name__} has no {missing}"
        )
    for name, bc in barcodes.items():
        for key, value in barcode_scalars(bc).items() if scalars else ():
            writer.add_scalar(f"{tag}/{name}/{key}", value, step)
        if bc.deaths.size == 0:
            continue
        if histograms:
            writer.add_histogram(f"{tag}/{name}/deaths", np.asarray(bc.deaths), step)
        if figures:
            import matplotlib.pyplot as plt

            from .plotting import plot_barcode

            fig, ax = plt.subplots(figsize=(5, 3.5))
            plot_barcode(bc, ax=ax, title=f"{name}, step {step}")
            writer.add_figure(f"{tag}/{name}", fig, step, close=True)
            plt.close(fig)


@dataclass(eq=False)
class BarcodeHistory:
    """Barcodes of several layers at several training steps.

    Attributes
    ----------
    steps : list of int
        The recorded training steps, in recording order.
    barcodes : dict of str to list of Barcode
        For each layer name (and ``"network"`` if tracked), one barcode per step.

    Examples
    --------
    >>> import numpy as np
    >>> from topo_neurons import Barcode, BarcodeHistory
    >>> h = BarcodeHistory()
    >>> h.append(0, {"fc": Barcode(np.array([0.1, 0.4]), np.array([[0, 1], [1, 2]]), 3)})
    >>> h.append(10, {"fc": Barcode(np.array([0.3, 0.5]), np.array([[0, 2], [1, 2]]), 3)})
    >>> h.quantiles("fc", [0.5])
    array([[0.25],
           [0.4 ]])
    """

    steps: list[int] = field(default_factory=list)
    barcodes: dict[str, list[Barcode]] = field(default_factory=dict)

    @property
    def layers(self) -> tuple[str, ...]:
        """Recorded layer names, in order."""
        return tuple(self.barcodes)

    def __len__(self) -> int:
        return len(self.steps)

    def __repr__(self) -> str:
        return f"BarcodeHistory({len(self.steps)} steps, layers={list(self.layers)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BarcodeHistory):
            return NotImplemented
        return self.steps == other.steps and self.barcodes == other.barcodes

    __hash__ = None  # type: ignore[assignment]

    def append(self, step: int, barcodes: Mapping[str, Barcode]) -> None:
        """Add the barcodes of one step; every step must give the same layers."""
        if self.steps and set(barcodes) != set(self.barcodes):
            raise ValueError(
                f"step {step} gives layers {list(barcodes)}; earlier steps gave {list(self.layers)}"
            )
        for name, bc in barcodes.items():
            if not isinstance(bc, Barcode):
                raise TypeError(f"barcode of layer {name!r} is a {type(bc).__name__}, not Barcode")
        self.steps.append(int(step))
        for name in barcodes if not self.barcodes else self.barcodes:
            self.barcodes.setdefault(name, []).append(barcodes[name])

    def _layer(self, layer: str | None) -> str:
        if not self.barcodes:
            raise ValueError("the history is empty: nothing was recorded yet")
        name = self.layers[0] if layer is None else layer
        if name not in self.barcodes:
            raise ValueError(f"layer {name!r} was not tracked; tracked layers are {self.layers}")
        return name

    def deaths(self, layer: str | None = None) -> list[np.ndarray]:
        """The deaths of ``layer`` (default: the first) at each step, float64 arrays."""
        return [np.asarray(bc.deaths, np.float64) for bc in self.barcodes[self._layer(layer)]]

    def quantiles(
        self, layer: str | None = None, q: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95)
    ) -> np.ndarray:
        """Death quantiles of ``layer`` at each step.

        Parameters
        ----------
        layer : str, optional
            Tracked layer (default: the first).
        q : sequence of float in [0, 1]

        Returns
        -------
        numpy.ndarray of float64, shape (n_steps, len(q))
            ``np.quantile(deaths, q)`` (linear interpolation); NaN rows for one-neuron layers.
        """
        qs = np.asarray(q, dtype=np.float64).reshape(-1)
        rows = [
            np.quantile(d, qs) if d.size else np.full(qs.size, np.nan) for d in self.deaths(layer)
        ]
        return np.array(rows, dtype=np.float64).reshape(len(rows), qs.size)

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the history to one ``.npz`` file atomically (no pickles); returns the path."""
        target = Path(path)
        if target.suffix != ".npz":
            raise ValueError(f"history files end in .npz; got {str(target)!r}")
        arrays: dict[str, np.ndarray] = {
            "format": np.str_("topo_neurons.BarcodeHistory"),
            "steps": np.asarray(self.steps, dtype=np.int64),
            "layers": np.asarray(self.layers, dtype=np.str_),
        }
        for i, name in enumerate(self.layers):
            for k, bc in enumerate(self.barcodes[name]):
                arrays[f"deaths_{i}_{k}"] = np.asarray(bc.deaths)
                arrays[f"edges_{i}_{k}"] = np.asarray(bc.edges)
                arrays[f"n_points_{i}_{k}"] = np.int64(bc.n_points)
        with atomic_path(target) as tmp:
            np.savez(tmp, **arrays)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BarcodeHistory:
        """Read a history written by :meth:`save`."""
        target = Path(path)
        if not target.is_file():
            raise FileNotFoundError(f"no history file at {str(target)!r}")
        with np.load(target, allow_pickle=False) as f:
            if "format" not in f.files or str(f["format"]) != "topo_neurons.BarcodeHistory":
                raise ValueError(f"{str(target)!r} is not a BarcodeHistory file")
            steps = [int(s) for s in f["steps"]]
            layers = [str(x) for x in f["layers"]]
            barcodes = {
                name: [
                    Barcode(
                        deaths=f[f"deaths_{i}_{k}"],
                        edges=f[f"edges_{i}_{k}"],
                        n_points=int(f[f"n_points_{i}_{k}"]),
                    )
                    for k in range(len(steps))
                ]
                for i, name in enumerate(layers)
            }
        return cls(steps=steps, barcodes=barcodes)


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
    **recorder_options
        Passed to :class:`~topo_neurons.ActivationRecorder` (``point=``, ``positions=``, …).

    Attributes
    ----------
    history : BarcodeHistory
        Steps and per-layer barcodes recorded so far.

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
        kind: str = "abs",
        sampling: Any = None,
        *,
        network: bool = False,
        writer: Any = None,
        tag: str = "barcodes",
        figures: bool = True,
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
        # Resolves the layer names now: an unknown layer fails here, not mid-training.
        if "detach" in recorder_options:
            raise ValueError("BarcodeTracker always records detached activations; drop detach=")
        self._recorder = ActivationRecorder(
            model, layers=layers, sampling=self.sampling, detach=True, **recorder_options
        )
        self.history = BarcodeHistory()
        self._calls = 0

    def __repr__(self) -> str:
        return f"BarcodeTracker(every={self.every}, kind={self.kind!r}, {self.history!r})"

    def step(self, x: torch.Tensor, step: int | None = None) -> bool:
        """Count one training step; on every ``every``-th, record the barcodes on batch ``x``.

        Parameters
        ----------
        x : torch.Tensor, shape (m, ...)
            Input batch (``m ≥ 2``).
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

    def record(self, x: torch.Tensor, step: int | None = None) -> dict[str, Barcode]:
        """Record the barcodes on batch ``x`` now (whatever the step count).

        Returns
        -------
        dict of str to Barcode
            The barcodes just appended to :attr:`history`.
        """
        model = self.model
        try:
            with eval_mode(model), torch.no_grad(), self._recorder as rec:
                model(x)
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
        for name, a in per_layer.items():
            D = correlation_dissimilarity(a.detach(), kind=self.kind)
            out[str(name)] = zero_persistence(D, backend="native")
        if self.network:
            A = torch.cat([a.detach() for a in per_layer.values()], dim=1)
            out[NETWORK] = zero_persistence(
                correlation_dissimilarity(A, kind=self.kind), backend="native"
            )
        step = len(self.history) if step is None else int(step)
        self.history.append(step, out)
        if self.writer is not None:
            log_barcodes(self.writer, out, step, tag=self.tag, figures=self.figures)
        return out

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save :attr:`history` (see :meth:`BarcodeHistory.save`)."""
        return self.history.save(path)

    @staticmethod
    def load(path: str | os.PathLike[str]) -> BarcodeHistory:
        """Load a saved history (see :meth:`BarcodeHistory.load`)."""
        return BarcodeHistory.load(path)
