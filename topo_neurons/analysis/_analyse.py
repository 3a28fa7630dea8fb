"""A model's redundancy report over a data set: :func:`analyse`, its dense and tiled paths."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from .._memory import check_square_fits
from .._modes import eval_mode
from .._options import check_choice
from ..capture import ActivationRecorder, AllNeurons, FewExamplesWarning, FixedSelection
from ..correlation import check_kind
from ._batches import (
    Data,
    check_device,
    iter_batches,
    mask_batches,
    model_dtype_device,
    run_model,
)
from ._build import NeuronLayout, ReportOptions, build_report, build_report_tiled
from ._report import RedundancyReport
from ._streaming import StreamingCorrelation

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client

    from ..capture import SamplingStrategy

__all__ = ["ANALYSE_PATHS", "DENSE_ANALYSE_BYTES", "analyse"]


#: ``analyse(path="auto")`` keeps the activations and takes the tiled engine when the dense
#: path's float64 ``n × n`` arrays (``_ANALYSE_COPIES`` of them) would exceed this many bytes.
DENSE_ANALYSE_BYTES = 2 * 1024**3
ANALYSE_PATHS: tuple[str, ...] = ("auto", "dense", "tiled")


#: float64 ``n × n`` arrays alive at the peak of :func:`analyse` (accumulator, covariance,
#: correlation, dissimilarity, a layer's block): measured peak RSS ≈ 7.5 n² × 8 bytes.
_ANALYSE_COPIES = 7.0


def analyse(
    model: torch.nn.Module,
    data: Data,
    layers: Sequence[str | torch.nn.Module] | None = None,
    *,
    sampling: SamplingStrategy | None = None,
    kind: str = "abs",
    batch_size: int = 256,
    thresholds: Sequence[float] = (0.1, 0.2, 0.5),
    top_k: int = 20,
    progress: bool = False,
    pair_threshold: float | None = None,
    backend: str = "auto",
    device: torch.device | str | None = None,
    point: str = "post",
    positions: str = "auto",
    batch_dim: int | dict[str, int] | None = None,
    mask: torch.Tensor | np.ndarray | str | None = None,
    path: str = "auto",
    scheduler: str | Client | None = None,
) -> RedundancyReport:
    """Analyse how redundant a model's neurons are over a whole data set.

    The model runs in eval mode under ``torch.no_grad()`` (its training mode is restored
    afterwards) over every example of ``data``; activations are recorded by
    :class:`~topo_neurons.ActivationRecorder` and their Pearson correlations accumulated in one
    streaming pass (:class:`StreamingCorrelation`, float64, memory ``O(n²)`` for ``n`` neurons,
    independent of the number of examples). When ``sampling`` depends on the data (importance or
    random sampling), the neurons are chosen on the first batch and then kept fixed
    (:class:`~topo_neurons.FixedSelection`). The correlation dissimilarity gives the barcode of the
    whole network and of each layer (each layer's is the persistence of its own block of the
    matrix).

    Definitions used in the report, at each threshold ``t`` of ``thresholds`` (a dissimilarity):

    * **effective number of neurons** ``E(t)``: the number of single-linkage clusters at scale
      ``t``, ``E(t) = n − #{k : d_k ≤ t}``. Neurons chained by steps of dissimilarity ``≤ t``
      (for ``kind="abs"``: ``|ρ| ≥ 1 − t``) count as one; ``E(t) = n`` means no redundancy at
      that scale.
    * **redundancy clusters** ``R(t)``: the clusters of at least two neurons among them.
    * **redundant pairs**: the MST edges with death ``≤ pair_threshold`` (default
      ``max(thresholds)``), the ``top_k`` smallest, with their signed ``ρ``.

    Constant (dead) neurons follow the correlation layer's default ``"uncorrelated"`` policy:
    ``d = 1`` to every other neuron; they are listed by name in ``constant_neurons``.

    Parameters
    ----------
    model : torch.nn.Module
    data : torch.Tensor, numpy.ndarray or iterable of batches
        Inputs, first axis = examples (any number ≥ 2), or a ``DataLoader``/iterable whose
        batches are tensors, tuples/lists starting with the input tensor, or mappings of the
        model's keyword arguments (``model(**batch)``). Floating inputs are cast to the dtype
        and device of the model's parameters.
    layers : sequence of str or modules, optional
        Layers to analyse (default: every leaf module with parameters, in forward order). An
        unknown name raises ``ValueError`` listing the valid ones.
    sampling : sampling strategy, optional
        :class:`~topo_neurons.AllNeurons` (default), :class:`~topo_neurons.ImportanceSampling`,
        :class:`~topo_neurons.RandomSampling`, …
    kind : {"abs", "sqrt"}, default "abs"
        ``1 − |ρ|`` or ``sqrt(1 − ρ²)``.
    batch_size : int, default 256
        Rows per forward pass for tensor/array data (a DataLoader keeps its own batches).
    thresholds : sequence of float in [0, 1], default (0.1, 0.2, 0.5)
        Scales of ``effective_neurons`` and ``n_clusters``.
    top_k : int, default 20
        Most redundant pairs listed per entry.
    progress : bool, default False
        Show a tqdm progress bar (stderr) over the batches.
    pair_threshold : float, optional
        Largest death of a redundant pair (default ``max(thresholds)``).
    backend : {"auto", "native", "giotto", "gudhi", "torch"}
        Persistence backend of the dense path's trees (``"auto"``: ``"torch"`` where the
        correlations accumulate on a device, the trees then searched there).
    device : torch.device or str, optional
        Where the model runs and the correlations accumulate (``"cpu"``, ``"cuda"``,
        ``"cuda:1"``, …). The model is moved there for the analysis and moved back to where its
        parameters were afterwards. Default: where the model's parameters are. On a GPU the
        tiled path keeps the activations (``m × n`` float64) there and searches every tree on
        the device (the ``"torch"`` backend of :func:`~topo_neurons.correlation_persistence`;
        only the deaths, edges and the normalised activations of the listed pairs come back);
        the dense path accumulates the correlations there and, with ``backend="auto"`` or
        ``"torch"``, searches its trees there too (the ``n × n`` correlation comes back once,
        for the ``ρ`` of the listed pairs).
    point : {"post", "pre"}, default "post"
        A layer's neurons after its activation (what the next layer sees) or its own output;
        see :class:`~topo_neurons.ActivationRecorder`.
    positions : {"auto", "neurons", "examples"}, default "auto"
        Whether a convolution's pixels / a sequence's tokens are examples or parts of neurons;
        see :class:`~topo_neurons.ActivationRecorder`.
    batch_dim : int or dict of str to int, optional
        Batch axis of the layers' outputs (needed inside torch transformers built with
        ``batch_first=False``: ``batch_dim=1``).
    mask : bool tensor or array of shape (n_examples, positions...), or str, optional
        Padding mask aligned with ``data`` (tensor or array data only), ``True`` = keep: padded
        tokens are not examples (the model itself is called as ``model(x)``). A string names the
        keyword argument of the model that holds the mask, e.g. ``"attention_mask"`` with
        batches that are mappings (``model(**batch)``, Hugging Face style).
    path : {"auto", "dense", "tiled"}, default "auto"
        ``"dense"``: the streaming ``n × n`` float64 accumulator (memory ``O(n²)``, any number
        of examples). ``"tiled"``: the activations of all examples are kept (float64, ``m × n``)
        and the barcodes come from the tiled engine
        (:func:`~topo_neurons.correlation_persistence`, no ``n × n`` matrix). ``"auto"``:
        tiled when the dense path's matrices (about 7 float64 ``n × n`` arrays) would exceed
        2 GiB (``n ≳ 6200``). ``report.meta["path"]`` says which ran.
    scheduler : None, "threads", "sync" or dask.distributed.Client, optional
        Where the tiled engine's tasks run (see :func:`~topo_neurons.correlation_persistence`).

    Returns
    -------
    RedundancyReport
        ``report.barcode`` (whole network), ``report.layers[name]`` per layer.

    Warns
    -----
    UserWarning
        Once, when there are no more examples than analysed neurons (``m ≤ n``): ``n`` columns
        centred over ``m`` examples span at most ``m − 1`` dimensions, so the correlations are
        degenerate and the deaths are biased towards 0 (with ``m = 2`` every ``|ρ|`` is 1).

    Raises
    ------
    ValueError
        Unknown layer or kind, fewer than 2 examples, NaN/Inf activations (naming the neuron),
        a model that fails on the data (with the batch shape), bad thresholds, an unknown or
        unavailable ``device``.
    TypeError
        ``model`` is not a module, or ``data`` is not a tensor/array/iterable of them.
    MemoryError
        Before allocating, when the ``n × n`` matrices of ``n`` neurons cannot fit in the
        available memory (the message names ``n``, the bytes and the ways out: sampling, conv
        positions as examples, the tiled :func:`~topo_neurons.correlation_persistence`).

    Examples
    --------
    >>> import torch, topo_neurons as tn
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    >>> report = tn.analyse(model, torch.randn(500, 4), batch_size=128)
    >>> report.barcode.n_points, list(report.layers)
    (9, ['0', '2'])
    >>> report.layers["0"].effective_neurons[0.5] <= 6
    True
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    check_kind(kind)
    check_choice("path", path, ANALYSE_PATHS, what="")
    checked = ReportOptions.checked(
        kind=kind, thresholds=thresholds, top_k=top_k, pair_threshold=pair_threshold
    )
    sampling = AllNeurons() if sampling is None else sampling
    target = check_device(device)
    dtype, home = model_dtype_device(model)
    if target is not None and home is not None and target != home:
        model.to(target)
        try:
            return analyse(
                model, data, layers, sampling=sampling, kind=kind, batch_size=batch_size,
                thresholds=thresholds, top_k=top_k, progress=progress,
                pair_threshold=pair_threshold, backend=backend, device=None, point=point,
                positions=positions, batch_dim=batch_dim, mask=mask, path=path,
                scheduler=scheduler,
            )  # fmt: skip
        finally:
            model.to(home)
    device = target if target is not None else home
    batches = iter_batches(data, batch_size)
    masks = mask_batches(mask, data, batch_size)
    options = {
        "point": point,
        "positions": positions,
        "batch_dim": batch_dim,
        "detach": True,
    }
    total = None
    if isinstance(data, (np.ndarray, torch.Tensor)):
        total = -(-int(data.shape[0]) // int(batch_size))
    elif hasattr(data, "__len__"):
        try:
            total = len(data)
        except TypeError:
            total = None
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, total=total, desc="analyse", unit="batch", leave=False)

    with eval_mode(model), torch.no_grad():
        it = iter(batches)
        try:
            first = next(it)
        except StopIteration:
            raise ValueError("data holds no examples; at least 2 are needed") from None
        rec = ActivationRecorder(model, layers=layers, sampling=sampling, **options)
        rec._warn_few_examples = False  # analyse warns on the whole data set below
        rec.mask = next(masks)
        rec._data_at(0, 0)  # errors name the example's index in the data set and its batch
        with rec:
            run_model(model, first, dtype, device)
        seen = rec._recorded_examples()
        index = rec.neuron_index()
        A = rec.activations()
        # Data-dependent strategies choose on the first batch only; then the columns stay.
        fixed = sampling if isinstance(sampling, AllNeurons) else FixedSelection(rec.selection())
        rec.clear()
        layer_names = list(index.layers)
        labels = index.labels()
        point_layers = [layer_names[i] for i in np.asarray(index.layer)]
        n_cols = A.shape[1]
        tiled = path == "tiled" or (
            path == "auto" and 8.0 * _ANALYSE_COPIES * n_cols**2 > DENSE_ANALYSE_BYTES
        )
        if tiled:  # keep the activations: m × n float64, no n × n matrix
            acc = _KeptActivations(n_cols, torch.device(device) if device is not None else None)
        else:
            # The accumulator, then the report's correlation, dissimilarity and per-layer
            # blocks: about 7 float64 n × n arrays at the peak (measured with ru_maxrss).
            check_square_fits(n_cols, 8, _ANALYSE_COPIES, what="analyse")
            acc = StreamingCorrelation(n_cols, labels=labels, device=device)
        acc.update(A)
        rec = ActivationRecorder(model, layers=layer_names, sampling=fixed, **options)
        rec._warn_few_examples = False
        with rec:
            for k, x in enumerate(it, start=1):
                rec.mask = next(masks)
                rec._data_at(seen, k)
                run_model(model, x, dtype, device)
                seen += rec._recorded_examples()
                acc.update(rec.activations())
                rec.clear()
    if acc.n_examples < 2:
        raise ValueError(f"data holds {acc.n_examples} example(s); at least 2 are needed")
    if acc.n_examples <= acc.n:
        warnings.warn(
            f"analyse: m = {acc.n_examples} examples for n = {acc.n} neurons (m ≤ n): the "
            f"correlations of n neurons over m examples span at most m − 1 dimensions, so the "
            f"deaths are biased towards 0 and the report overstates redundancy; use more "
            f"examples than neurons (or fewer neurons: sampling=, layers=)",
            FewExamplesWarning,
            stacklevel=2,
        )
    layout = NeuronLayout(labels, point_layers, layer_names, index.sizes)
    report_options = dataclasses.replace(checked, sampling=repr(sampling))
    if isinstance(acc, _KeptActivations):
        return build_report_tiled(
            acc.stacked(), layout, report_options, scheduler=scheduler, progress=progress
        )
    report = build_report(acc, layout, report_options, backend=backend)
    report.meta["path"] = "dense"
    return report


class _KeptActivations:
    """The tiled path's stand-in for :class:`StreamingCorrelation`: keeps every batch."""

    def __init__(self, n: int, device: torch.device | None = None) -> None:
        self.n = n
        self.n_examples = 0
        self._parts: list[torch.Tensor] = []
        # On a GPU the activations stay there: the trees are then searched on the device.
        self.device = device if device is not None and device.type != "cpu" else "cpu"

    def update(self, batch: torch.Tensor) -> None:
        x = batch.detach().to(self.device, torch.float64)
        if x.ndim != 2 or x.shape[1] != self.n:
            raise ValueError(f"batch of shape {tuple(x.shape)}; expected (m, {self.n})")
        self._parts.append(x)
        self.n_examples += int(x.shape[0])

    def stacked(self) -> torch.Tensor:
        A = torch.cat(self._parts) if len(self._parts) > 1 else self._parts[0]
        self._parts = [A]
        return A
