"""Regularised training in one line: ``loss = task + λ·T``.

The pattern in a plain torch loop (what :class:`Regularized` does for you)::

    t1 = tn.TopologicalRedundancy()
    rec = tn.ActivationRecorder(model, sampling=tn.ImportanceSampling(1.0))
    for x, y in loader:
        with rec:
            out = model(x)
        loss = F.cross_entropy(out, y) + lam * t1(rec.activations())
        opt.zero_grad(); loss.backward(); opt.step()

Under ``DistributedDataParallel`` give the regulariser ``distributed=True``: the correlation is
then taken over the global batch and DDP's gradient averaging yields the single-process
gradients (see :mod:`topo_neurons.distributed`).
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Iterable
from typing import Any, NamedTuple

import torch
from torch import nn

from ._modes import eval_mode
from ._options import check_choice
from .capture import ActivationRecorder, FewExamplesWarning, SamplingStrategy
from .regularizers import WeightPenalty

__all__ = ["Regularized", "RegularizedOutput"]

#: Values of ``Regularized(penalty_pass=...)``: the penalty from the output's forward pass
#: (``"same"``) or from a second forward pass in evaluation mode (``"eval"``).
_PENALTY_PASSES: tuple[str, ...] = ("same", "eval")


class RegularizedOutput(NamedTuple):
    """What :class:`Regularized` returns.

    Attributes
    ----------
    output : Any
        The wrapped model's output, unchanged.
    penalty : torch.Tensor, shape ()
        ``weight · regularizer(...)``, to add to the task loss.
    """

    output: Any
    penalty: torch.Tensor


def warn_small_batch(who: str, A: torch.Tensor, regularizer: nn.Module, stacklevel: int) -> bool:
    """Warn when ``A`` (m, n) has no more examples than neurons; return whether it warned.

    Shared by :class:`Regularized` and the Lightning callback, which warn once each.
    """
    m, n = int(A.shape[0]), int(A.shape[-1])
    if m > n:
        return False
    warnings.warn(
        f"{who}: a batch of m = {m} examples for n = {n} neurons (m ≤ n): the correlations "
        f"span at most m − 1 dimensions, every death is biased towards 0 and "
        f"{type(regularizer).__name__} is computed on a degenerate batch. Use batches of more "
        f"than {n} examples and drop the last, smaller batch (DataLoader(..., drop_last=True)), "
        f"or regularise fewer neurons (sampling=)",
        FewExamplesWarning,
        stacklevel=stacklevel,
    )
    return True


_ACCEPTED = (
    "an activation loss called as regularizer(activations) with one (m, n) tensor "
    "(TopologicalRedundancy, DeathSpread, CorrelationPenalty, DeCov, or your nn.Module whose "
    "forward takes that one tensor) or a weight penalty called as regularizer(model) "
    "(L1Penalty, L2Penalty)"
)


def check_activation_loss(regularizer: object, weight: object, *, weight_penalties: str) -> None:
    """An integration's ``regularizer`` and ``weight`` arguments, checked where they are given.

    ``regularizer`` must be an activation loss module (not a :class:`WeightPenalty`, for which
    ``weight_penalties`` says the integration's way) and ``weight`` a finite number ≥ 0.
    """
    if not isinstance(regularizer, nn.Module) or isinstance(regularizer, WeightPenalty):
        raise TypeError(
            "regularizer must be an activation loss module (TopologicalRedundancy, "
            f"DeathSpread, CorrelationPenalty, DeCov); got {type(regularizer).__name__} "
            f"(weight penalties: {weight_penalties})"
        )
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise TypeError(f"weight must be a number ≥ 0; got {type(weight).__name__}")
    if not (math.isfinite(weight) and weight >= 0):
        raise ValueError(f"weight={weight!r} must be finite and ≥ 0")


def match_checks(recorder: ActivationRecorder, regularizer: nn.Module) -> None:
    """The recorder's checks read nothing back where the regulariser does not: on its device
    path (``backend="torch"``; ``"auto"`` and a loss without a backend: on a device), and
    raise the named error where it does (``"native"``, …)."""
    backend = getattr(regularizer, "backend", "auto")
    recorder._sync_free = None if backend == "auto" else backend == "torch"


def _check_takes_one_argument(regularizer: nn.Module, on_weights: bool) -> None:
    """``TypeError`` at construction if ``regularizer`` cannot be called with one argument
    (e.g. ``nn.MSELoss()``, whose forward takes ``(input, target)``)."""
    try:
        sig = inspect.signature(regularizer.forward)
    except (TypeError, ValueError):  # a builtin or C forward: cannot tell, let it run
        return
    try:
        sig.bind(None)
    except TypeError:
        what = "model" if on_weights else "activations"
        raise TypeError(
            f"regularizer {type(regularizer).__name__} cannot be called as "
            f"regularizer({what}): its forward takes {sig}. Regularized needs {_ACCEPTED}; "
            "a task loss such as nn.MSELoss belongs in your own loss, beside the penalty"
        ) from None


class Regularized(nn.Module):
    """A model whose forward also returns its weighted regularisation penalty.

    Each call records the activations of the chosen layers (an :class:`ActivationRecorder`),
    applies the regulariser to them and returns ``(output, weight · T)``; the recording is then
    released. Weight penalties (:class:`~topo_neurons.L1Penalty`,
    :class:`~topo_neurons.L2Penalty`) are applied to the model instead, without recording.

    The wrapper holds ``model`` as a submodule (its parameters are the model's, so an optimiser
    can take either); save ``model.state_dict()`` rather than the wrapper's, whose keys carry a
    ``"model."`` prefix.

    Parameters
    ----------
    model : torch.nn.Module
        The network (may be a ``DistributedDataParallel`` wrapper; its layers are then named
        ``"module.<name>"``).
    regularizer : torch.nn.Module
        An activation loss (``TopologicalRedundancy``, ``DeathSpread``, ``CorrelationPenalty``,
        ``DeCov``: ``(m, n) → scalar``) or a weight penalty (``L1Penalty``, ``L2Penalty``).
        Checked at construction: a module whose forward needs more than one argument (a task
        loss such as ``nn.MSELoss``) is a ``TypeError``.
    weight : float, default 1.0
        The factor ``λ ≥ 0``.
    layers : see :class:`ActivationRecorder`, default None
        Layers whose neurons are regularised (default: every leaf layer with parameters).
    sampling : SamplingStrategy, optional
        Neuron sampling (default: all neurons). With a regulariser that caches its tree
        (``refresh_every > 1``), the recorder's selection is passed along, so that other
        sampled neurons make it search a new tree.
    point, positions, batch_dim, mask, select_output : optional
        Which values are the neurons (``"post"``-activation by default, or ``"pre"``), where
        the examples are (``"auto"``: a sequence's tokens are examples), the batch axis, the
        padding mask (``mask="attention_mask"`` reads the model's keyword argument at each
        call; a name the call does not have is a ``ValueError``) and the element of a tuple
        output (an LSTM's); see :class:`ActivationRecorder`.
    penalty_pass : {"same", "eval"}, default "same"
        Which forward pass the activation penalty is computed from. ``"same"``: the pass that
        returns the output (one forward per call). ``"eval"``: the output comes from a forward
        in the model's current mode (dropout active while training), then the model runs the
        same inputs a second time in evaluation mode (dropout off, batch norm on its running
        statistics; the model's own mode is restored afterwards, also on an error) and the
        penalty is computed from that second pass, with gradients, at the cost of a second
        forward per call. This is how Ballester et al. regularise a network with dropout (the
        authors call the layers outside Keras' ``fit``, where dropout is inactive). Only for
        activation regularisers.

    Notes
    -----
    ``torch.compile`` works on either side: a compiled ``model`` is recorded through the
    module it wraps and runs eagerly while recorded; ``torch.compile(Regularized(...))`` runs
    this forward eagerly (the recording, the tree search on the CPU, cannot be traced by
    dynamo). Penalties equal the uncompiled model's; compilation brings no speed to the
    recorded pass.

    Shape
    -----
    - Input: whatever ``model`` takes.
    - Output: ``RegularizedOutput(output, penalty)``, ``penalty`` a scalar tensor.

    Warns
    -----
    UserWarning
        Once per wrapper, on a batch with no more examples than regularised neurons
        (``m ≤ n``, e.g. the last, short batch of an epoch): use ``drop_last=True``.

    Examples
    --------
    >>> import topo_neurons as tn
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    >>> reg = tn.Regularized(net, tn.TopologicalRedundancy(reduction="mean"), weight=0.1)
    >>> out, penalty = reg(torch.randn(32, 4))
    >>> loss = torch.nn.functional.cross_entropy(out, torch.zeros(32, dtype=torch.long)) + penalty
    >>> loss.backward()
    >>> out.shape, penalty.ndim
    (torch.Size([32, 3]), 0)
    """

    def __init__(
        self,
        model: nn.Module,
        regularizer: nn.Module,
        weight: float = 1.0,
        *,
        layers: str | nn.Module | Iterable[str | nn.Module] | None = None,
        sampling: SamplingStrategy | None = None,
        point: str = "post",
        positions: str = "auto",
        batch_dim: int | dict[str, int] | None = None,
        mask: torch.Tensor | str | None = None,
        penalty_pass: str = "same",
        select_output: Any = None,
    ) -> None:
        super().__init__()
        check_choice("penalty_pass", penalty_pass, _PENALTY_PASSES, what="")
        if not isinstance(regularizer, nn.Module):
            raise TypeError(
                f"regularizer must be a loss module, {_ACCEPTED}; got {type(regularizer).__name__}"
            )
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise TypeError(f"weight must be a number ≥ 0; got {type(weight).__name__}")
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"weight={weight!r} must be finite and ≥ 0")
        self.model = model
        self.regularizer = regularizer
        self.weight = float(weight)
        # The weight penalties (any WeightPenalty, a user's subclass included) take the
        # model, not activations.
        self.on_weights = isinstance(regularizer, WeightPenalty)
        if self.on_weights and (layers is not None or sampling is not None):
            raise ValueError(
                f"{type(regularizer).__name__} penalises the model's weights; layers= and "
                "sampling= apply only to activation regularisers"
            )
        if self.on_weights and penalty_pass != "same":
            raise ValueError(
                f"{type(regularizer).__name__} penalises the model's weights; "
                f"penalty_pass={penalty_pass!r} applies only to activation regularisers"
            )
        _check_takes_one_argument(regularizer, self.on_weights)
        self.penalty_pass = penalty_pass
        self.recorder = None
        if not self.on_weights:
            self.recorder = ActivationRecorder(
                model,
                layers,
                sampling=sampling,
                point=point,
                positions=positions,
                batch_dim=batch_dim,
                mask=mask,
                select_output=select_output,
            )
            self.recorder._warn_few_examples = False  # _check_batch says it with drop_last
        self._warned_small_batch = False

    # The recording (hooks, the MST on the CPU, numba kernels) cannot be traced by dynamo:
    # torch.compile(Regularized(...)) runs this forward eagerly; a compiled model inside runs
    # eagerly while it is recorded (see ActivationRecorder).
    @torch.compiler.disable
    def forward(self, *args: Any, **kwargs: Any) -> RegularizedOutput:
        """Run the model and return ``(output, weight · regularizer)``."""
        if self.recorder is None:
            return RegularizedOutput(
                self.model(*args, **kwargs), self.weight * self.regularizer(self.model)
            )
        if self.penalty_pass == "eval":
            output = self.model(*args, **kwargs)
            with eval_mode(self.model), self.recorder:
                self.model(*args, **kwargs)
        else:
            with self.recorder:
                output = self.model(*args, **kwargs)
        match_checks(self.recorder, self.regularizer)
        try:
            A = self.recorder.activations()
            self._check_batch(A)
            if getattr(self.regularizer, "refresh_every", 1) > 1:
                # A cached tree is reused only while the sampled neurons stay the same.
                value = self.regularizer(A, selection=self.recorder.selection())
            else:
                value = self.regularizer(A)
            penalty = self.weight * value
        finally:
            self.recorder.clear()  # release the activations (and their graph)
        return RegularizedOutput(output, penalty)

    def _check_batch(self, A: torch.Tensor) -> None:
        """Warn once per wrapper when a batch has no more examples than neurons."""
        if not self._warned_small_batch:
            self._warned_small_batch = warn_small_batch("Regularized", A, self.regularizer, 4)

    def extra_repr(self) -> str:
        extra = f", penalty_pass={self.penalty_pass!r}" if self.penalty_pass != "same" else ""
        return f"weight={self.weight}{extra}"
