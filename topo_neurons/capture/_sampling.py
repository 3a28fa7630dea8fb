"""Which neurons of each layer become columns: the sampling strategies."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.distributed
import torch.fx

from ..distributed import use_distributed

__all__ = [
    "AllNeurons",
    "FixedSelection",
    "ImportanceSampling",
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


def _to_device(idx: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host indices copied to ``device`` without waiting: through pinned memory to a GPU (a
    copy from pageable memory synchronises; the pinned buffer is kept until the copy ran)."""
    if device.type != "cuda":
        return idx.to(device)
    return idx.pin_memory().to(device, non_blocking=True)


class _FractionSampling:
    """Base of the strategies that keep ``max(1, ⌊p · n_layer⌋)`` neurons of each hidden layer.

    The output layer (the last recorded) is kept whole. A subclass sets ``p`` and chooses the
    ``k`` columns of one hidden layer (``_pick``).
    """

    p: float

    def _pick(self, a: torch.Tensor, k: int) -> torch.Tensor:
        """Ascending indices of the ``k`` kept columns of ``a`` (m, n_layer)."""
        raise NotImplementedError

    def _keeps_all(self) -> bool:
        """Whether every neuron is kept without choosing (no draw, no ranking)."""
        return False

    def select(
        self, per_layer: Mapping[str, torch.Tensor], output_layer: str
    ) -> dict[str, torch.Tensor]:
        """Indices (ascending) of the neurons kept in each hidden layer; all of the output layer.

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
        for name, a in per_layer.items():
            n = a.shape[1]
            if name == output_layer or self._keeps_all():
                out[name] = _all(n, a.device)
            else:
                out[name] = self._pick(a, _sample_count(self.p, n))
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class AllNeurons(_FractionSampling):
    """Keep every neuron of every recorded layer.

    Examples
    --------
    >>> import torch
    >>> from topo_neurons import AllNeurons
    >>> AllNeurons().select({"fc": torch.zeros(4, 3)}, "fc")
    {'fc': tensor([0, 1, 2])}
    """

    p = 1.0

    def _keeps_all(self) -> bool:
        return True

    def __repr__(self) -> str:
        return "AllNeurons()"


class ImportanceSampling(_FractionSampling):
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

    def _pick(self, a: torch.Tensor, k: int) -> torch.Tensor:
        """The ``k`` columns of ``a`` of largest mean ``|activation|``, ascending."""
        score = a.detach().abs().mean(dim=0)
        if use_distributed(self.distributed):
            torch.distributed.all_reduce(score)  # same ranking on every rank
        order = torch.argsort(score, descending=True, stable=True)
        return torch.sort(order[:k]).values

    def _keeps_all(self) -> bool:
        return self.p == 1.0


class RandomSampling(_FractionSampling):
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

    def _pick(self, a: torch.Tensor, k: int) -> torch.Tensor:
        """``k`` columns of ``a`` drawn without replacement, ascending."""
        idx = np.sort(self._rng.choice(a.shape[1], size=k, replace=False))
        return _to_device(torch.as_tensor(idx, dtype=torch.long), a.device)


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
        self._copies: dict[tuple[str, torch.device], torch.Tensor] = {}  # per device, once

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
            copies = self.__dict__.setdefault("_copies", {})  # (an instance pickled before)
            if (name, a.device) not in copies:
                copies[name, a.device] = _to_device(idx, a.device)
            out[name] = copies[name, a.device]
        return out

    def __repr__(self) -> str:
        sizes = {k: int(v.numel()) for k, v in self.indices.items()}
        return f"FixedSelection({sizes} neurons)"
