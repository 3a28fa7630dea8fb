"""Feeding a model its data: batches of tensors, arrays or loaders, masks, dtype and device."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeAlias

import numpy as np
import torch

__all__ = [
    "Batch",
    "Data",
    "check_device",
    "iter_batches",
    "mask_batches",
    "model_dtype_device",
    "run_model",
]

#: One input batch: a tensor, or a mapping of the model's keyword arguments (``model(**batch)``).
Batch: TypeAlias = torch.Tensor | Mapping[str, Any]
#: What :func:`~topo_neurons.analyse` runs a model over: one tensor or array (split into batches
#: along its first axis), or an iterable of batches (a ``DataLoader``; a tuple/list batch gives
#: its first element).
Data: TypeAlias = torch.Tensor | np.ndarray | Iterable[Any]


def iter_batches(data: Data, batch_size: int) -> Iterator[Batch]:
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


def _cast(x: torch.Tensor, dtype: torch.dtype | None, device: torch.device | None) -> torch.Tensor:
    """``x`` on ``device`` (if given), floating tensors in ``dtype`` (if given)."""
    if x.is_floating_point() and dtype is not None:
        x = x.to(dtype)
    return x.to(device) if device is not None else x


def mask_batches(
    mask: torch.Tensor | np.ndarray | str | None, data: Data, batch_size: int
) -> Iterator[torch.Tensor | str | None]:
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


def _first_elements(data: Iterable[Any]) -> Iterator[Batch]:
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


def model_dtype_device(
    model: torch.nn.Module,
) -> tuple[torch.dtype | None, torch.device | None]:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype, p.device
    return None, None


def check_device(device: torch.device | str | None) -> torch.device | None:
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


def run_model(
    model: torch.nn.Module,
    x: Batch,
    dtype: torch.dtype | None,
    device: torch.device | None,
) -> None:
    """``model(x)`` (``model(**x)`` for a mapping) with ``x`` cast by dtype and device.

    A ``RuntimeError`` of the model becomes a ``ValueError`` naming the batch's shape(s).
    """
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
    x = _cast(x, dtype, device)
    try:
        model(x)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"the model failed on a batch of shape {tuple(x.shape)}: {first}") from exc
