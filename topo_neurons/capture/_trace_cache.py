"""What the set-up of a recorder found, kept per model so that the next recorder skips the trace.

Building an :class:`~topo_neurons.ActivationRecorder` resolves its layers and traces the forward
with ``torch.fx`` (:mod:`._targets`, :mod:`._trace`): about 1–2 ms for a small MLP, far more for
a transformer. :func:`cached_targets` keeps the result (a *plan*: names, record points, batch
axes, the functional activations found) per model and per ``layers=`` / ``point=`` /
``select_output=`` / ``batch_dim=``, and rebuilds the targets from it while the model is
unchanged.

*Unchanged* is a fingerprint taken at every construction, one pass over the module tree; for
each module it holds

* its name and identity (a module added, removed or replaced), its class and the class's
  ``forward`` (``__class__`` reassigned, ``Class.forward`` patched), the names of its own
  parameters (``_is_neuron_layer``);
* the values of its plain attributes (``training``, ``batch_first``, ``in_features``, a user's
  ``self.act = "relu"``; numbers, strings, ``None`` and tuples / lists / dicts of them) and the
  identity of every other attribute (an instance ``forward`` patched in, a function or a
  config object put in place of another).

Objects are compared by identity only while they live (the entry keeps weak references to
them and to the modules, so an identity reused by a new object is never taken for the old).
Not watched: what an attribute object holds inside (a config object changed in place), class
attributes other than ``forward``, globals a ``forward`` reads. After such a change call
:func:`clear_trace_cache`. The entry holds the model only weakly: it goes with the model.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from torch import nn

from ._layers import _Target
from ._targets import _check_select, resolve_targets, set_batch_dims, unwrap_compiled

__all__ = ["cached_targets", "clear_trace_cache"]

#: ``id(model)`` → its entry; an entry is removed when its model is garbage-collected.
_CACHE: dict[int, _Entry] = {}

#: Fingerprints (model states) kept per model, and plans per fingerprint (oldest dropped).
_STATES_PER_MODEL = 4
_PLANS_PER_STATE = 32

#: ``nn.Module``'s own bookkeeping (hooks, parameter and buffer dicts), left out of the
#: fingerprint; ``training`` is kept (a forward may branch on it).
_INTERNAL = frozenset(nn.Module().__dict__) - {"training"}

_PLAIN = (str, int, float, bool, type(None))
_MAX_ITEMS = 64  # longer containers are compared by identity


class _Entry:
    """One model's states: fingerprint → (weak references to check, plans by key)."""

    __slots__ = ("model", "states")

    def __init__(self, model: nn.Module) -> None:
        key = id(model)
        self.model = weakref.ref(model, lambda _r: _CACHE.pop(key, None))
        self.states: dict[tuple, tuple[list, dict[tuple, tuple]]] = {}


def clear_trace_cache(model: nn.Module | None = None) -> None:
    """Forget what earlier recorders found by tracing ``model`` (every model: ``None``).

    The next :class:`~topo_neurons.ActivationRecorder` on it traces the forward again. Needed
    only after a change the cache does not watch: something held *inside* an attribute object
    (a config changed in place), a class attribute other than ``forward``, or a global that
    ``forward`` reads. Modules added, removed or replaced, ``train()`` / ``eval()``, a patched
    ``forward`` and the module's own plain attributes are watched.

    Parameters
    ----------
    model : torch.nn.Module, optional
        The model (a ``torch.compile`` wrapper counts as the model it wraps).
    """
    if model is None:
        _CACHE.clear()
        return
    _CACHE.pop(id(unwrap_compiled(model)), None)


def _plain(v: Any, depth: int = 0) -> Any:
    """``v`` as a hashable value when it is plain data (numbers, strings, None, and small
    tuples / lists / dicts of them), else ``_OBJECT``."""
    t = type(v)
    if t in _PLAIN:
        return (t, v) if t is not float or v == v else (t, "nan")
    if depth < 3 and t in (tuple, list) and len(v) <= _MAX_ITEMS:
        out = tuple(_plain(x, depth + 1) for x in v)
        return _OBJECT if _OBJECT in out else (t, out)
    if depth < 3 and t is dict and len(v) <= _MAX_ITEMS:
        out = tuple((_plain(k, depth + 1), _plain(x, depth + 1)) for k, x in v.items())
        return _OBJECT if any(_OBJECT in kv for kv in out) else (t, out)
    return _OBJECT


_OBJECT = object()


def _fingerprint(named: dict[str, nn.Module]) -> tuple[tuple, list]:
    """``(fingerprint, objects)``: a hashable account of the module tree, and the objects it
    names by identity (``id``): modules, classes, their ``forward`` functions, attribute objects."""
    fp: list = []
    objects: list = []
    for name, m in named.items():
        cls = type(m)
        fwd = getattr(cls, "forward", None)
        params = tuple([k for k, p in m._parameters.items() if p is not None])
        fp.extend((name, id(m), id(cls), id(fwd), params))
        objects.extend((m, cls, fwd))
        d = m.__dict__
        for k in [k for k in d if k not in _INTERNAL]:
            v = d[k]
            t = type(v)
            if t is bool or t is int or t is str or v is None:  # the common case, inline
                fp.append((k, (t, v)))
                continue
            p = _plain(v)
            if p is _OBJECT:
                fp.append((k, id(v)))
                objects.append(v)
            else:
                fp.append((k, p))
    return tuple(fp), objects


def _weak(obj: object) -> object:
    """A weak reference to ``obj``, or ``None`` where it takes none (a list, a dict)."""
    try:
        return weakref.ref(obj)
    except TypeError:
        return None


def _state(entry: _Entry | None, fp: tuple) -> tuple[list, dict] | None:
    """The entry's state for fingerprint ``fp``: ``(weak references, plans)``, or ``None``.

    A state whose objects have not all survived is dropped: an object that the fingerprint
    names by ``id`` died, and a new one may have taken its address.
    """
    state = entry.states.get(fp) if entry is not None else None
    if state is not None and not all(r is None or r() is not None for r in state[0]):
        del entry.states[fp]
        return None
    return state


def _key(
    layers: object, point: str, select_output: object, batch_dim: object, named: dict
) -> tuple | None:
    """The plan's key for these arguments, or ``None`` where they cannot be keyed (left to
    :func:`resolve_targets`, which raises on the bad ones)."""
    by_id = None

    def item(x: object) -> object:
        nonlocal by_id
        if isinstance(x, str):
            return ("s", x)
        if isinstance(x, nn.Module):
            by_id = by_id or {id(m): n for n, m in named.items()}
            return ("m", by_id[id(x)]) if id(x) in by_id else None
        return None

    if layers is None:
        lk: object = None
    elif isinstance(layers, (str, nn.Module)):
        lk = ("one", item(layers))
    else:
        lk = tuple(item(x) for x in layers)
    if lk is not None and None in lk:
        return None
    if select_output is None:
        sk: object = None
    elif isinstance(select_output, Mapping):
        sk = ("map", tuple(select_output))
    else:
        sk = "all"
    try:
        if isinstance(batch_dim, Mapping):
            bk: object = ("map", tuple((k, type(v), v) for k, v in batch_dim.items()))
        else:
            bk = (type(batch_dim), batch_dim)
        key = (lk, point, sk, bk)
        hash(key)
    except TypeError:
        return None
    return key


def cached_targets(
    model: nn.Module,
    layers: str | nn.Module | Iterable[str | nn.Module] | None,
    point: str,
    select_output: object,
    batch_dim: int | Mapping[str, int] | None,
) -> list[_Target]:
    """:func:`resolve_targets` then :func:`set_batch_dims`, from the cache while ``model``
    is unchanged (see the module's docstring).

    Parameters
    ----------
    model : torch.nn.Module
        The module whose layers are hooked (a compiled model's ``_orig_mod``).
    layers, point, select_output, batch_dim
        As in :class:`~topo_neurons.ActivationRecorder`.

    Returns
    -------
    list of _Target
        New targets (the recorder may keep them); equal to a fresh resolution's.
    """
    if layers is not None and not isinstance(layers, (str, nn.Module)):
        layers = list(layers)  # an iterator is read once
    named = dict(model.named_modules())
    fp, objects = _fingerprint(named)
    key = _key(layers, point, select_output, batch_dim, named)
    entry = _CACHE.get(id(model))
    if entry is not None and entry.model() is not model:
        entry = None
    state = _state(entry, fp)
    if key is not None and state is not None and key in state[1]:
        return _rebuild(state[1][key], named, select_output)
    targets = resolve_targets(model, layers, point, select_output)
    set_batch_dims(model, targets, batch_dim)
    if key is None:
        return targets
    # Kept under the model's state *after* the trace, which may have added attributes to it
    # (torch.fx keeps a tensor made in forward as ``_tensor_constant0`` of the traced module).
    named = dict(model.named_modules())
    after, objects = _fingerprint(named)
    if after != fp:
        fp, state = after, _state(entry, after)
    if entry is None:
        entry = _CACHE[id(model)] = _Entry(model)
    if state is None:
        if len(entry.states) >= _STATES_PER_MODEL:
            del entry.states[next(iter(entry.states))]
        state = entry.states[fp] = ([_weak(o) for o in objects], {})
    plans = state[1]
    if len(plans) >= _PLANS_PER_STATE:
        del plans[next(iter(plans))]
    plans[key] = _plan(targets, named)
    return targets


def _plan(targets: list[_Target], named: dict[str, nn.Module]) -> tuple:
    """The targets without the model's modules (names instead): the plan keeps no module of
    the model alive, so the entry never holds its own key."""
    by_id = {id(m): n for n, m in named.items()}
    out = []
    for t in targets:
        fn: object = t.fn
        if isinstance(fn, nn.Module) and id(fn) in by_id:
            fn = ("module", by_id[id(fn)])
        out.append(
            (
                t.name,
                by_id[id(t.layer)],
                t.hook_name,
                fn,
                t.source,
                t.channels,
                t.batch_dim,
                t.call,
                t.per_call,
            )
        )
    return tuple(out)


def _rebuild(plan: tuple, named: dict[str, nn.Module], select_output: object) -> list[_Target]:
    """New targets from a plan, with this construction's ``select_output`` (checked)."""
    selects = _check_select(select_output, [p[0] for p in plan])
    out = []
    for name, layer, hook_name, fn, source, channels, batch_dim, call, per_call in plan:
        if isinstance(fn, tuple):
            fn = named[fn[1]]
        out.append(
            _Target(
                name,
                named[layer],
                hook_name,
                named[hook_name],
                fn,
                source,
                channels,
                batch_dim,
                call,
                per_call,
                selects.get(name),
            )
        )
    return out
