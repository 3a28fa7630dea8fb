"""The recorder's checks of what it returns: finite values, and the sampling's indices.

Both run without a host read on the device path (a GPU, or whenever the caller asks: the
``"torch"`` backend's training step): the finite check is a device-side assertion
(:func:`~topo_neurons._finite.assert_finite`) and the library's own sampling strategies are
trusted (their indices are valid by construction), a user's checked by a device-side
assertion. Off the device path, the named errors as ever.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from .. import _finite
from ._layers import _display
from ._sampling import (
    AllNeurons,
    FixedSelection,
    ImportanceSampling,
    RandomSampling,
    SamplingStrategy,
)

__all__ = ["check_finite_records", "locate_row", "select_columns"]

#: Strategies whose indices are valid by construction: sorted, distinct, in range (so ``k = n``
#: indices are ``0 … n − 1``). Exact types: a subclass may choose otherwise.
_TRUSTED = (AllNeurons, ImportanceSampling, RandomSampling, FixedSelection)


def locate_row(row: int, parts: list[tuple[tuple[int, ...], torch.Tensor | None]]):
    """``(example, position)`` of row ``row`` of a layer's records: the example counted over
    the recorded calls (each call's batch after the previous ones), the position inside it
    (``()`` when rows are examples)."""
    before = 0
    for where, keep in parts:
        rows = int(keep.sum()) if keep is not None else int(np.prod(where))
        if row < rows:
            flat = int(torch.nonzero(keep.reshape(-1))[row]) if keep is not None else row
            idx = np.unravel_index(flat, where)
            return before + int(idx[0]), tuple(int(i) for i in idx[1:])
        row -= rows
        before += where[0]
    raise IndexError(row)  # pragma: no cover - rows come from these parts


def check_finite_records(
    full: Mapping[str, torch.Tensor],
    shapes: Mapping[str, tuple[int, ...]],
    where: Mapping[str, list[tuple[tuple[int, ...], torch.Tensor | None]]] | None,
    first_example: int,
    batch: int | None,
    sync_free: bool | None,
) -> None:
    """Check every layer's rows for NaN/Inf (see :func:`stack_records` for the arguments).

    ``sync_free``: ``None`` (the recorder's default) is sync-free on a device unless the
    recorder reads a data set (``batch`` set, :func:`~topo_neurons.analyse`: the named error,
    with the example's index in the data set, is worth a read per batch).
    """
    for name, a in full.items():
        label, shape = _display(name), shapes[name]
        parts = where.get(name) if where is not None else None

        def example_of(row: int, parts=parts) -> tuple[int, tuple[int, ...]]:
            ex, pos = locate_row(row, parts) if parts else (row, ())
            return first_example + ex, pos

        def describe(row, neuron, value, _, label=label, shape=shape, example_of=example_of):
            ex, pos = example_of(row)
            at = f"example {ex}" + (" of the data set" if batch is not None else "")
            at += f" (in batch {batch}, counting from 0)" if batch is not None else ""
            at += f", position {pos}" if pos else ""
            return (
                f"layer {label!r} output {value} at {at}, neuron {neuron} (neurons of shape "
                f"{shape}); NaN/Inf activations are an error"
            )

        device = sync_free if sync_free is not None else batch is None and _finite.on_device(a)
        _finite.assert_finite(
            a,
            describe,
            f"layer {label!r}: activations",
            sync_free=device,
            layer=label,
            example_of=lambda row, f=example_of: f(row)[0],
        )


def select_columns(
    sampling: SamplingStrategy, full: dict[str, torch.Tensor], sync_free: bool | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Apply ``sampling`` to the full per-layer activations and check what it chose.

    Parameters
    ----------
    sampling : SamplingStrategy
    full : dict of str to torch.Tensor, each of shape (m, n_layer)
        From :func:`stack_records`; the last layer is the output layer.
    sync_free : bool, optional
        Check a user's strategy's indices without a host read (a device-side assertion; on
        the CPU the ``ValueError`` as usual) and gather its columns without asking whether
        they are all of them. Default: on a device (:func:`~topo_neurons._finite.on_device`).
        The library's strategies are never checked: their indices are valid by construction.

    Returns
    -------
    chosen : dict of str to torch.LongTensor, each of shape (n_layer_sampled,)
    sampled : dict of str to torch.Tensor, each of shape (m, n_layer_sampled)
    """
    output_layer = next(reversed(full))
    if type(sampling) is AllNeurons:  # fast path: nothing to select or check
        return sampling.select(full, output_layer), full
    sel = sampling.select(full, output_layer)
    if not isinstance(sel, Mapping) or set(sel) != set(full):
        got = list(sel) if isinstance(sel, Mapping) else type(sel).__name__
        raise ValueError(
            f"{sampling!r}.select returned indices for {got}; expected exactly the "
            f"recorded layers {list(full)}"
        )
    trusted = type(sampling) in _TRUSTED
    chosen: dict[str, torch.Tensor] = {}
    sampled = {}
    for name, a in full.items():
        idx = torch.as_tensor(sel[name], dtype=torch.long, device=a.device)
        n = a.shape[1]
        if trusted:  # sorted and distinct: n indices are all the columns, in order
            whole = idx.numel() == n
        else:
            whole = _check_indices(sampling, name, idx, n, sync_free)
        chosen[name] = idx
        sampled[name] = a if whole else a[:, idx]
    return chosen, sampled


def _check_indices(
    sampling: object, name: str, idx: torch.Tensor, n: int, sync_free: bool | None
) -> bool:
    """Check a user's strategy's indices of one layer of ``n`` neurons; whether they are
    ``0 … n − 1`` (always ``False`` on the device path: the columns are gathered)."""
    if idx.ndim != 1 or idx.numel() == 0:
        raise ValueError(
            f"{sampling!r} selected {tuple(idx.shape)} indices for layer "
            f"{_display(name)!r}; expected a non-empty 1-D index tensor"
        )
    outside = f"{sampling!r} selected an index outside [0, {n}) for layer {_display(name)!r}"
    if sync_free if sync_free is not None else _finite.on_device(idx):
        try:  # enqueued on a GPU; immediate on the CPU
            torch._assert_async((idx.min() >= 0) & (idx.max() < n), outside)
        except RuntimeError:
            raise ValueError(outside) from None
        return False
    if int(idx.min()) < 0 or int(idx.max()) >= n:
        raise ValueError(outside)
    return idx.numel() == n and bool((idx == torch.arange(n, device=idx.device)).all())
