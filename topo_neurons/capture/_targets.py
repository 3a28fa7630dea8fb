"""From ``layers=`` to hook targets: which modules are recorded, at which point, batch axis.

The set-up of :class:`~topo_neurons.ActivationRecorder`, done once at construction: resolve the
layers (by name, by module, or the defaults: every leaf layer with parameters, or the MLP hidden
layer of each attention block), find the activation after each (``point="post"``, :mod:`._trace`;
warning once per layer where it cannot be seen) and fix each output's batch axis.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Iterable, Mapping

import numpy as np
import torch
from torch import nn

from ._layers import (
    _CHANNEL_TYPES,
    _SEQ_FIRST_TYPES,
    _TUPLE_TYPES,
    _display,
    _is_activation_module,
    _is_attention,
    _is_neuron_layer,
    _Target,
)
from ._trace import _PostResolver, _Unknown

__all__ = ["force_eager", "resolve_targets", "set_batch_dims", "unwrap_compiled"]

#: Layers already warned about (per model), so that a fallback is reported once.
_WARNED: weakref.WeakKeyDictionary[nn.Module, set[str]] = weakref.WeakKeyDictionary()


def unwrap_compiled(model: nn.Module) -> nn.Module:
    """The module that ``torch.compile`` wrapped (``OptimizedModule._orig_mod``), else ``model``.

    Its layers are the model's (the same names as before compilation) and its hooks fire when
    it runs eagerly, which the recorder makes it do while recording.
    """
    while (
        isinstance(getattr(model, "_orig_mod", None), nn.Module)
        and type(model).__name__ == "OptimizedModule"
    ):
        model = model._orig_mod
    return model


class _ForceEager:
    """``torch.compiler.set_stance("force_eager")`` shared by the recorders of compiled models:
    set by the first to enter, the previous stance restored by the last to leave, whatever
    the order of their exits (one ``set_stance`` per recorder, left in another order, would
    leave ``force_eager`` set for good)."""

    depth = 0
    saved: object = None

    def __exit__(self, *exc: object) -> None:
        _ForceEager.depth -= 1
        if _ForceEager.depth == 0:
            _ForceEager.saved.__exit__(None, None, None)
            _ForceEager.saved = None


def force_eager() -> _ForceEager:
    """Make compiled code run eagerly until the returned object's ``__exit__``."""
    if _ForceEager.depth == 0:
        _ForceEager.saved = torch.compiler.set_stance("force_eager")
    _ForceEager.depth += 1
    return _ForceEager()


def _default_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Leaf modules with parameters of their own (Linear, Conv*, …) except normalisation, and
    except modules that return a tuple (LSTM, GRU, RNN, LSTMCell, MultiheadAttention: they
    cannot be recorded without ``select_output=``) and attention's functional ``out_proj``."""
    out = []
    for name, mod in model.named_modules():
        if isinstance(mod, _TUPLE_TYPES):
            continue
        if isinstance(mod, nn.modules.linear.NonDynamicallyQuantizableLinear):
            continue  # MultiheadAttention's out_proj, applied functionally: no hook fires
        is_leaf = next(mod.children(), None) is None
        if is_leaf and _is_neuron_layer(mod):
            out.append((name, mod))
    return out


def _tuple_layers(model: nn.Module) -> list[str]:
    """Names of the modules with parameters that return tuples (left out of the defaults)."""
    return [n for n, m in model.named_modules() if isinstance(m, _TUPLE_TYPES)]


def _block_layers(model: nn.Module, resolver: _PostResolver) -> list[_Target]:
    """In a model with attention blocks: the layers of each block's MLP whose output goes
    through an activation (``linear1`` of torch's encoder/decoder layers, ``intermediate.dense``
    of a BERT layer); empty when the model has no attention.

    Where a block's forward cannot be traced (ALBERT's ``AlbertLayer``), its elementwise
    activation modules outside its attention (ALBERT's ``activation``, the MLP's hidden layer)
    are recorded as they are. A block shared by every layer of the network (ALBERT) calls them
    once per layer: each call is then its own layer ``name#k`` (see ``per_call``).
    """
    blocks = [
        name
        for name, mod in model.named_modules()
        if isinstance(mod, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer))
        or any(_is_attention(c) for c in mod.children())
    ]
    if not blocks:
        return []
    inside = lambda n, b: not b or n.startswith(b + ".")  # noqa: E731
    out = []
    for name, mod in _default_layers(model):
        if not any(inside(name, b) for b in blocks):
            continue
        if isinstance(resolver.resolve(name), tuple):
            out.append(_Target(name, mod, name, mod))
    named = dict(model.named_modules())
    attention = [n for n, m in named.items() if _is_attention(m)]
    for b in blocks:
        if any(inside(t.name, b) for t in out):
            continue
        for name, mod in named.items():
            if (
                inside(name, b)
                and _is_activation_module(mod)
                and not any(inside(name, a) for a in attention)
            ):
                out.append(_Target(name, mod, name, mod, per_call=True))
    order = {n: k for k, n in enumerate(named)}
    out = list({t.name: t for t in out}.values())
    return sorted(out, key=lambda t: order[t.name])


def _batch_axis_unknown(model: nn.Module, name: str) -> str | None:
    """The torch module holding ``name`` whose ``batch_first=False`` puts the batch on axis 1."""
    named = dict(model.named_modules())
    parts = name.split(".") if name else []
    for k in range(len(parts), -1, -1):
        prefix = ".".join(parts[:k])
        mod = named.get(prefix)
        if isinstance(mod, nn.RNNBase) and not mod.batch_first:
            return f"{_display(prefix)!r} ({type(mod).__name__}, batch_first=False)"
        if isinstance(mod, _SEQ_FIRST_TYPES) and any(
            isinstance(m, nn.MultiheadAttention) and not m.batch_first for m in mod.modules()
        ):
            return f"{_display(prefix)!r} ({type(mod).__name__}, batch_first=False)"
    return None


def resolve_targets(
    model: nn.Module,
    layers: str | nn.Module | Iterable[str | nn.Module] | None,
    point: str,
    select_output: object = None,
) -> list[_Target]:
    """The hook targets of ``layers=`` in ``model``, each with its record point.

    Parameters
    ----------
    model : torch.nn.Module
    layers : None, str, nn.Module, or iterable of str / nn.Module
        As in :class:`~topo_neurons.ActivationRecorder` (``None``: the default layers).
        ``"name#k"`` is call ``k`` (from 0) of module ``name`` in each forward.
    point : {"post", "pre"}
        Record after the activation that follows each layer, or the layer's own output.
    select_output : None, int, callable, or mapping of str to int / callable
        Which element of a tuple output is recorded (one for all, or per layer name).

    Returns
    -------
    list of _Target
        In the order of ``layers`` (the default layers: forward-call order); ``batch_dim``
        still unset (see :func:`set_batch_dims`).
    """
    named = dict(model.named_modules())
    if layers is None:
        resolver = _PostResolver(model, [m for _, m in _default_layers(model)])
        chosen = _block_layers(model, resolver) or [
            _Target(n, m, n, m) for n, m in _default_layers(model)
        ]
        if not chosen:
            tuples = _tuple_layers(model)
            extra = (
                f" (modules that return tuples are not recorded by default: {tuples}; name "
                "one in layers= with select_output=0 to record its output tensor)"
                if tuples
                else ""
            )
            raise ValueError(
                f"{type(model).__name__} has no leaf module with parameters to record{extra}; "
                "pass layers=[...] with module names"
            )
        _warn_tuples(model)
    else:
        chosen = _named_layers(model, named, layers)
        resolver = _PostResolver(model, [t.layer for t in chosen])
    selects = _check_select(select_output, [t.name for t in chosen])
    targets = []
    unseen: list[tuple[str, nn.Module, str]] = []
    for t in chosen:
        name, mod = t.hook_name, t.layer
        t.channels = isinstance(mod, _CHANNEL_TYPES)
        t.select = selects.get(t.name)
        t.source = f"{_display(name)} ({type(mod).__name__})"
        if point == "post" and _is_neuron_layer(mod) and t.select is None:
            found = resolver.resolve(name)
            if isinstance(found, _Unknown):
                unseen.append((name, mod, found.reason))
            elif found is not None:
                hook_name, fn = found
                t.hook_name, t.hook, t.fn = hook_name, named[hook_name], fn
                what = type(t.hook).__name__
                if fn is None:
                    t.source = f"{_display(hook_name)} ({what})"
                else:
                    fname = getattr(fn, "__name__", type(fn).__name__)
                    t.source = f"{_display(hook_name)} ({what}) → {fname}"
        targets.append(t)
    _warn_fallback(model, unseen)
    return targets


def _warn_tuples(model: nn.Module) -> None:
    """Say once per model which recurrent layers the defaults leave out (tuple outputs)."""
    seen = _WARNED.setdefault(model, set())
    rnns = [
        n
        for n, m in model.named_modules()
        if isinstance(m, (nn.RNNBase, nn.LSTMCell)) and f"tuple:{n}" not in seen
    ]
    if rnns:
        seen.update(f"tuple:{n}" for n in rnns)
        warnings.warn(
            f"layers=None leaves out the recurrent layers {rnns}: they return tuples "
            "((output, state)), not one tensor. To record one, name it in layers= with "
            "select_output=0 (its output sequence; batch_dim=1 unless batch_first=True).",
            UserWarning,
            stacklevel=4,
        )


def _check_select(select_output: object, names: list[str]) -> dict[str, object]:
    """``select_output=`` per recorded layer name (checked: ints ≥ 0 or callables)."""
    if select_output is None:
        return {}
    if isinstance(select_output, Mapping):
        unknown = [k for k in select_output if k not in names]
        if unknown:
            raise ValueError(
                f"select_output names layers {unknown} that are not recorded; recorded: {names}"
            )
        per = dict(select_output)
    else:
        per = dict.fromkeys(names, select_output)
    for name, sel in per.items():
        ok = callable(sel) or (
            isinstance(sel, (int, np.integer)) and not isinstance(sel, bool) and sel >= 0
        )
        if not ok:
            raise TypeError(
                f"select_output for layer {_display(name)!r} must be an index ≥ 0 into the "
                f"layer's tuple output (0: an LSTM's output sequence) or a callable "
                f"output → tensor; got {sel!r}"
            )
    return per


def _warn_fallback(model: nn.Module, unseen: list[tuple[str, nn.Module, str]]) -> None:
    """One warning naming every layer recorded before its activation (once per layer)."""
    seen = _WARNED.setdefault(model, set())
    new = list({n: (n, m, r) for n, m, r in unseen if n not in seen}.values())  # 'fc#0', 'fc#1'
    if not new:
        return
    seen.update(n for n, _, _ in new)
    names = ", ".join(f"{_display(n)!r} ({type(m).__name__})" for n, m, _ in new)
    reasons = "; ".join(dict.fromkeys(r for _, _, r in new))
    which = "layer" if len(new) == 1 else "layers"
    whose = "layer's" if len(new) == 1 else "layers'"
    warnings.warn(
        f"point='post': cannot see which activation follows {which} {names}, because "
        f"{reasons}. The {whose} own output (before any activation) is recorded instead; "
        "name the activation modules in layers=, or pass point='pre' to record "
        "pre-activations on purpose.",
        UserWarning,
        stacklevel=4,
    )


def _named_layers(
    model: nn.Module,
    named: dict[str, nn.Module],
    layers: str | nn.Module | Iterable[str | nn.Module],
) -> list[_Target]:
    """``layers=`` given by name or module, checked against ``model``; ``"name#k"`` is call
    ``k`` of module ``name`` in each forward; a compiled model's ``_orig_mod.`` prefix is
    dropped."""
    by_id = {id(m): n for n, m in named.items()}
    items = [layers] if isinstance(layers, (str, nn.Module)) else list(layers)
    if not items:
        raise ValueError("layers=[] selects nothing; pass None for every parametrised layer")
    valid = [n for n in named if n]
    shown = ", ".join(repr(n) for n in valid[:30]) + (" …" if len(valid) > 30 else "")
    out: list[_Target] = []
    for item in items:
        call = None
        if isinstance(item, str):
            name = item
            while name.startswith("_orig_mod.") and name not in named:
                name = name[len("_orig_mod.") :]  # named as in the torch.compile wrapper
            module_name = name
            head, sep, tail = name.rpartition("#")
            if name not in named and sep and tail.isdigit() and head in named:
                module_name, call = head, int(tail)
            if module_name not in named:
                raise ValueError(
                    f"layer {item!r} is not a module of {type(model).__name__}; "
                    f"valid names are: {shown} (call k of a module called several times per "
                    "forward: 'name#k')"
                )
        elif isinstance(item, nn.Module):
            if id(item) not in by_id:
                raise ValueError(
                    f"module {type(item).__name__} is not part of {type(model).__name__}; "
                    f"valid names are: {shown}"
                )
            name = module_name = by_id[id(item)]
        else:
            raise TypeError(
                f"layers must hold module names (str) or modules; got {type(item).__name__}"
            )
        if any(name == t.name for t in out):
            raise ValueError(f"layer {_display(name)!r} is listed twice in layers")
        mod = named[module_name]
        out.append(_Target(name, mod, module_name, mod, call=call))
    return out


def set_batch_dims(
    model: nn.Module, targets: list[_Target], batch_dim: int | Mapping[str, int] | None
) -> None:
    """Set ``batch_dim`` of every target: one axis for all, per layer name, or default 0.

    Raises ``ValueError`` for names that are not recorded, for a negative or non-integer axis,
    and for a layer inside a ``batch_first=False`` torch module when no axis is given.
    """
    names = [t.name for t in targets]
    per: Mapping[str, int] = {}
    default: int | None = None
    if isinstance(batch_dim, Mapping):
        unknown = [k for k in batch_dim if k not in names]
        if unknown:
            raise ValueError(
                f"batch_dim names layers {unknown} that are not recorded; recorded: {names}"
            )
        per = batch_dim
    elif batch_dim is not None:
        default = batch_dim
    for t in targets:
        b = per.get(t.name, default)
        if b is None:
            where = _batch_axis_unknown(model, t.hook_name)
            if where is not None:
                raise ValueError(
                    f"layer {_display(t.name)!r} is inside {where}: its outputs are "
                    "(seq, batch, ...), so the batch axis cannot be taken as axis 0; pass "
                    "batch_dim=1 (or batch_dim={layer: axis}), or build the model with "
                    "batch_first=True"
                )
            b = 0
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 0:
            raise ValueError(
                f"batch_dim for layer {_display(t.name)!r} must be an axis index ≥ 0; got {b!r}"
            )
        t.batch_dim = int(b)
