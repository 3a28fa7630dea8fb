"""Capture the activations of a torch model's neurons with forward hooks, and sample them.

An :class:`ActivationRecorder` hooks a model's layers while it is used as a context manager and
turns what they output into an activation matrix ``A`` of shape ``(m examples, n neurons)``.
A layer's neurons are, by default, its values after its activation (``point="post"``: the
activation module or function that follows it is found by tracing the forward with
``torch.fx``). A ``Linear`` layer's neurons are its output features; a convolution's are its
``(channel, position)`` units in row-major order, or its channels with every pixel an example
(``positions="examples"``); a sequence layer's ``(batch, seq, features)`` output gives one
example per token (padded tokens dropped with ``mask=``). In models with attention blocks the
default layers are each block's MLP hidden layer. A sampling strategy picks which neurons of
each layer become columns of ``A``:

* :class:`AllNeurons` — every neuron;
* :class:`ImportanceSampling` — the paper's: per hidden layer the ``⌊p·n_layer⌋`` neurons of
  largest mean ``|activation|`` over the batch, the output layer whole;
* :class:`RandomSampling` — the same counts, chosen uniformly at random (seeded);
* :class:`FixedSelection` — a selection given once and reused (e.g. for many batches).

This module knows nothing of correlation or persistence (one direction of imports).
"""

from __future__ import annotations

import copy
import inspect
import math
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.distributed
import torch.fx
import torch.nn.functional as F
from torch import nn

from .distributed import use_distributed

__all__ = [
    "ActivationRecorder",
    "AllNeurons",
    "FixedSelection",
    "ImportanceSampling",
    "NeuronIndex",
    "RandomSampling",
    "SamplingStrategy",
]


@runtime_checkable
class SamplingStrategy(Protocol):
    """What a sampling strategy provides: a ``select`` method.

    ``select(per_layer, output_layer)`` receives the full activations of every recorded layer,
    ``{name: Tensor (m, n_layer)}`` in layer order, and the name of the output layer (the last
    recorded one); it returns ``{name: LongTensor (k_layer,)}``, the ascending indices of the
    neurons kept in each layer.
    """

    def select(
        self, per_layer: Mapping[str, torch.Tensor], output_layer: str
    ) -> dict[str, torch.Tensor]:
        """Indices of the neurons kept in each layer."""
        ...


def _check_fraction(p: object, cls: str) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise TypeError(f"{cls}(p=...) needs a number in (0, 1]; got {type(p).__name__}")
    p = float(p)
    if not (0.0 < p <= 1.0):
        raise ValueError(f"{cls}(p={p!r}): p must lie in (0, 1] (fraction of each hidden layer)")
    return p


def _sample_count(p: float, n: int) -> int:
    """``max(1, ⌊p·n⌋)``; the floor is taken with a 1e-9 slack so that 0.29·100 gives 29."""
    return min(n, max(1, math.floor(p * n + 1e-9)))


def _all(n: int, device: torch.device) -> torch.Tensor:
    return torch.arange(n, dtype=torch.long, device=device)


class AllNeurons:
    """Keep every neuron of every recorded layer.

    Examples
    --------
    >>> import torch
    >>> from topo_neurons import AllNeurons
    >>> AllNeurons().select({"fc": torch.zeros(4, 3)}, "fc")
    {'fc': tensor([0, 1, 2])}
    """

    def select(
        self, per_layer: Mapping[str, torch.Tensor], output_layer: str
    ) -> dict[str, torch.Tensor]:
        """Every index of every layer.

        Parameters
        ----------
        per_layer : mapping of str to torch.Tensor, each of shape (m, n_layer)
            Full activations of each recorded layer.
        output_layer : str
            Name of the output layer (unused).

        Returns
        -------
        dict of str to torch.LongTensor, each of shape (n_layer,)
        """
        return {name: _all(a.shape[1], a.device) for name, a in per_layer.items()}

    def __repr__(self) -> str:
        return "AllNeurons()"


class ImportanceSampling:
    """The paper's neuron sampling: the most active neurons of each hidden layer.

    For every hidden layer (every recorded layer except the output layer, the last one recorded)
    keep the ``k = max(1, ⌊p · n_layer⌋)`` neurons of largest mean ``|activation|`` over the batch;
    keep the output layer whole. Ties are broken towards the smaller neuron index, so the
    selection is deterministic. At least one neuron per layer is kept so that no layer silently
    disappears from the correlation space. Ballester et al. used ``p = 1.0`` for MNIST MLPs and
    ``p = 0.005`` for CIFAR-10 CNNs.

    Parameters
    ----------
    p : float, default 1.0
        Fraction of each hidden layer to keep, ``0 < p ≤ 1``.
    distributed : {False, True, "auto"}, default False
        Under data parallelism, rank the neurons by their mean ``|activation|`` over the
        *global* batch (an all-reduce of the per-rank scores), so that every rank keeps the same
        neurons: needed when a regulariser gathers activations across ranks. Every rank must
        then record at the same time (as in a DDP training step).

    Examples
    --------
    >>> import torch
    >>> from topo_neurons import ImportanceSampling
    >>> acts = {"h": torch.tensor([[0.0, 3.0, -1.0, 0.5]]), "out": torch.zeros(1, 2)}
    >>> ImportanceSampling(0.5).select(acts, "out")
    {'h': tensor([1, 2]), 'out': tensor([0, 1])}
    """

    def __init__(self, p: float = 1.0, *, distributed: bool | str = False) -> None:
        self.p = _check_fraction(p, "ImportanceSampling")
        use_distributed(distributed)  # validates the value
        self.distributed = distributed

    def select(
        self, per_layer: Mapping[str, torch.Tensor], output_layer: str
    ) -> dict[str, torch.Tensor]:
        """Indices (ascending) of the most active neurons of each hidden layer.

        Parameters
        ----------
        per_layer : mapping of str to torch.Tensor, each of shape (m, n_layer)
            Full activations of each recorded layer.
        output_layer : str
            Name of the layer kept whole.

        Returns
        -------
        dict of str to torch.LongTensor, each of shape (k_layer,)
        """
        out = {}
        gather = use_distributed(self.distributed)
        for name, a in per_layer.items():
            n = a.shape[1]
            if name == output_layer or self.p == 1.0:
                out[name] = _all(n, a.device)
                continue
            k = _sample_count(self.p, n)
            score = a.detach().abs().mean(dim=0)
            if gather:
                torch.distributed.all_reduce(score)  # same ranking on every rank
            order = torch.argsort(score, descending=True, stable=True)
            out[name] = torch.sort(order[:k]).values
        return out

    def __repr__(self) -> str:
        return f"ImportanceSampling(p={self.p})"


class RandomSampling:
    """Uniformly random neurons of each hidden layer (a baseline for importance sampling).

    For every hidden layer keep ``max(1, ⌊p · n_layer⌋)`` neurons drawn without replacement;
    keep the output layer whole. The generator is seeded once: successive recordings draw new
    (reproducible) selections.

    Parameters
    ----------
    p : float
        Fraction of each hidden layer to keep, ``0 < p ≤ 1``.
    seed : int or numpy.random.Generator, default 0
        Seed of the draws.

    Examples
    --------
    >>> import torch
    >>> from topo_neurons import RandomSampling
    >>> acts = {"h": torch.zeros(2, 6), "o": torch.zeros(2, 1)}
    >>> sel = RandomSampling(0.5, seed=1).select(acts, "o")
    >>> sel["h"].shape, sel["o"]
    (torch.Size([3]), tensor([0]))
    """

    def __init__(self, p: float, seed: int | np.random.Generator = 0) -> None:
        self.p = _check_fraction(p, "RandomSampling")
        if not isinstance(seed, (int, np.integer, np.random.Generator)) or isinstance(seed, bool):
            raise TypeError(
                f"RandomSampling(seed=...) needs an int or a numpy Generator; got "
                f"{type(seed).__name__}"
            )
        self._rng = np.random.default_rng(seed)

    def select(
        self, per_layer: Mapping[str, torch.Tensor], output_layer: str
    ) -> dict[str, torch.Tensor]:
        """Random indices (ascending) for each hidden layer; all of the output layer.

        Parameters
        ----------
        per_layer : mapping of str to torch.Tensor, each of shape (m, n_layer)
        output_layer : str

        Returns
        -------
        dict of str to torch.LongTensor, each of shape (k_layer,)
        """
        out = {}
        for name, a in per_layer.items():
            n = a.shape[1]
            if name == output_layer:
                out[name] = _all(n, a.device)
                continue
            k = _sample_count(self.p, n)
            idx = np.sort(self._rng.choice(n, size=k, replace=False))
            out[name] = torch.as_tensor(idx, dtype=torch.long, device=a.device)
        return out

    def __repr__(self) -> str:
        return f"RandomSampling(p={self.p})"


class FixedSelection:
    """A selection given once, reused for every recording.

    Typical use: choose neurons on one batch (``rec.selection()``), then stream many batches
    with exactly those columns.

    Parameters
    ----------
    indices : mapping of str to array_like of int
        For each layer name, the indices of its neurons to keep (stored sorted ascending).
        Every recorded layer must be present, and no other.

    Examples
    --------
    >>> import torch
    >>> from topo_neurons import FixedSelection
    >>> FixedSelection({"fc": [2, 0]}).select({"fc": torch.zeros(5, 3)}, "fc")
    {'fc': tensor([0, 2])}
    """

    def __init__(self, indices: Mapping[str, Sequence[int] | np.ndarray | torch.Tensor]) -> None:
        if not isinstance(indices, Mapping):
            raise TypeError(
                "FixedSelection needs a mapping {layer name: indices}; got "
                f"{type(indices).__name__}"
            )
        self.indices: dict[str, torch.Tensor] = {}
        for name, idx in indices.items():
            t = torch.as_tensor(idx).detach().cpu()
            if t.ndim != 1 or t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
                raise ValueError(
                    f"FixedSelection: indices of layer {name!r} must be a 1-D sequence of "
                    f"integers; got dtype {t.dtype} and shape {tuple(t.shape)}"
                )
            t = torch.sort(t.to(torch.long)).values
            if t.numel() == 0:
                raise ValueError(f"FixedSelection: layer {name!r} has no indices")
            if bool((t[1:] == t[:-1]).any()):
                raise ValueError(f"FixedSelection: layer {name!r} has repeated indices")
            if int(t[0]) < 0:
                raise ValueError(f"FixedSelection: layer {name!r} has negative index {int(t[0])}")
            self.indices[name] = t

    def select(
        self, per_layer: Mapping[str, torch.Tensor], output_layer: str
    ) -> dict[str, torch.Tensor]:
        """The stored indices, checked against the recorded layers and their sizes.

        Parameters
        ----------
        per_layer : mapping of str to torch.Tensor, each of shape (m, n_layer)
        output_layer : str

        Returns
        -------
        dict of str to torch.LongTensor

        Raises
        ------
        ValueError
            A recorded layer missing from the selection or vice versa, or an index out of range.
        """
        missing = [n for n in per_layer if n not in self.indices]
        extra = [n for n in self.indices if n not in per_layer]
        if missing or extra:
            raise ValueError(
                f"FixedSelection covers layers {list(self.indices)} but the recorder recorded "
                f"{list(per_layer)} (missing: {missing}, unknown: {extra})"
            )
        out = {}
        for name, a in per_layer.items():
            idx = self.indices[name]
            if int(idx[-1]) >= a.shape[1]:
                raise ValueError(
                    f"FixedSelection: layer {name!r} has {a.shape[1]} neurons; index "
                    f"{int(idx[-1])} is out of range"
                )
            out[name] = idx.to(a.device)
        return out

    def __repr__(self) -> str:
        sizes = {k: int(v.numel()) for k, v in self.indices.items()}
        return f"FixedSelection({sizes} neurons)"


_AXES = ("z", "y", "x")


def _label(layer: str, i: int, shape: tuple[int, ...], kind: str | None) -> str:
    """Readable name of neuron ``i`` of ``layer`` (see :meth:`NeuronIndex.labels`)."""
    if kind == "channels":
        return f"{layer}[c={i}]"
    if len(shape) <= 1:
        return f"{layer}[{i}]"
    idx = np.unravel_index(i, shape)
    if kind == "units":
        names = ("c", *_AXES[len(_AXES) - (len(shape) - 1) :]) if len(shape) <= 4 else ()
        if names:
            return f"{layer}[" + ", ".join(f"{a}={int(v)}" for a, v in zip(names, idx)) + "]"
    return f"{layer}[" + ", ".join(str(int(v)) for v in idx) + "]"


@dataclass(frozen=True)
class NeuronIndex:
    """Where each column of an activation matrix came from.

    Attributes
    ----------
    layers : tuple of str
        Recorded layer names, in layer (forward-call) order.
    layer : numpy.ndarray of int64, shape (n_sampled,)
        For each column, its layer as an index into ``layers``.
    neuron : numpy.ndarray of int64, shape (n_sampled,)
        For each column, the index of the neuron within its layer (for a convolution the flat
        ``(channel, position)`` index, ``channel * H * W + row * W + col``).
    sizes : dict of str to int
        Number of neurons of each full layer (before sampling), in layer order.
    shapes : dict of str to tuple of int
        Shape of each layer's neurons: the per-example output shape when every unit is a
        neuron, e.g. ``(450,)`` or ``(32, 14, 14)``; ``(C,)`` when the channels (or features)
        are the neurons and the positions are examples (``positions="examples"``).
    kinds : dict of str to str
        What each layer's neurons are: ``"features"`` (a feature axis, possibly flattened with
        positions), ``"units"`` (a convolution's ``(channel, position)`` units) or
        ``"channels"`` (a convolution's channels, positions being examples). A layer missing
        from ``kinds`` is read as ``"features"``.

    Examples
    --------
    >>> import numpy as np
    >>> from topo_neurons import NeuronIndex
    >>> ix = NeuronIndex(("fc1", "conv"), np.array([0, 0, 1]), np.array([3, 17, 71]),
    ...                  {"fc1": 20, "conv": 128}, {"fc1": (20,), "conv": (8, 4, 4)},
    ...                  {"fc1": "features", "conv": "units"})
    >>> ix.labels()
    ['fc1[3]', 'fc1[17]', 'conv[c=4, y=1, x=3]']
    """

    layers: tuple[str, ...]
    layer: np.ndarray
    neuron: np.ndarray
    sizes: dict[str, int] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.layer.shape[0])

    def labels(self) -> list[str]:
        """One readable name per column.

        ``"fc1[17]"`` for feature 17 of ``fc1``; ``"conv1[c=3, y=0, x=7]"`` for the unit of
        channel 3 at row 0, column 7 of a convolution (``c=, x=`` for 1-d, ``c=, z=, y=, x=``
        for 3-d ones); ``"conv1[c=3]"`` for channel 3 when the channels are the neurons;
        ``"enc[2, 17]"`` for a multi-axis feature layer flattened per example.
        """
        out = []
        for li, ni in zip(self.layer.tolist(), self.neuron.tolist()):
            name = self.layers[li]
            out.append(_label(name, ni, self.shapes.get(name, ()), self.kinds.get(name)))
        return out

    def columns(self, layer: str) -> np.ndarray:
        """Column indices (into the activation matrix) of the neurons of ``layer``.

        Raises
        ------
        ValueError
            ``layer`` was not recorded (the recorded layers are listed).
        """
        if layer not in self.layers:
            raise ValueError(f"layer {layer!r} was not recorded; recorded layers: {self.layers}")
        return np.flatnonzero(self.layer == self.layers.index(layer))


#: Normalisation layers have parameters but do not make new neurons: their outputs are affine
#: copies of the previous layer's (BatchNorm) or rescalings of them, so they are not recorded by
#: default.
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

#: torch modules whose ``batch_first=False`` makes their inner outputs ``(seq, batch, …)``.
_SEQ_FIRST_TYPES: tuple[type[nn.Module], ...] = (
    nn.Transformer,
    nn.TransformerEncoder,
    nn.TransformerDecoder,
    nn.TransformerEncoderLayer,
    nn.TransformerDecoderLayer,
    nn.MultiheadAttention,
)

#: Wrappers whose forward must not be traced (it runs collectives); the wrapped model is.
_WRAPPER_TYPES: tuple[type[nn.Module], ...] = (
    nn.DataParallel,
    nn.parallel.DistributedDataParallel,
)

POINTS = ("post", "pre")
POSITIONS = ("auto", "neurons", "examples")

#: Layers already warned about (per model), so that a fallback is reported once.
_WARNED: weakref.WeakKeyDictionary[nn.Module, set[str]] = weakref.WeakKeyDictionary()


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
                    self._graphs[prefix] = _Tracer(self._leaves).trace(root)
            except Exception as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
                where = _display(prefix)
                self._graphs[prefix] = _Unknown(
                    f"torch.fx cannot trace {where} ({type(root).__name__}): {first}"
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
            how = "never" if not nodes else f"{len(nodes)} times"
            return _Unknown(f"the traced forward calls it {how}")
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


def _default_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Leaf modules with parameters of their own (Linear, Conv*, …) except normalisation."""
    out = []
    for name, mod in model.named_modules():
        is_leaf = next(mod.children(), None) is None
        if is_leaf and _is_neuron_layer(mod):
            out.append((name, mod))
    return out


def _block_layers(model: nn.Module, resolver: _PostResolver) -> list[tuple[str, nn.Module]]:
    """In a model with attention blocks: the layers of each block's MLP whose output goes
    through an activation (``linear1`` of torch's encoder/decoder layers, ``intermediate.dense``
    of a BERT layer); empty when the model has no attention."""
    blocks = [
        name
        for name, mod in model.named_modules()
        if isinstance(mod, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer))
        or any(_is_attention(c) for c in mod.children())
    ]
    if not blocks:
        return []
    out = []
    for name, mod in _default_layers(model):
        if not any(name.startswith(b + ".") or not b for b in blocks):
            continue
        if isinstance(mod, nn.modules.linear.NonDynamicallyQuantizableLinear):
            continue  # MultiheadAttention's out_proj, applied functionally
        if isinstance(resolver.resolve(name), tuple):
            out.append((name, mod))
    return out


def _batch_axis_unknown(model: nn.Module, name: str) -> str | None:
    """The torch module holding ``name`` whose ``batch_first=False`` puts the batch on axis 1."""
    named = dict(model.named_modules())
    parts = name.split(".") if name else []
    for k in range(len(parts), -1, -1):
        prefix = ".".join(parts[:k])
        mod = named.get(prefix)
        if isinstance(mod, _SEQ_FIRST_TYPES) and any(
            isinstance(m, nn.MultiheadAttention) and not m.batch_first for m in mod.modules()
        ):
            return f"{_display(prefix)!r} ({type(mod).__name__}, batch_first=False)"
    return None


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


class ActivationRecorder:
    """Record the activations of a model's neurons while it runs (a context manager).

    Inside ``with rec:`` forward hooks on the chosen layers store each layer's neurons: by
    default the values *after* the layer's activation (what the next layer sees), one row per
    example. After the forward, :meth:`activations` returns the sampled neurons of all layers
    side by side, with gradient to the model unless ``detach=True``. Entering the context starts
    a fresh recording; the hooks are removed on exit, also when the block raises.

    Parameters
    ----------
    model : torch.nn.Module
        The network.
    layers : None, str, nn.Module, or sequence of str / nn.Module, default None
        Which layers to record. ``None``: every leaf module with parameters of its own
        (``Linear``, ``Conv*``, …) that the forward calls, except normalisation layers
        (``BatchNorm*``, ``InstanceNorm*``, ``LayerNorm``, ``GroupNorm``, ``RMSNorm``): a
        ``BatchNorm`` after a ``Linear`` would only repeat the ``Linear``'s neurons as affine
        copies (correlation ±1, deaths 0); name it in ``layers=`` to record it anyway. In a
        model with attention blocks (``nn.TransformerEncoderLayer``, a Hugging Face
        ``BertLayer``, any module with an ``…Attention`` child) the default is the hidden layer
        of each block's MLP (``linear1``, ``intermediate.dense``), not every projection. Names
        are those of ``model.named_modules()``; an unknown name or module raises ``ValueError``
        listing the valid names. Layers are always ordered by their first call in the forward,
        and the last one called is the *output layer* (kept whole by the sampling strategies).
    sampling : SamplingStrategy, default AllNeurons()
        Which neurons of each layer become columns (see :class:`ImportanceSampling`,
        :class:`RandomSampling`, :class:`FixedSelection`).
    detach : bool, default False
        Store detached outputs (no autograd graph is kept: for analysis, not for training).
    point : {"post", "pre"}, default "post"
        Which values of a layer with parameters (``Linear``, ``Conv*``, …) are its neurons.
        ``"post"``: the output of the activation that follows it, past any normalisation,
        dropout or identity modules in between (``Linear → [BatchNorm] → [Dropout] → ReLU``
        records the ``ReLU``'s output); functional activations (``F.relu(self.fc(x))``,
        ``x.relu()``) are found by tracing the forward with ``torch.fx`` and applied to the
        recorded output. A layer followed by no activation (the logits) is recorded as it is.
        Where the forward cannot be traced, the layer's own output is recorded and a warning
        names the layer (once). ``"pre"``: the layer's own output. Modules without parameters
        named in ``layers=`` (a ``ReLU``, a block) are always recorded as they are.
    positions : {"auto", "neurons", "examples"}, default "auto"
        Where the examples are. ``"neurons"``: each example's output is flattened, every unit is a
        neuron (a convolution's ``(channel, position)`` units, the paper's CNN choice).
        ``"examples"``: every position is an example (a convolution's pixels, a sequence's
        tokens) and the neurons are the channels (``Conv*``, ``BatchNorm*``: axis 1 after the
        batch) or the features (any other layer: the last axis). ``"auto"``: ``"examples"`` for
        outputs of 3 or more axes of non-convolutional layers (``(batch, seq, features)``),
        ``"neurons"`` otherwise.
    batch_dim : int or mapping of str to int, optional
        The batch axis of the layers' outputs (one for all, or per layer name). Default 0, except
        inside a torch ``Transformer*`` / ``MultiheadAttention`` module built with
        ``batch_first=False``, whose outputs are ``(seq, batch, …)``: there the batch axis must
        be given (``batch_dim=1``), otherwise ``ValueError`` — the sequence axis is never taken
        as the batch silently.
    mask : bool tensor, str, optional
        Padding mask, ``attention_mask`` style: ``True`` (or 1) keeps a position, ``False`` (0)
        drops it; shape ``(batch, positions…)`` equal to the positions of every layer recorded
        with ``positions="examples"`` (e.g. ``(batch, seq)``). A string names the model's
        keyword argument that holds it (``mask="attention_mask"`` for Hugging Face models), read
        at every call. A tensor applies to every forward until :attr:`mask` is set again. (torch's
        ``src_key_padding_mask`` is the opposite, ``True`` = padding: pass its negation.)

    Notes
    -----
    Each call of a hooked module appends its output as new examples (rows). Several forwards
    inside one ``with`` block therefore concatenate their batches (call :meth:`clear` between
    them to start over). A module called more than once *per forward* (weight sharing) makes
    its row count differ from the other layers'; :meth:`activations` then raises a
    ``ValueError`` naming the layer and its number of calls — record it separately in that case.
    All layers must give the same number of examples (rows); otherwise :meth:`activations`
    raises a ``ValueError`` naming each layer's count.

    NaN or Inf in a recorded output raises ``ValueError`` naming the layer, the neuron and the
    example when the activations are read. Reading :meth:`activations` with no more examples than
    neurons (``m ≤ n``: every correlation structure is degenerate, deaths near 0) warns once.

    Inside ``with``, torch's fused fast path for ``nn.TransformerEncoderLayer`` and
    ``nn.MultiheadAttention`` is switched off (it bypasses the modules, so no hook would fire);
    it is restored on exit.

    Examples
    --------
    >>> import torch
    >>> import topo_neurons as tn
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> with tn.ActivationRecorder(model) as rec:
    ...     out = model(torch.randn(16, 4))
    >>> rec.activations().shape
    torch.Size([16, 11])
    >>> rec.neuron_index().layers
    ('0', '2')
    >>> rec.record_points
    {'0': '1 (ReLU)', '2': '2 (Linear)'}
    >>> bool((rec.per_layer()["0"] >= 0).all())  # post-ReLU values
    True
    """

    def __init__(
        self,
        model: nn.Module,
        layers: str | nn.Module | Iterable[str | nn.Module] | None = None,
        sampling: SamplingStrategy | None = None,
        *,
        detach: bool = False,
        point: str = "post",
        positions: str = "auto",
        batch_dim: int | Mapping[str, int] | None = None,
        mask: torch.Tensor | np.ndarray | str | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        sampling = AllNeurons() if sampling is None else sampling
        if not callable(getattr(sampling, "select", None)):
            raise TypeError(
                "sampling must be a strategy with a select(per_layer, output_layer) method "
                "(AllNeurons(), ImportanceSampling(p), RandomSampling(p, seed), "
                f"FixedSelection(indices)); got {type(sampling).__name__}"
            )
        if point not in POINTS:
            raise ValueError(f"point={point!r} is not valid; valid options are: {POINTS}")
        if positions not in POSITIONS:
            raise ValueError(
                f"positions={positions!r} is not valid; valid options are: {POSITIONS}"
            )
        self.model = model
        self.sampling = sampling
        self.detach = bool(detach)
        self.point = point
        self.positions = positions
        self._mask = _check_mask(mask)
        self._call_mask: torch.Tensor | None = None
        self._targets = self._resolve(model, layers, point)
        self._set_batch_dims(batch_dim)
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._records: dict[str, list[torch.Tensor]] = {}
        self._versions: dict[str, list[int]] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._kinds: dict[str, str] = {}
        self._cache: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] | None = None
        self._active = False
        self._fastpath: bool | None = None
        self._warned_few = False
        self._warn_few_examples = True

    # ---------------------------------------------------------------- set-up
    def _resolve(
        self,
        model: nn.Module,
        layers: str | nn.Module | Iterable[str | nn.Module] | None,
        point: str,
    ) -> list[_Target]:
        named = dict(model.named_modules())
        if layers is None:
            resolver = _PostResolver(model, [m for _, m in _default_layers(model)])
            chosen = _block_layers(model, resolver) or _default_layers(model)
            if not chosen:
                raise ValueError(
                    f"{type(model).__name__} has no leaf module with parameters to record; "
                    "pass layers=[...] with module names"
                )
        else:
            chosen = self._named_layers(model, named, layers)
            resolver = _PostResolver(model, [m for _, m in chosen])
        targets = []
        unseen: list[tuple[str, nn.Module, str]] = []
        for name, mod in chosen:
            t = _Target(name, mod, name, mod, channels=isinstance(mod, _CHANNEL_TYPES))
            t.source = f"{_display(name)} ({type(mod).__name__})"
            if point == "post" and _is_neuron_layer(mod):
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
        self._warn_fallback(model, unseen)
        return targets

    @staticmethod
    def _warn_fallback(model: nn.Module, unseen: list[tuple[str, nn.Module, str]]) -> None:
        """One warning naming every layer recorded before its activation (once per layer)."""
        seen = _WARNED.setdefault(model, set())
        new = [(n, m, r) for n, m, r in unseen if n not in seen]
        if not new:
            return
        seen.update(n for n, _, _ in new)
        names = ", ".join(f"{_display(n)!r} ({type(m).__name__})" for n, m, _ in new)
        reasons = "; ".join(dict.fromkeys(r for _, _, r in new))
        which = "layer" if len(new) == 1 else "layers"
        warnings.warn(
            f"point='post': cannot see which activation follows {which} {names} because "
            f"{reasons}; recording the layer output before any activation. Name the activation "
            "modules in layers=, or pass point='pre' to record pre-activations on purpose.",
            UserWarning,
            stacklevel=4,
        )

    @staticmethod
    def _named_layers(
        model: nn.Module,
        named: dict[str, nn.Module],
        layers: str | nn.Module | Iterable[str | nn.Module],
    ) -> list[tuple[str, nn.Module]]:
        by_id = {id(m): n for n, m in named.items()}
        items = [layers] if isinstance(layers, (str, nn.Module)) else list(layers)
        if not items:
            raise ValueError("layers=[] selects nothing; pass None for every parametrised layer")
        valid = [n for n in named if n]
        shown = ", ".join(repr(n) for n in valid[:30]) + (" …" if len(valid) > 30 else "")
        out: list[tuple[str, nn.Module]] = []
        for item in items:
            if isinstance(item, str):
                if item not in named:
                    raise ValueError(
                        f"layer {item!r} is not a module of {type(model).__name__}; "
                        f"valid names are: {shown}"
                    )
                name = item
            elif isinstance(item, nn.Module):
                if id(item) not in by_id:
                    raise ValueError(
                        f"module {type(item).__name__} is not part of {type(model).__name__}; "
                        f"valid names are: {shown}"
                    )
                name = by_id[id(item)]
            else:
                raise TypeError(
                    f"layers must hold module names (str) or modules; got {type(item).__name__}"
                )
            if any(name == n for n, _ in out):
                raise ValueError(f"layer {_display(name)!r} is listed twice in layers")
            out.append((name, named[name]))
        return out

    def _set_batch_dims(self, batch_dim: int | Mapping[str, int] | None) -> None:
        names = [t.name for t in self._targets]
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
        for t in self._targets:
            b = per.get(t.name, default)
            if b is None:
                where = _batch_axis_unknown(self.model, t.hook_name)
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

    @property
    def mask(self) -> torch.Tensor | str | None:
        """The padding mask (``True`` = keep) applied to the following forwards; settable."""
        return self._mask

    @mask.setter
    def mask(self, value: torch.Tensor | np.ndarray | str | None) -> None:
        self._mask = _check_mask(value)

    @property
    def record_points(self) -> dict[str, str]:
        """For each layer, the module whose output is recorded (and the functional activation
        applied to it, if any), e.g. ``{'fc1': 'relu1 (ReLU)', 'out': 'out (Linear)'}``."""
        return {t.name: t.source for t in self._targets}

    def _mode(self, t: _Target, ndim: int) -> str:
        if self.positions != "auto":
            return self.positions
        return "examples" if ndim >= 3 and not t.channels else "neurons"

    def _hook(self, t: _Target):
        name = t.name

        def hook(module: nn.Module, inputs: object, output: object) -> None:
            if not isinstance(output, torch.Tensor):
                raise TypeError(
                    f"layer {_display(name)!r} ({type(module).__name__}) returned "
                    f"{type(output).__name__}, not a tensor; record a module that outputs a "
                    "tensor of shape (batch, ...)"
                )
            if output.ndim < 2 or t.batch_dim >= output.ndim:
                raise ValueError(
                    f"layer {_display(name)!r} output has shape {tuple(output.shape)}; "
                    f"expected (batch, features, ...) with the batch on axis {t.batch_dim}"
                )
            out = output.detach() if self.detach else output
            if t.fn is not None:
                out = t.fn(out)
            if t.batch_dim:
                out = out.movedim(t.batch_dim, 0)
            mode = self._mode(t, out.ndim)
            if mode == "neurons" or out.ndim == 2:
                self._shapes[name] = tuple(out.shape[1:])
                self._kinds[name] = "units" if t.channels and out.ndim > 2 else "features"
                positions = tuple(out.shape[:1])
                flat = out.reshape(out.shape[0], -1)
            else:
                if t.channels:
                    out = out.movedim(1, -1)
                self._shapes[name] = (out.shape[-1],)
                self._kinds[name] = "channels" if t.channels else "features"
                positions = tuple(out.shape[:-1])
                flat = out.reshape(-1, out.shape[-1])
            mask = self._call_mask if isinstance(self._mask, str) else self._mask
            if mask is not None:
                if tuple(mask.shape) != positions:
                    raise ValueError(
                        f"mask of shape {tuple(mask.shape)} does not match the positions "
                        f"{positions} of layer {_display(name)!r} (output "
                        f"{tuple(output.shape)}, batch axis {t.batch_dim}, "
                        f"{mode}); the mask needs one entry per example position"
                    )
                flat = flat[mask.reshape(-1).to(flat.device)]
            # The version counter reveals a later in-place change (e.g. ReLU(inplace=True)).
            self._records.setdefault(name, []).append(flat)
            self._versions.setdefault(name, []).append(flat._version)
            self._cache = None

        return hook

    def _model_mask_hook(self, module: nn.Module, args: object, kwargs: dict) -> None:
        value = kwargs.get(self._mask) if isinstance(self._mask, str) else None
        self._call_mask = None if value is None else _check_mask(value)

    def __enter__(self) -> ActivationRecorder:
        if self._active:
            raise RuntimeError("this ActivationRecorder is already recording (nested `with`)")
        self.clear()
        try:
            for t in self._targets:
                self._handles.append(t.hook.register_forward_hook(self._hook(t)))
            # Always installed: rec.mask may become a keyword name inside the block.
            self._handles.append(
                self.model.register_forward_pre_hook(self._model_mask_hook, with_kwargs=True)
            )
            if any(isinstance(m, _SEQ_FIRST_TYPES) for m in self.model.modules()):
                self._fastpath = torch.backends.mha.get_fastpath_enabled()
                torch.backends.mha.set_fastpath_enabled(False)
        except BaseException:
            self._remove()
            raise
        self._active = True
        return self

    def __exit__(self, *exc: object) -> None:
        self._remove()

    def _remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        if self._fastpath is not None:
            torch.backends.mha.set_fastpath_enabled(self._fastpath)
            self._fastpath = None
        self._active = False

    @property
    def recording(self) -> bool:
        """Whether the hooks are installed (inside the ``with`` block)."""
        return self._active

    def clear(self) -> None:
        """Forget the recorded activations (the hooks stay installed inside ``with``)."""
        self._records = {}
        self._versions = {}
        self._shapes = {}
        self._kinds = {}
        self._call_mask = None
        self._cache = None

    # ---------------------------------------------------------------- results
    def _full(self) -> dict[str, torch.Tensor]:
        """Full per-layer activations, in forward-call order, validated."""
        if not self._records:
            names = [_display(t.name) for t in self._targets]
            raise RuntimeError(
                "nothing was recorded: run the model inside `with recorder:` before reading "
                f"activations (hooked layers: {names[:10]}{' …' if len(names) > 10 else ''})"
            )
        for name, parts in self._records.items():
            for part, version in zip(parts, self._versions[name]):
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
            for name, parts in self._records.items()
        }
        rows = {name: a.shape[0] for name, a in full.items()}
        if len(set(rows.values())) > 1:
            calls = {_display(n): len(p) for n, p in self._records.items()}
            shown = {_display(n): r for n, r in rows.items()}
            if len(set(calls.values())) > 1:
                raise ValueError(
                    f"recorded layers have different numbers of examples {shown} (calls per "
                    f"layer: {calls}); a module called more than once per forward (weight "
                    "sharing) cannot be recorded with the others: record it in its own "
                    "ActivationRecorder"
                )
            shapes = {_display(n): self._shapes[n] for n in rows}
            raise ValueError(
                f"recorded layers have different numbers of examples {shown} (neurons per "
                f"layer: {shapes}); every layer must give one row per example: record layers "
                "with the same positions (e.g. the tokens of a sequence model, not its pooled "
                "output), or set positions=, batch_dim= or mask= so that they agree"
            )
        for name, a in full.items():
            # One reduction pass; only a non-finite sum (a NaN/Inf, or an overflow) needs the
            # elementwise scan that finds the culprit.
            if bool(torch.isfinite(a.detach().sum())):
                continue
            finite = torch.isfinite(a.detach())
            if not bool(finite.all()):
                ex, neuron = torch.nonzero(~finite)[0].tolist()
                value = a.detach()[ex, neuron].item()
                raise ValueError(
                    f"layer {_display(name)!r} output {value} at example {ex}, neuron {neuron} "
                    f"(neurons of shape {self._shapes[name]}); NaN/Inf activations are an error"
                )
        return full

    def _compute(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        if self._cache is not None:
            return self._cache
        full = self._full()
        output_layer = next(reversed(full))
        if type(self.sampling) is AllNeurons:  # fast path: nothing to select or check
            self._cache = (self.sampling.select(full, output_layer), full)
            return self._cache
        sel = self.sampling.select(full, output_layer)
        if not isinstance(sel, Mapping) or set(sel) != set(full):
            got = list(sel) if isinstance(sel, Mapping) else type(sel).__name__
            raise ValueError(
                f"{self.sampling!r}.select returned indices for {got}; expected exactly the "
                f"recorded layers {list(full)}"
            )
        chosen: dict[str, torch.Tensor] = {}
        sampled = {}
        for name, a in full.items():
            idx = torch.as_tensor(sel[name], dtype=torch.long, device=a.device)
            if idx.ndim != 1 or idx.numel() == 0:
                raise ValueError(
                    f"{self.sampling!r} selected {tuple(idx.shape)} indices for layer "
                    f"{_display(name)!r}; expected a non-empty 1-D index tensor"
                )
            if int(idx.min()) < 0 or int(idx.max()) >= a.shape[1]:
                raise ValueError(
                    f"{self.sampling!r} selected an index outside [0, {a.shape[1]}) for layer "
                    f"{_display(name)!r}"
                )
            chosen[name] = idx
            sampled[name] = a if idx.numel() == a.shape[1] and _is_arange(idx) else a[:, idx]
        self._cache = (chosen, sampled)
        return self._cache

    def per_layer(self) -> dict[str, torch.Tensor]:
        """Sampled activations of each recorded layer.

        Returns
        -------
        dict of str to torch.Tensor, each of shape (m, n_layer_sampled)
            In layer (forward-call) order; grad flows to the model unless ``detach=True``.
        """
        return dict(self._compute()[1])

    def activations(self) -> torch.Tensor:
        """The sampled activations of all recorded layers side by side.

        Returns
        -------
        torch.Tensor, shape (m, n_sampled)
            Columns grouped by layer in layer order (see :meth:`neuron_index`); grad flows to
            the model unless ``detach=True``.

        Raises
        ------
        RuntimeError
            Nothing was recorded.
        ValueError
            NaN/Inf in a layer's output (layer, example and neuron named), or layers with
            different numbers of examples.

        Warns
        -----
        UserWarning
            Once per recorder, when ``m ≤ n`` (no more examples than neurons).
        """
        parts = list(self._compute()[1].values())
        A = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        m, n = A.shape
        if m <= n and n > 1 and self._warn_few_examples and not self._warned_few:
            self._warned_few = True
            warnings.warn(
                f"{m} examples for {n} neurons (m ≤ n): the {n} columns span at most m − 1 = "
                f"{m - 1} dimensions, so their correlations are degenerate and the deaths biased "
                "towards 0 (all near 0, and T1 near its maximum, when m ≪ n). Record more "
                "examples than neurons: a larger batch, fewer or sampled neurons, "
                "positions='examples'; in a training loop DataLoader(..., drop_last=True) "
                "avoids a short last batch.",
                UserWarning,
                stacklevel=2,
            )
        return A

    def selection(self) -> dict[str, torch.Tensor]:
        """The neuron indices kept in each layer (pass to :class:`FixedSelection` to reuse).

        Returns
        -------
        dict of str to torch.LongTensor, each of shape (n_layer_sampled,)
        """
        return dict(self._compute()[0])

    def neuron_index(self) -> NeuronIndex:
        """Which layer and neuron each column of :meth:`activations` is.

        Returns
        -------
        NeuronIndex
        """
        sel, _ = self._compute()
        names = tuple(sel)
        layer = np.concatenate(
            [np.full(sel[n].numel(), i, dtype=np.int64) for i, n in enumerate(names)]
        )
        neuron = np.concatenate([sel[n].cpu().numpy().astype(np.int64) for n in names])
        sizes = {n: int(math.prod(self._shapes[n])) for n in names}
        shapes = {n: self._shapes[n] for n in names}
        kinds = {n: self._kinds[n] for n in names}
        return NeuronIndex(names, layer, neuron, sizes, shapes, kinds)

    def __repr__(self) -> str:
        names = [_display(t.name) for t in self._targets]
        return (
            f"ActivationRecorder(layers={names}, sampling={self.sampling!r}, "
            f"point={self.point!r}, positions={self.positions!r})"
        )


def _is_arange(idx: torch.Tensor) -> bool:
    return bool((idx == torch.arange(idx.numel(), device=idx.device)).all())
