"""The activation after each layer (``point="post"``), found by tracing with ``torch.fx``.

:class:`_PostResolver` traces the nearest ancestor of a layer that traces, follows the layer's
output past normalisation / dropout / identity modules and stops at an elementwise activation:
a module (hooked itself) or a function or method (applied to the hooked output, out of place).
"""

from __future__ import annotations

import copy
import inspect
import types
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from ._layers import _PASS_TYPES, _is_activation_module

#: Elementwise activation functions as ``torch.fx`` sees them, mapped to their out-of-place form.
_ACT_FUNCS: dict[Any, Callable[..., torch.Tensor]] = {
    F.relu: F.relu,
    F.relu_: F.relu,
    torch.relu: torch.relu,
    torch.relu_: torch.relu,
    F.relu6: F.relu6,
    F.elu: F.elu,
    F.elu_: F.elu,
    F.selu: F.selu,
    F.celu: F.celu,
    F.leaky_relu: F.leaky_relu,
    F.leaky_relu_: F.leaky_relu,
    F.gelu: F.gelu,
    F.silu: F.silu,
    F.mish: F.mish,
    F.hardswish: F.hardswish,
    F.hardsigmoid: F.hardsigmoid,
    F.hardtanh: F.hardtanh,
    F.softplus: F.softplus,
    F.tanh: torch.tanh,
    F.sigmoid: torch.sigmoid,
    torch.tanh: torch.tanh,
    torch.tanh_: torch.tanh,
    torch.sigmoid: torch.sigmoid,
    torch.sigmoid_: torch.sigmoid,
}


_ACT_METHODS: dict[str, Callable[..., torch.Tensor]] = {
    "relu": torch.relu,
    "relu_": torch.relu,
    "tanh": torch.tanh,
    "tanh_": torch.tanh,
    "sigmoid": torch.sigmoid,
    "sigmoid_": torch.sigmoid,
}


#: Wrappers whose forward must not be traced (it runs collectives); the wrapped model is.
_WRAPPER_TYPES: tuple[type[nn.Module], ...] = (
    nn.DataParallel,
    nn.parallel.DistributedDataParallel,
)


#: Out-of-place activations whose backward needs only their result, so that a later in-place
#: change of their input (by the model's own in-place activation) does not break autograd.
_RESULT_ONLY = (F.relu, torch.relu)


def _on_a_copy(f: Callable[[torch.Tensor], torch.Tensor], name: str) -> Callable:
    """``f`` applied to a clone of its input: the model's later in-place activation modifies the
    original, which ``f``'s backward may still need."""

    def apply(t: torch.Tensor) -> torch.Tensor:
        return f(t.clone())

    apply.__name__ = name
    return apply


def _out_of_place(m: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation module itself, or (for an in-place one) a copy with ``inplace=False``
    applied to a clone of its input."""
    if getattr(m, "inplace", False):
        m = copy.copy(m)
        m.inplace = False
        return _on_a_copy(m, type(m).__name__)
    return m


class _Unknown:
    """Resolution could not see what follows a layer; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _Tracer(torch.fx.Tracer):
    """fx tracer that keeps the given layers and every activation module as leaves."""

    def __init__(self, leaves: set[int]) -> None:
        super().__init__()
        self._leaves = leaves

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if id(m) in self._leaves or _is_activation_module(m) or isinstance(m, _PASS_TYPES):
            return True
        if hasattr(m, "original_name"):  # TorchScript modules (and wrappers of them)
            return True
        return super().is_leaf_module(m, module_qualified_name)


class _PostResolver:
    """Finds, for a layer, the module or function whose output is the layer's post-activation.

    It traces (``torch.fx``) the nearest ancestor of the layer that traces, follows the layer's
    output through normalisation / dropout / identity modules and stops at an elementwise
    activation (module, function or method). Each ancestor is traced at most once.
    """

    def __init__(self, model: nn.Module, leaves: Iterable[nn.Module]) -> None:
        self.model = model
        self.named = dict(model.named_modules())
        self._leaves = {id(m) for m in leaves}
        self._graphs: dict[str, torch.fx.Graph | _Unknown] = {}

    def _graph(self, prefix: str) -> torch.fx.Graph | _Unknown:
        if prefix not in self._graphs:
            root = self.named[prefix]
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self._graphs[prefix] = _trace_forward(_Tracer(self._leaves), root)
            except Exception as exc:
                where = f"module {prefix!r}" if prefix else "the model"
                self._graphs[prefix] = _Unknown(
                    f"torch.fx cannot trace {where} ({type(root).__name__}): {_why(root, exc)}"
                )
        return self._graphs[prefix]

    def resolve(self, name: str) -> tuple[str, Callable | None] | _Unknown | None:
        """``(hooked module name, fn or None)``, ``None`` (no activation follows) or unknown."""
        parts = name.split(".") if name else []
        prefixes = [".".join(parts[:k]) for k in range(len(parts) - 1, -1, -1)]
        for prefix in prefixes:
            parent = self.named[prefix]
            if isinstance(parent, _WRAPPER_TYPES):
                return None  # never trace DDP/DataParallel (collectives); the model's output
            if isinstance(parent, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)):
                return self._transformer(prefix, parent, name)
            graph = self._graph(prefix)
            if isinstance(graph, _Unknown):
                return graph
            rel = name[len(prefix) + 1 :] if prefix else name
            found = self._follow(graph, prefix, rel)
            if found != "output":
                return found
        return None  # the model's output: the logits

    @staticmethod
    def _transformer(prefix: str, block: nn.Module, name: str):
        if name != (f"{prefix}.linear1" if prefix else "linear1"):
            return None  # attention projections, linear2: no activation follows
        act = block.activation
        if isinstance(act, nn.Module):
            return f"{prefix}.activation", None
        return name, _ACT_FUNCS.get(act, act)

    def _follow(self, graph: torch.fx.Graph, prefix: str, rel: str):
        calls = [n for n in graph.nodes if n.op == "call_module"]
        count: dict[str, int] = {}
        for n in calls:
            count[n.target] = count.get(n.target, 0) + 1
        nodes = [n for n in calls if n.target == rel]
        if len(nodes) != 1:
            how = "never calls it" if not nodes else f"calls it {len(nodes)} times"
            return _Unknown(f"the traced forward {how}")
        node = last = nodes[0]
        full = lambda t: f"{prefix}.{t}" if prefix else t  # noqa: E731
        while True:
            users = list(node.users)
            if len(users) != 1:
                return None  # used several times (or not at all): no single activation
            u = users[0]
            if u.op == "output":
                return "output"
            if u.op == "call_module":
                mod = self.named[full(u.target)]
                if isinstance(mod, _PASS_TYPES):
                    if count[u.target] != 1:
                        return _Unknown(f"module {full(u.target)!r} after it is shared")
                    node = last = u
                    continue
                if _is_activation_module(mod):
                    if count[u.target] == 1:
                        return full(u.target), None
                    return full(last.target), _out_of_place(mod)  # a shared activation module
                return None
            fn = _activation_fn(u, node)
            return (full(last.target), fn) if fn is not None else None


def _trace_forward(tracer: _Tracer, root: nn.Module) -> torch.fx.Graph:
    """The graph of what ``root(...)`` runs. torch.fx traces the class's ``forward``; where a
    method bound to ``root`` replaces it on the instance (``m.forward = MethodType(f, m)``),
    that method is traced (on a view of ``root`` whose class runs it: ``root`` is left as it
    is), and the class's ``forward`` only if it cannot be. Another callable put in its place
    (a closure, a ``partial``) is not traced: the class's ``forward`` is."""
    fwd = root.__dict__.get("forward")
    func = getattr(fwd, "__func__", None)
    if getattr(fwd, "__self__", None) is not root or not isinstance(func, types.FunctionType):
        return tracer.trace(root)
    try:
        cls = type(root)
        view = object.__new__(type(cls.__name__, (cls,), {"forward": func}))
        view.__dict__.update(root.__dict__)
        del view.__dict__["forward"]
        return type(tracer)(tracer._leaves).trace(view)
    except Exception:
        return tracer.trace(root)


#: ``forward`` of a class that defines none (torch's placeholder, LightningModule's).
_NO_FORWARD = ("Module._forward_unimplemented", "LightningModule.forward")


def defines_no_forward(module: nn.Module) -> bool:
    """Whether ``module``'s class defines no ``forward`` (torch's or Lightning's placeholder)."""
    return getattr(type(module).forward, "__qualname__", "") in _NO_FORWARD


def _why(root: nn.Module, exc: Exception) -> str:
    """Why tracing failed, in one short clause (the first sentence of torch.fx's message)."""
    if defines_no_forward(root) or ("forward" in str(exc) and "missing" in str(exc)):
        return "it defines no forward method"
    text = " ".join(str(exc).split()) or type(exc).__name__
    first = text.split(". ")[0].rstrip(".")
    return first if len(first) <= 160 else first[:157] + "…"


def _activation_fn(u: torch.fx.Node, src: torch.fx.Node) -> Callable | None:
    """The out-of-place activation that fx node ``u`` applies to ``src``, or None."""
    if not u.args or u.args[0] is not src:
        return None
    rest, kwargs = u.args[1:], dict(u.kwargs)
    has_node = []
    torch.fx.node.map_arg((rest, kwargs), lambda n: has_node.append(n))
    if has_node:
        return None
    if u.op == "call_method":
        f = _ACT_METHODS.get(u.target)
        if f is None or rest or kwargs:
            return None
        in_place = u.target.endswith("_") and f not in _RESULT_ONLY
        return _on_a_copy(f, f.__name__) if in_place else f
    if u.op != "call_function" or u.target not in _ACT_FUNCS:
        return None
    f = _ACT_FUNCS[u.target]
    in_place = f is not u.target  # relu_, leaky_relu_, …
    try:
        bound = inspect.signature(f).bind_partial(None, *rest, **kwargs)
        in_place = bool(bound.arguments.pop("inplace", False)) or in_place
        rest = bound.args[1:]
        kwargs = bound.kwargs
    except (TypeError, ValueError):
        pass

    def apply(t: torch.Tensor) -> torch.Tensor:
        return f(t, *rest, **kwargs)

    name = getattr(f, "__name__", "activation")
    apply.__name__ = name
    return _on_a_copy(apply, name) if in_place and f not in _RESULT_ONLY else apply
