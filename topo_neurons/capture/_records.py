"""What the recorder's hooks keep, and how it is read back.

:func:`output_rows` turns one hooked output into rows (examples) × columns (neurons): the batch
axis first, the positions as neurons or as examples, the padding mask applied.
:func:`stack_records` joins the rows of each layer and checks them (in-place changes, equal
example counts, finite values: :mod:`._checks`, with the sampling strategy's indices).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from ._checks import check_finite_records
from ._layers import _display, _Target, selected_output

__all__ = [
    "FewExamplesWarning",
    "mask_from_kwargs",
    "output_rows",
    "per_call_key",
    "stack_records",
    "warn_few_examples",
]


class FewExamplesWarning(UserWarning):
    """No more examples than neurons (``m ≤ n``): the correlations are degenerate.

    ``n`` columns over ``m`` examples span at most ``m − 1`` dimensions, so the deaths are biased
    towards 0 (all near 0, and T1 near its maximum, when ``m ≪ n``). The recorder,
    :func:`~topo_neurons.analyse` and :class:`~topo_neurons.Regularized` warn with this category;
    filter it where a small batch is deliberate (the paper trains 1010 neurons on batches of 256)::

        warnings.simplefilter("ignore", tn.FewExamplesWarning)
    """


#: ``_call_mask`` before the model's own forward has run in a recording (no keywords read yet).
_UNREAD = object()


def layer_mask(mask: object, call_mask: object, root: nn.Module) -> torch.Tensor | None:
    """The mask a layer's output gets: the recorder's tensor, or the one read from the model's
    keyword argument in this forward; ``ValueError`` when a name was given but the model's own
    forward never ran (only its layers were called: the keyword could not be read)."""
    if not isinstance(mask, str):
        return mask
    if call_mask is _UNREAD:
        raise ValueError(
            f"mask={mask!r} names a keyword argument of {type(root).__name__}'s forward, but "
            "a recorded layer ran without that forward being called (e.g. module.net(x) "
            "instead of module(x)), so the mask could not be read; call the model itself, or "
            "pass the mask as a tensor (recorder.mask = keep)"
        )
    return call_mask


def mask_from_kwargs(name: object, module: nn.Module, kwargs: Mapping[str, object]):
    """The keep-mask held by the model's keyword argument ``name`` in this call (``None`` if
    it is ``None``, or if ``name`` is not a string); ``ValueError`` listing the call's keyword
    arguments if it has no ``name``."""
    if not isinstance(name, str):
        return None
    if name not in kwargs:
        raise ValueError(
            f"mask={name!r} names a keyword argument that this call of "
            f"{type(module).__name__} does not have; its keyword arguments are "
            f"{sorted(kwargs) or 'none'} (pass the mask by keyword, e.g. "
            f"model(input_ids=..., {name}=...), or name one of those)"
        )
    value = kwargs[name]
    return None if value is None else _check_mask(value)


def warn_few_examples(m: int, n: int) -> None:
    """Warn (:class:`FewExamplesWarning`) that ``m ≤ n``: the correlations are degenerate."""
    warnings.warn(
        f"{m} examples for {n} neurons (m ≤ n): the {n} columns span at most m − 1 = "
        f"{m - 1} dimensions, so their correlations are degenerate and the deaths biased "
        "towards 0 (all near 0, and T1 near its maximum, when m ≪ n). Record more "
        "examples than neurons: a larger batch, fewer or sampled neurons, "
        "positions='examples'; in a training loop DataLoader(..., drop_last=True) "
        "avoids a short last batch.",
        FewExamplesWarning,
        stacklevel=3,
    )


def _check_mask(mask: object) -> torch.Tensor | str | None:
    if mask is None or isinstance(mask, str):
        return mask
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(mask)
    if not isinstance(mask, torch.Tensor):
        raise TypeError(
            "mask must be a boolean tensor (True = keep the position, attention_mask style), "
            f"or the name of the model's keyword argument that holds it; got {type(mask).__name__}"
        )
    if mask.dtype != torch.bool:
        if mask.is_floating_point() or mask.is_complex():
            raise TypeError(
                f"mask must be boolean or 0/1 integers (True/1 = keep); got dtype {mask.dtype}"
            )
        bad = (mask != 0) & (mask != 1)
        if bool(bad.any()):
            raise ValueError(
                f"mask holds values other than 0 and 1 (e.g. {int(mask[bad][0])}); "
                "pass a keep-mask: True/1 = keep the position, False/0 = padding"
            )
        mask = mask != 0
    if mask.ndim < 1:
        raise ValueError("mask must have a batch axis: shape (batch, positions...)")
    return mask


def record_mode(positions: str, t: _Target, ndim: int) -> str:
    """``"neurons"`` or ``"examples"``: where the positions of a ``ndim``-axis output go."""
    if positions != "auto":
        return positions
    return "examples" if ndim >= 3 and not t.channels else "neurons"


def output_rows(
    module: nn.Module,
    output: object,
    t: _Target,
    positions: str,
    mask: torch.Tensor | None,
    *,
    detach: bool,
) -> tuple[torch.Tensor, tuple[int, ...], str]:
    """One hooked output as a ``(rows, neurons)`` matrix.

    Parameters
    ----------
    module : torch.nn.Module
        The hooked module (named in errors).
    output : object
        What it returned; must be a tensor with the batch on axis ``t.batch_dim``.
    t : _Target
        The layer: its name, batch axis, functional activation and channel layout.
    positions : {"auto", "neurons", "examples"}
        Where the positions of the output go (see :func:`record_mode`).
    mask : torch.Tensor of bool, optional
        Keep-mask of shape ``(batch, positions…)``, applied to the rows.
    detach : bool
        Record a detached output.

    Returns
    -------
    rows : torch.Tensor, shape (m, n)
        ``m`` examples (batch × positions under ``"examples"``, masked), ``n`` neurons.
    shape : tuple of int
        The shape of one example's neurons (``(channels, H, W)``, ``(features,)``, …).
    kind : {"units", "channels", "features"}
        What the neurons are.
    where : tuple of int
        The example positions of the call, ``(batch, positions…)`` (``(batch,)`` when rows are
        examples), before the mask.
    """
    name = t.name
    if t.select is not None:
        output = selected_output(module, output, t)
    if not isinstance(output, torch.Tensor):
        tip = (
            f"pass select_output=0 (or select_output={{{_display(name)!r}: index or "
            "callable}) to record one of its elements, or record"
            if isinstance(output, (tuple, list))
            else "record"
        )
        raise TypeError(
            f"layer {_display(name)!r} ({type(module).__name__}) returned "
            f"{type(output).__name__}, not a tensor; {tip} a module that outputs a "
            "tensor of shape (batch, ...)"
        )
    if output.ndim < 2 or t.batch_dim >= output.ndim:
        raise ValueError(
            f"layer {_display(name)!r} output has shape {tuple(output.shape)}; "
            f"expected (batch, features, ...) with the batch on axis {t.batch_dim}"
        )
    out = output.detach() if detach else output
    if t.fn is not None:
        out = t.fn(out)
    if t.batch_dim:
        out = out.movedim(t.batch_dim, 0)
    mode = record_mode(positions, t, out.ndim)
    if mode == "neurons" or out.ndim == 2:
        shape = tuple(out.shape[1:])
        kind = "units" if t.channels and out.ndim > 2 else "features"
        where = tuple(out.shape[:1])
        flat = out.reshape(out.shape[0], -1)
    else:
        if t.channels:
            out = out.movedim(1, -1)
        shape = (out.shape[-1],)
        kind = "channels" if t.channels else "features"
        where = tuple(out.shape[:-1])
        flat = out.reshape(-1, out.shape[-1])
    if mask is not None:
        if tuple(mask.shape) != where:
            raise ValueError(
                f"mask of shape {tuple(mask.shape)} does not match the positions "
                f"{where} of layer {_display(name)!r} (output "
                f"{tuple(output.shape)}, batch axis {t.batch_dim}, "
                f"{mode}); the mask needs one entry per example position"
            )
        flat = flat[mask.reshape(-1).to(flat.device)]
    return flat, shape, kind, where


def per_call_key(rec: object, name: str, k: int) -> str:
    """The record key of call ``k`` (in one forward) of a per-call layer: ``name`` while it
    has been called once, ``name#k`` once a second call shows it is shared (the first call's
    records are then renamed ``name#0``, in place in the recorder's dicts: order kept)."""
    if k == 0:
        return f"{name}#0" if f"{name}#0" in rec._records else name
    if k == 1 and name in rec._records:
        for attr in ("_records", "_versions", "_shapes", "_kinds", "_where"):
            d = getattr(rec, attr)
            setattr(rec, attr, {(f"{name}#0" if n == name else n): v for n, v in d.items()})
    return f"{name}#{k}"


def stack_records(
    records: Mapping[str, list[torch.Tensor]],
    versions: Mapping[str, list[int]],
    shapes: Mapping[str, tuple[int, ...]],
    targets: list[_Target],
    where: Mapping[str, list[tuple[tuple[int, ...], torch.Tensor | None]]] | None = None,
    first_example: int = 0,
    batch: int | None = None,
    sync_free: bool | None = None,
) -> dict[str, torch.Tensor]:
    """Full per-layer activations, in forward-call order, validated.

    Parameters
    ----------
    records : mapping of str to list of torch.Tensor
        Per layer, the rows of each call (:func:`output_rows`), in call order.
    versions : mapping of str to list of int
        The version counter of each part when it was recorded.
    shapes : mapping of str to tuple of int
        Per layer, the shape of one example's neurons (named in errors).
    targets : list of _Target
        The hooked layers (named when nothing was recorded).
    where : mapping of str to list of (tuple of int, mask or None), optional
        Per layer and call, the example positions and the keep-mask (:func:`output_rows`):
        a NaN's row is named as its example (and position).
    first_example : int, default 0
        Index in the data set of the first recorded example (a data set fed in batches).
    batch : int, optional
        The batch of the data set being recorded (named in errors).
    sync_free : bool, optional
        The finite check without a host read (:func:`check_finite_records`); default: on a
        device, unless a data set is being read (``batch`` given).

    Returns
    -------
    dict of str to torch.Tensor, each of shape (m, n_layer)

    Raises
    ------
    RuntimeError
        Nothing was recorded.
    ValueError
        A part modified in place after it was recorded, layers with different numbers of
        examples, a ``'name#k'`` layer whose call ``k`` never came, or NaN/Inf in a layer's
        output.
    """
    if not records:
        names = [_display(t.name) for t in targets]
        raise RuntimeError(
            "nothing was recorded: run the model inside `with recorder:` before reading "
            f"activations (hooked layers: {names[:10]}{' …' if len(names) > 10 else ''}); "
            "a model run through torch.compile calls no hook added after its compilation: "
            "give the recorder the compiled model itself, which it then runs eagerly"
            + (
                "; or a 'name#k' layer's module was called fewer than k + 1 times per forward"
                if any(t.call is not None for t in targets)
                else ""
            )
        )
    absent = [t for t in targets if t.call is not None and t.name not in records]
    if absent:  # call k of a module never came: its layer would be left out silently
        raise ValueError(
            "no call "
            + ", ".join(f"{t.call} of module {_display(t.hook_name)!r}" for t in absent)
            + f" in the recorded forwards, so layers {[_display(t.name) for t in absent]} "
            "recorded nothing ('name#k' is call k, from 0, of the module in each forward); "
            "name calls that happen"
        )
    for name, parts in records.items():
        for part, version in zip(parts, versions[name]):
            if part._version != version:
                raise ValueError(
                    f"layer {_display(name)!r} output was modified in place after it was "
                    "recorded (e.g. by a following ReLU(inplace=True)), so its recorded "
                    "values are not its output; use point='post' (records the activation's "
                    "output), record the module that modifies it instead, or construct "
                    "that module with inplace=False"
                )
    full = {
        name: (parts[0] if len(parts) == 1 else torch.cat(parts, dim=0))
        for name, parts in records.items()
    }
    rows = {name: a.shape[0] for name, a in full.items()}
    if len(set(rows.values())) > 1:
        calls = {_display(n): len(p) for n, p in records.items()}
        shown = {_display(n): r for n, r in rows.items()}
        if len(set(calls.values())) > 1:
            raise ValueError(
                f"recorded layers have different numbers of examples {shown} (calls per "
                f"layer: {calls}); a module called more than once per forward (weight "
                "sharing) cannot be recorded as one layer with the others: name each call "
                "as its own layer, layers=['name#0', 'name#1', …], or record it in its own "
                "ActivationRecorder"
            )
        shapes = {_display(n): shapes[n] for n in rows}
        raise ValueError(
            f"recorded layers have different numbers of examples {shown} (neurons per "
            f"layer: {shapes}); every layer must give one row per example: record layers "
            "with the same positions (e.g. the tokens of a sequence model, not its pooled "
            "output), or set positions=, batch_dim= or mask= so that they agree"
        )
    check_finite_records(full, shapes, where, first_example, batch, sync_free)
    return full
