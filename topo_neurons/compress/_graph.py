"""Where a layer's neurons go: the consumer of its post-activation output, found with torch.fx.

A layer can be folded when its output reaches exactly one linear layer through per-neuron
operations only:

``producer (Linear / Conv) → [BatchNorm] → [Dropout / Identity] → activation →
[Dropout / Identity] → consumer (Linear / Conv)``

with every intermediate value used once. The producer's neuron ``j`` is then row ``j`` of the
producer (and channel ``j`` of the BatchNorm, if any) and input column ``j`` of the consumer.
Anything else (a norm layer after the activation, a residual sum, a second use, a flatten, a
grouped convolution, a per-channel PReLU, a consumer called more than once) is refused with a
``ValueError`` that names the layer and what stands in the way.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.fx
from torch import nn

from ..capture._layers import _is_activation_module
from ..capture._trace import _ACT_FUNCS, _ACT_METHODS

__all__ = ["FoldSite", "find_sites", "foldable_layers"]

#: Layers whose neurons can be folded, and consumers that can absorb them.
_LINEAR: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
#: Per-neuron modules that are the identity in eval mode.
_SKIP: tuple[type[nn.Module], ...] = (nn.modules.dropout._DropoutNd, nn.Identity)
_BN = nn.modules.batchnorm._BatchNorm


@dataclass(frozen=True)
class FoldSite:
    """One foldable layer: its producer, per-channel norms, activation and consumer.

    Attributes
    ----------
    layer : str
        The producing module's name (``Linear`` or ``Conv*d``).
    norms : tuple of str
        BatchNorm modules between the producer and the activation (sliced with the producer).
    consumer : str
        The module that reads the post-activation output (``Linear`` or ``Conv*d``).
    conv : bool
        Whether the neurons are channels (a convolutional producer).
    """

    layer: str
    norms: tuple[str, ...]
    consumer: str
    conv: bool


class _Tracer(torch.fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualified_name: str) -> bool:
        if isinstance(m, (*_LINEAR, *_SKIP, _BN, nn.LayerNorm, nn.GroupNorm)):
            return True
        if _is_activation_module(m):
            return True
        return super().is_leaf_module(m, qualified_name)


def _trace(model: nn.Module) -> torch.fx.Graph:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _Tracer().trace(model)
    except Exception as exc:  # torch.fx raises many types
        first = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise ValueError(
            "fold_redundant finds each layer's consumer by tracing the model with torch.fx, "
            f"which failed on {type(model).__name__}: {first}"
        ) from exc


def _is_activation_node(node: torch.fx.Node, src: torch.fx.Node, named: dict) -> bool:
    if not node.args or node.args[0] is not src:
        return False
    if node.op == "call_module":
        return _is_activation_module(named[node.target])
    if node.op == "call_method":
        return node.target in _ACT_METHODS
    return node.op == "call_function" and node.target in _ACT_FUNCS


def _describe(node: torch.fx.Node, named: dict) -> str:
    if node.op == "call_module":
        return f"module {node.target!r} ({type(named[node.target]).__name__})"
    if node.op == "output":
        return "the model's output"
    return f"{node.op} {getattr(node.target, '__name__', node.target)!r}"


def _site(graph: torch.fx.Graph, named: dict, name: str) -> FoldSite:
    calls = [n for n in graph.nodes if n.op == "call_module"]
    counts: dict[str, int] = {}
    for n in calls:
        counts[n.target] = counts.get(n.target, 0) + 1
    nodes = [n for n in calls if n.target == name]
    if len(nodes) != 1:
        how = "never calls it" if not nodes else f"calls it {len(nodes)} times"
        raise ValueError(f"layer {name!r} cannot be folded: the traced forward {how}")
    producer = named[name]
    if isinstance(producer, nn.modules.conv._ConvNd) and producer.groups != 1:
        raise ValueError(f"layer {name!r} cannot be folded: grouped convolution (groups > 1)")
    node, norms, activated = nodes[0], [], False
    while True:
        users = list(node.users)
        if len(users) != 1:
            raise ValueError(
                f"layer {name!r} cannot be folded: the output of {_describe(node, named)} is "
                f"used {len(users)} times (a residual sum or a second use is not linear in one "
                "consumer's input columns)"
            )
        u = users[0]
        mod = named.get(u.target) if u.op == "call_module" else None
        if mod is not None and counts[u.target] != 1:
            raise ValueError(
                f"layer {name!r} cannot be folded: module {u.target!r} after it is called "
                f"{counts[u.target]} times in one forward"
            )
        if mod is not None and isinstance(mod, _SKIP):
            node = u
            continue
        if not activated and mod is not None and isinstance(mod, _BN):
            norms.append(u.target)  # per-channel: sliced with the producer's rows
            node = u
            continue
        if not activated and _is_activation_node(u, node, named):
            if isinstance(mod, nn.PReLU) and mod.num_parameters != 1:
                raise ValueError(
                    f"layer {name!r} cannot be folded: its activation {u.target!r} is a PReLU "
                    "with one parameter per channel (use num_parameters=1)"
                )
            activated, node = True, u
            continue
        if activated and mod is not None and isinstance(mod, _LINEAR) and u.args[0] is node:
            if len(u.args) + len(u.kwargs) != 1:
                break
            if isinstance(mod, nn.modules.conv._ConvNd) and mod.groups != 1:
                raise ValueError(
                    f"layer {name!r} cannot be folded: its consumer {u.target!r} is a grouped "
                    "convolution (groups > 1)"
                )
            conv = isinstance(producer, nn.modules.conv._ConvNd)
            if conv != isinstance(mod, nn.modules.conv._ConvNd):
                break
            return FoldSite(name, tuple(norms), u.target, conv)
        break
    what = "" if activated else " before any elementwise activation"
    raise ValueError(
        f"layer {name!r} cannot be folded: its output reaches {_describe(u, named)}{what}; "
        "a fold needs Linear/Conv → [BatchNorm] → activation → [Dropout] → one Linear (after a "
        "Linear) or Conv (after a Conv) that takes it as its only input (a norm layer after the "
        "activation, a residual sum, a flatten or a second use is refused)"
    )


def find_sites(model: nn.Module, layers: list[str] | None) -> tuple[list[FoldSite], dict]:
    """The fold sites of ``layers`` (all foldable layers when ``None``).

    Returns
    -------
    sites : list of FoldSite
        In forward order.
    skipped : dict of str to str
        With ``layers=None``: each Linear/Conv layer that cannot be folded, and why.

    Raises
    ------
    ValueError
        For a named layer that does not exist, is not a Linear/Conv module or cannot be folded.
    """
    named = dict(model.named_modules())
    if layers is not None:
        for name in layers:
            if name not in named:
                valid = [n for n, m in named.items() if isinstance(m, _LINEAR)]
                raise ValueError(f"unknown layer {name!r}; valid layers are {valid}")
            if not isinstance(named[name], _LINEAR):
                raise ValueError(
                    f"layer {name!r} is a {type(named[name]).__name__}; only Linear and "
                    "Conv1d/2d/3d layers can be folded"
                )
    graph = _trace(model)
    order = [n.target for n in graph.nodes if n.op == "call_module"]
    if layers is not None:
        sites = [_site(graph, named, name) for name in layers]
        return sorted(sites, key=lambda s: order.index(s.layer)), {}
    sites, skipped = [], {}
    for name in dict.fromkeys(order):
        if isinstance(named[name], _LINEAR):
            try:
                sites.append(_site(graph, named, name))
            except ValueError as exc:
                skipped[name] = str(exc)
    return sites, skipped


def foldable_layers(model: nn.Module) -> list[str]:
    """Names of the layers of ``model`` that :func:`fold_redundant` can fold, in forward order."""
    return [s.layer for s in find_sites(model, None)[0]]
