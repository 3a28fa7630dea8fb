"""Running a model over a data set: batching, devices, dense and tiled paths, :func:`analyse`."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._memory import check_square_fits
from .._modes import eval_mode
from .._options import check_choice
from ..capture import ActivationRecorder, AllNeurons, FewExamplesWarning, FixedSelection
from ..correlation import check_kind
from ._build import build_report, build_report_tiled, check_options
from ._report import RedundancyReport
from ._streaming import StreamingCorrelation

if TYPE_CHECKING:
    from ..capture import SamplingStrategy

__all__ = ["ANALYSE_PATHS", "DENSE_ANALYSE_BYTES", "analyse", "iter_batches"]


#: ``analyse(path="auto")`` keeps the activations and takes the tiled engine when the dense
#: path's float64 ``n × n`` arrays (``_ANALYSE_COPIES`` of them) would exceed this many bytes.
DENSE_ANALYSE_BYTES = 2 * 1024**3
ANALYSE_PATHS: tuple[str, ...] = ("auto", "dense", "tiled")


def iter_batches(data: Any, batch_size: int) -> Iterator[torch.Tensor]:
    """Yield the input batches of ``data`` as torch tensors.

    ``data`` is a torch tensor or numpy array (split along its first axis into ``batch_size``
    rows), or any iterable of batches such as a ``DataLoader``; a tuple/list batch contributes
    its first element (the inputs); a mapping batch (e.g. a Hugging Face tokenizer's
    ``{"input_ids": …, "attention_mask": …}``) is passed whole, as keyword arguments.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be an int; got {type(batch_size).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1; got {batch_size}")
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(np.ascontiguousarray(data))
    if isinstance(data, torch.Tensor):
        if data.ndim == 0:
            raise ValueError("data must have a first axis of examples; got a 0-d tensor")
        return _slices(data, int(batch_size))
    if not isinstance(data, Iterable):
        raise TypeError(
            "data must be a torch.Tensor, a numpy array or an iterable of batches (DataLoader); "
            f"got {type(data).__name__}"
        )
    return _first_elements(data)


def _slices(data: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    for start in range(0, data.shape[0], batch_size):
        yield data[start : start + batch_size]


def _cast(x: torch.Tensor, dtype: Any, device: Any) -> torch.Tensor:
    if x.is_floating_point() and dtype is not None:
        x = x.to(dtype)
    return x.to(device) if device is not None else x


def _mask_batches(mask: Any, data: Any, batch_size: int) -> Iterator[torch.Tensor | None]:
    """The padding mask sliced like the data's batches (``None`` forever when no mask; the
    name of a model keyword argument, read by the recorder at each call, forever)."""
    if mask is None or isinstance(mask, str):
        return itertools.repeat(mask)
    if not isinstance(data, (np.ndarray, torch.Tensor)):
        raise TypeError(
            "mask= needs data as one tensor or array (the mask's rows are aligned with its "
            f"examples); got data of type {type(data).__name__}"
        )
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(mask)
    if not isinstance(mask, torch.Tensor) or mask.ndim < 1 or mask.shape[0] != data.shape[0]:
        shape = tuple(mask.shape) if hasattr(mask, "shape") else type(mask).__name__
        raise ValueError(
            f"mask must be a tensor with one row per example of data ({data.shape[0]}); got {shape}"
        )
    return _slices(mask, batch_size)


def _first_elements(data: Iterable[Any]) -> Iterator[torch.Tensor]:
    for k, batch in enumerate(data):
        if isinstance(batch, Mapping):  # keyword arguments of the model (Hugging Face style)
            yield {
                key: torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v
                for key, v in batch.items()
            }
            continue
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(np.ascontiguousarray(x))
        if not isinstance(x, torch.Tensor):
            raise TypeError(
                f"batch {k} of data holds {type(x).__name__}; expected a tensor or numpy array "
                "(or a tuple/list whose first element is one)"
            )
        yield x


def _model_dtype_device(
    model: torch.nn.Module,
) -> tuple[torch.dtype | None, torch.device | None]:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype, p.device
    return None, None


#: float64 ``n × n`` arrays alive at the peak of :func:`analyse` (accumulator, covariance,
#: correlation, dissimilarity, a layer's block): measured peak RSS ≈ 7.5 n² × 8 bytes.
_ANALYSE_COPIES = 7.0


def _check_device(device: torch.device | str | None) -> torch.device | None:
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a torch device (examples: 'cpu', 'cuda', 'cuda:1')"
        ) from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r}: CUDA is not available on this machine")
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
        dev = torch.device("cuda", index)
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r}: MPS is not available on this machine")
    return dev


def _run(model: torch.nn.Module, x: torch.Tensor, dtype: Any, device: Any) -> None:
    if isinstance(x, Mapping):
        kwargs = {
            k: _cast(v, dtype, device) if isinstance(v, torch.Tensor) else v for k, v in x.items()
        }
        try:
            model(**kwargs)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            shapes = {k: tuple(v.shape) for k, v in kwargs.items() if isinstance(v, torch.Tensor)}
            raise ValueError(f"the model failed on a batch of shapes {shapes}: {first}") from exc
        return
    if x.is_floating_point() and dtype is not None:
        x = x.to(dtype)
    if device is not None:
        x = x.to(device)
    try:
        model(x)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"the model failed on a batch of shape {tuple(x.shape)}: {first}") from exc


def analyse(
    model: torch.nn.Module,
    data: Any,
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
    scheduler: Any = None,
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
    backend : {"auto", "native", "giotto", "gudhi"}
        Persistence backend.
    device : torch.device or str, optional
        Where the model runs and the correlations accumulate (``"cpu"``, ``"cuda"``,
        ``"cuda:1"``, …). The model is moved there for the analysis and moved back to where its
        parameters were afterwards. Default: where the model's parameters are.
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
    check_options(thresholds, top_k, pair_threshold)
    sampling = AllNeurons() if sampling is None else sampling
    target = _check_device(device)
    dtype, home = _model_dtype_device(model)
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
    masks = _mask_batches(mask, data, batch_size)
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
        with rec:
            _run(model, first, dtype, device)
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
            acc = _KeptActivations(n_cols)
        else:
            # The accumulator, then the report's correlation, dissimilarity and per-layer
            # blocks: about 7 float64 n × n arrays at the peak (measured with ru_maxrss).
            check_square_fits(n_cols, 8, _ANALYSE_COPIES, what="analyse")
            acc = StreamingCorrelation(n_cols, labels=labels, device=device)
        acc.update(A)
        rec = ActivationRecorder(model, layers=layer_names, sampling=fixed, **options)
        rec._warn_few_examples = False
        with rec:
            for x in it:
                rec.mask = next(masks)
                _run(model, x, dtype, device)
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
    where = (labels, point_layers, layer_names, index.sizes)
    options = {
        "kind": kind,
        "thresholds": thresholds,
        "top_k": top_k,
        "pair_threshold": pair_threshold,
        "sampling": repr(sampling),
    }
    if isinstance(acc, _KeptActivations):
        return build_report_tiled(
            acc.stacked(), *where, **options, scheduler=scheduler, progress=progress
        )
    report = build_report(acc, *where, **options, backend=backend)
    report.meta["path"] = "dense"
    return report


class _KeptActivations:
    """The tiled path's stand-in for :class:`StreamingCorrelation`: keeps every batch."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.n_examples = 0
        self._parts: list[torch.Tensor] = []

    def update(self, batch: torch.Tensor) -> None:
        x = batch.detach().to("cpu", torch.float64)
        if x.ndim != 2 or x.shape[1] != self.n:
            raise ValueError(f"batch of shape {tuple(x.shape)}; expected (m, {self.n})")
        self._parts.append(x)
        self.n_examples += int(x.shape[0])

    def stacked(self) -> torch.Tensor:
        A = torch.cat(self._parts) if len(self._parts) > 1 else self._parts[0]
        self._parts = [A]
        return A
