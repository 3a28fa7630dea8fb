"""Which modules are a model's layers: the module types, their roles, one recorded layer.

The tables and predicates the rest of the package asks: is a module an elementwise activation,
a layer with neurons of its own, a normalisation that may sit between a layer and its
activation, a layer with channels on axis 1; and :class:`_Target`, one recorded layer (with
:func:`selected_output`, the element of a tuple output it records).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

_NORM_TYPES: tuple[type[nn.Module], ...] = tuple(
    t
    for t in (
        nn.modules.batchnorm._NormBase,  # BatchNorm*d, SyncBatchNorm, InstanceNorm*d
        nn.LayerNorm,
        nn.GroupNorm,
        getattr(nn, "RMSNorm", None),
    )
    if t is not None
)


#: Modules that may sit between a layer and its activation (``Linear → BatchNorm → ReLU``,
#: ``Linear → Dropout → ReLU``): the post-activation point is looked for past them.
_PASS_TYPES: tuple[type[nn.Module], ...] = (
    *_NORM_TYPES,
    nn.modules.dropout._DropoutNd,
    nn.Identity,
)


#: Classes of ``torch.nn.modules.activation`` that are not elementwise activations.
_NOT_ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.Softmax,
    nn.Softmin,
    nn.LogSoftmax,
    nn.Softmax2d,
    nn.MultiheadAttention,
    nn.GLU,
)


#: Layers whose neurons are channels on axis 1 (after the batch axis).
_CHANNEL_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.conv._ConvNd,
    nn.modules.batchnorm._NormBase,
    nn.GroupNorm,
)


#: Modules that return a tuple, not a tensor (``(output, (h, c))``, ``(output, weights)``):
#: never recorded by default; named in ``layers=`` they need ``select_output=``.
_TUPLE_TYPES: tuple[type[nn.Module], ...] = (nn.RNNBase, nn.LSTMCell, nn.MultiheadAttention)


#: torch modules whose ``batch_first=False`` makes their inner outputs ``(seq, batch, …)``.
_SEQ_FIRST_TYPES: tuple[type[nn.Module], ...] = (
    nn.Transformer,
    nn.TransformerEncoder,
    nn.TransformerDecoder,
    nn.TransformerEncoderLayer,
    nn.TransformerDecoderLayer,
    nn.MultiheadAttention,
)


POINTS = ("post", "pre")


POSITIONS = ("auto", "neurons", "examples")


#: Names of torch's elementwise activation classes (a TorchScript module keeps its class name in
#: ``original_name``).
_ACTIVATION_NAMES = frozenset(
    name
    for name, cls in vars(nn.modules.activation).items()
    if isinstance(cls, type)
    and cls.__module__ == "torch.nn.modules.activation"
    and not issubclass(cls, _NOT_ACTIVATIONS)
)


def _is_activation_module(m: nn.Module) -> bool:
    """An elementwise activation module: torch's (ReLU, GELU, Tanh, …) or a Hugging Face one."""
    if isinstance(m, _NOT_ACTIVATIONS):
        return False
    if getattr(m, "original_name", None) in _ACTIVATION_NAMES:
        return True
    for cls in type(m).__mro__:
        if cls is nn.Module:
            break
        if cls.__module__ == "torch.nn.modules.activation":
            return True
        if cls.__module__.startswith("transformers.activations") or cls.__name__.endswith(
            "Activation"
        ):
            return True
    return False


def _is_neuron_layer(m: nn.Module) -> bool:
    """A module with parameters of its own that is not a normalisation (Linear, Conv*, …)."""
    return not isinstance(m, _NORM_TYPES) and next(m.parameters(recurse=False), None) is not None


def _is_attention(m: nn.Module) -> bool:
    return isinstance(m, nn.MultiheadAttention) or type(m).__name__.endswith("Attention")


def _display(name: str) -> str:
    return name if name else "(model)"


@dataclass
class _Target:
    """One recorded layer: whose neurons (``layer``), which module's output is hooked, and the
    activation applied to that output when it is functional (``fn``)."""

    name: str
    layer: nn.Module
    hook_name: str
    hook: nn.Module
    fn: Callable[[torch.Tensor], torch.Tensor] | None = None
    source: str = ""
    channels: bool = False
    batch_dim: int | None = 0
    #: Only this call of the module in each forward (``layers=["name#k"]``), or every call.
    call: int | None = None
    #: Each call of the module in a forward is its own layer ``name#k`` (shared blocks).
    per_call: bool = False
    #: Which element of a tuple output is the layer's output (``select_output=``).
    select: int | Callable[[object], torch.Tensor] | None = None


def selected_output(module: nn.Module, output: object, t: _Target) -> object:
    """The element of a tuple output that ``select_output=`` names (index or callable)."""
    sel = t.select
    if callable(sel):
        return sel(output)
    if not isinstance(output, (tuple, list)):
        raise TypeError(
            f"select_output={sel!r} for layer {_display(t.name)!r} ({type(module).__name__}) "
            f"indexes a tuple output, but the layer returned {type(output).__name__}; drop "
            "select_output= for this layer"
        )
    if sel >= len(output):
        raise ValueError(
            f"select_output={sel} for layer {_display(t.name)!r} ({type(module).__name__}): "
            f"its output is a {type(output).__name__} of {len(output)} elements (valid "
            f"indices 0 … {len(output) - 1})"
        )
    return output[sel]
