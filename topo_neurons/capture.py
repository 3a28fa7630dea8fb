"""Capture the activations of a torch model's neurons with forward hooks, and sample them.

An :class:`ActivationRecorder` hooks a model's layers while it is used as a context manager and
turns what they output into an activation matrix ``A`` of shape ``(m examples, n neurons)``:
every output is flattened per example (``reshape(m, -1)``), so a ``Linear`` layer's neurons are
its output features and a convolution's neurons are its ``(channel, position)`` units in
row-major order. A sampling strategy picks which neurons of each layer become columns of ``A``:

* :class:`AllNeurons` — every neuron;
* :class:`ImportanceSampling` — the paper's: per hidden layer the ``⌊p·n_layer⌋`` neurons of
  largest mean ``|activation|`` over the batch, the output layer whole;
* :class:`RandomSampling` — the same counts, chosen uniformly at random (seeded);
* :class:`FixedSelection` — a selection given once and reused (e.g. for many batches).

This module knows nothing of correlation or persistence (one direction of imports).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.distributed
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
        Per-example output shape of each layer, e.g. ``(450,)`` or ``(32, 14, 14)``.

    Examples
    --------
    >>> import numpy as np
    >>> from topo_neurons import NeuronIndex
    >>> ix = NeuronIndex(("fc1", "fc2"), np.array([0, 0, 1]), np.array([3, 17, 0]),
    ...                  {"fc1": 20, "fc2": 2}, {"fc1": (20,), "fc2": (2,)})
    >>> ix.labels()
    ['fc1[3]', 'fc1[17]', 'fc2[0]']
    """

    layers: tuple[str, ...]
    layer: np.ndarray
    neuron: np.ndarray
    sizes: dict[str, int] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.layer.shape[0])

    def labels(self) -> list[str]:
        """One label per column, ``"layer[neuron]"``, e.g. ``"fc1[17]"``."""
        return [f"{self.layers[li]}[{ni}]" for li, ni in zip(self.layer, self.neuron)]

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


def _default_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Leaf modules with parameters of their own (Linear, Conv*, …) except normalisation."""
    out = []
    for name, mod in model.named_modules():
        is_leaf = next(mod.children(), None) is None
        if isinstance(mod, _NORM_TYPES) or not is_leaf:
            continue
        if next(mod.parameters(recurse=False), None) is not None:
            out.append((name, mod))
    return out


def _display(name: str) -> str:
    return name if name else "(model)"


class ActivationRecorder:
    """Record the activations of a model's neurons while it runs (a context manager).

    Inside ``with rec:`` forward hooks on the chosen layers store each layer's output
    (flattened per example, ``reshape(m, -1)``). After the forward, :meth:`activations` returns
    the sampled neurons of all layers side by side, with gradient to the model unless
    ``detach=True``. Entering the context starts a fresh recording; the hooks are removed on
    exit, also when the block raises.

    Parameters
    ----------
    model : torch.nn.Module
        The network.
    layers : None, str, nn.Module, or sequence of str / nn.Module, default None
        Which modules to record. ``None``: every leaf module with parameters of its own
        (``Linear``, ``Conv*``, …) that the forward calls, except normalisation layers
        (``BatchNorm*``, ``InstanceNorm*``, ``LayerNorm``, ``GroupNorm``, ``RMSNorm``): a
        ``BatchNorm`` after a ``Linear`` would only repeat the ``Linear``'s neurons as affine
        copies (correlation ±1, deaths 0); name it in ``layers=`` to record it anyway. Names
        are those of ``model.named_modules()``; an unknown name or module raises ``ValueError``
        listing the valid names. Layers are always ordered by their first call in the forward,
        and the last one called is the *output layer* (kept whole by the sampling strategies).
    sampling : SamplingStrategy, default AllNeurons()
        Which neurons of each layer become columns (see :class:`ImportanceSampling`,
        :class:`RandomSampling`, :class:`FixedSelection`).
    detach : bool, default False
        Store detached outputs (no autograd graph is kept: for analysis, not for training).

    Notes
    -----
    Each call of a hooked module appends its output as new examples (rows). Several forwards
    inside one ``with`` block therefore concatenate their batches (call :meth:`clear` between
    them to start over). A module called more than once *per forward* (weight sharing) makes
    its row count differ from the other layers'; :meth:`activations` then raises a
    ``ValueError`` naming the layer and its number of calls — record it separately in that case.

    NaN or Inf in a recorded output raises ``ValueError`` naming the layer, the neuron and the
    example when the activations are read.

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
    """

    def __init__(
        self,
        model: nn.Module,
        layers: str | nn.Module | Iterable[str | nn.Module] | None = None,
        sampling: SamplingStrategy | None = None,
        *,
        detach: bool = False,
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
        self.model = model
        self.sampling = sampling
        self.detach = bool(detach)
        self._targets = self._resolve(model, layers)
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._records: dict[str, list[torch.Tensor]] = {}
        self._versions: dict[str, list[int]] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._cache: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] | None = None
        self._active = False

    # ---------------------------------------------------------------- set-up
    @staticmethod
    def _resolve(
        model: nn.Module, layers: str | nn.Module | Iterable[str | nn.Module] | None
    ) -> list[tuple[str, nn.Module]]:
        if layers is None:
            targets = _default_layers(model)
            if not targets:
                raise ValueError(
                    f"{type(model).__name__} has no leaf module with parameters to record; "
                    "pass layers=[...] with module names"
                )
            return targets
        named = dict(model.named_modules())
        by_id = {id(m): n for n, m in named.items()}
        items = [layers] if isinstance(layers, (str, nn.Module)) else list(layers)
        if not items:
            raise ValueError("layers=[] selects nothing; pass None for every parametrised layer")
        valid = [n for n in named if n]
        shown = ", ".join(repr(n) for n in valid[:30]) + (" …" if len(valid) > 30 else "")
        targets: list[tuple[str, nn.Module]] = []
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
            if any(name == n for n, _ in targets):
                raise ValueError(f"layer {_display(name)!r} is listed twice in layers")
            targets.append((name, named[name]))
        return targets

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs: object, output: object) -> None:
            if not isinstance(output, torch.Tensor):
                raise TypeError(
                    f"layer {_display(name)!r} ({type(module).__name__}) returned "
                    f"{type(output).__name__}, not a tensor; record a module that outputs a "
                    "tensor of shape (batch, ...)"
                )
            if output.ndim < 2:
                raise ValueError(
                    f"layer {_display(name)!r} output has shape {tuple(output.shape)}; "
                    "expected (batch, features, ...) with a batch dimension"
                )
            out = output.detach() if self.detach else output
            self._shapes[name] = tuple(out.shape[1:])
            flat = out.reshape(out.shape[0], -1)
            # The version counter reveals a later in-place change (e.g. ReLU(inplace=True)).
            self._records.setdefault(name, []).append(flat)
            self._versions.setdefault(name, []).append(flat._version)
            self._cache = None

        return hook

    def __enter__(self) -> ActivationRecorder:
        if self._active:
            raise RuntimeError("this ActivationRecorder is already recording (nested `with`)")
        self.clear()
        try:
            for name, mod in self._targets:
                self._handles.append(mod.register_forward_hook(self._hook(name)))
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
        self._cache = None

    # ---------------------------------------------------------------- results
    def _full(self) -> dict[str, torch.Tensor]:
        """Full per-layer activations, in forward-call order, validated."""
        if not self._records:
            names = [_display(n) for n, _ in self._targets]
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
                        "values are not its output; record the module that modifies it "
                        "instead, or construct that module with inplace=False"
                    )
        full = {
            name: (parts[0] if len(parts) == 1 else torch.cat(parts, dim=0))
            for name, parts in self._records.items()
        }
        rows = {name: a.shape[0] for name, a in full.items()}
        if len(set(rows.values())) > 1:
            calls = {_display(n): len(p) for n, p in self._records.items()}
            raise ValueError(
                f"recorded layers have different numbers of examples {rows} (calls per layer: "
                f"{calls}); a module called more than once per forward (weight sharing) cannot "
                "be recorded with the others: record it in its own ActivationRecorder"
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
                    f"(shape per example {self._shapes[name]}); NaN/Inf activations are an error"
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
        """
        parts = list(self._compute()[1].values())
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

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
        return NeuronIndex(names, layer, neuron, sizes, shapes)

    def __repr__(self) -> str:
        names = [_display(n) for n, _ in self._targets]
        return f"ActivationRecorder(layers={names}, sampling={self.sampling!r})"


def _is_arange(idx: torch.Tensor) -> bool:
    return bool((idx == torch.arange(idx.numel(), device=idx.device)).all())
