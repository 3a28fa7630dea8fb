"""The regularisers' shared parts: input validation and the base classes of the losses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
from torch import nn

from .._finite import assert_finite
from .._options import check_choice
from ..correlation import Kind, as_real_float, check_kind
from ..distributed import DISTRIBUTED_VALUES, gather_activations, use_distributed
from ..persistence import BACKENDS

Distributed = bool | Literal["auto"]
REDUCTIONS: tuple[str, ...] = ("sum", "mean")
#: Which neurons the columns of the activations are (see ``_TreeLoss.forward``).
Selection = Mapping[str, torch.Tensor] | torch.Tensor | Sequence[int] | None


# --------------------------------------------------------------------------- validation
def _activations(
    A: object, who: str, distributed: Distributed = False, *, sync_free: bool | None = False
) -> torch.Tensor:
    """Validate ``A`` (torch, (m, n), finite), cast to float, gather across ranks if asked.

    ``sync_free``: the finite check never waits for the device (the ``"torch"`` backend's
    training path; ``None``: whenever ``A`` is on a device, the baselines' choice): on a GPU
    a NaN/Inf stops the run with a device-side assertion when the kernel runs, instead of a
    :class:`NonFiniteActivationsError` raised here; on the CPU the named error is raised as
    usual (:func:`~topo_neurons._finite.assert_finite`).
    """
    if not isinstance(A, torch.Tensor):
        raise TypeError(
            f"{who} needs activations as a torch.Tensor of shape (m examples, n neurons); "
            f"got {type(A).__name__}"
        )
    A = as_real_float(A, f"{who}: activations", integer_dtype=torch.get_default_dtype())
    if A.ndim != 2:
        raise ValueError(
            f"{who}: activations must have shape (m examples, n neurons); got shape "
            f"{tuple(A.shape)} (flatten conv outputs with A.reshape(m, -1) or use "
            "ActivationRecorder)"
        )
    m_local = A.shape[0]
    gathered = use_distributed(distributed)
    if gathered:
        # Gather before checking values, so that a NaN on one rank raises on every rank
        # instead of leaving the others waiting in the collective.
        A = gather_activations(A)

    def describe(ex: int, neuron: int, value: float, _: list[int]) -> str:
        where = f"example {ex}"
        if gathered:
            where += f" of the gathered batch (rank {ex // m_local}, example {ex % m_local})"
        return (
            f"{who}: activations contain {value} at {where}, "
            f"neuron {neuron}; NaN/Inf activations are always an error"
        )

    assert_finite(A, describe, f"{who}: activations", sync_free=sync_free)
    m, n = A.shape
    if m < 2 or n < 2:
        raise ValueError(
            f"{who} needs at least 2 examples and 2 neurons; got activations of shape "
            f"{tuple(A.shape)}"
        )
    return A


def _check_backend(backend: str) -> None:
    check_choice("backend", backend, BACKENDS, what="persistence backend", plural="backends")


def _check_distributed(distributed: object) -> None:
    check_choice("distributed", distributed, DISTRIBUTED_VALUES, what="", plural="values")


# --------------------------------------------------------------------------- base classes
class _Loss(nn.Module):
    """Base of the activation losses, in the manner of ``torch.nn.modules.loss._Loss``.

    Holds the options every activation loss shares and validates them once: ``distributed``
    (gather the activations of all DDP ranks first) and, for the persistence terms, ``kind``
    and ``backend``. A subclass implements ``forward(A) → scalar``. Options are plain
    attributes: they are not in ``state_dict()``.
    """

    def __init__(
        self,
        *,
        distributed: Distributed = False,
        kind: Kind | None = None,
        backend: str | None = None,
    ) -> None:
        super().__init__()
        if kind is not None:
            check_kind(kind)
            self.kind = kind
        if backend is not None:
            _check_backend(backend)
            self.backend = backend
        _check_distributed(distributed)
        self.distributed = distributed


class WeightPenalty(nn.Module):
    r"""Base of the penalties on a model's weights (:class:`L1Penalty`, :class:`L2Penalty`).

    A weight penalty takes the model, not activations: ``penalty(model) → scalar``, the sum of
    ``|w|^p`` over the covered parameters (``p`` is the subclass's ``_power``, 1 or 2).
    :class:`~topo_neurons.Regularized` and the Lightning callback recognise a weight penalty
    by this type and apply it to the model without recording activations.

    Parameters
    ----------
    include_biases : bool, default False
        Cover every parameter; by default only those with ≥ 2 dimensions (weights, kernels,
        embeddings).
    """

    _power = 1

    def __init__(self, *, include_biases: bool = False) -> None:
        super().__init__()
        self.include_biases = bool(include_biases)

    def parameters_of(self, model: nn.Module) -> list[tuple[str, torch.Tensor]]:
        """The ``(name, parameter)`` pairs of ``model`` that the penalty covers."""
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"{type(self).__name__} takes the model (torch.nn.Module); got "
                f"{type(model).__name__} (activation penalties take tensors, weight penalties "
                "take models)"
            )
        return [
            (name, p) for name, p in model.named_parameters() if self.include_biases or p.ndim >= 2
        ]

    def forward(self, model: nn.Module) -> torch.Tensor:
        """The penalty over the weights of ``model``; a scalar tensor."""
        params = self.parameters_of(model)
        if not params:
            raise ValueError(
                f"{type(model).__name__} has no weight with ≥ 2 dimensions for "
                f"{type(self).__name__}; pass include_biases=True to penalise every parameter"
            )
        if self._power == 1:
            terms = [p.abs().sum() for _, p in params]
        else:
            terms = [p.square().sum() for _, p in params]
        return torch.stack(terms).sum()

    def extra_repr(self) -> str:
        return f"include_biases={self.include_biases}"
