"""One check that activations are finite, raising one typed error.

NaN or ±Inf in activations is always an error (a diverged training run, an overflow): the
correlation, the recorder, the streaming accumulator and the regularisers all check with
:func:`check_finite_activations`, which raises :class:`NonFiniteActivationsError`, a
``ValueError`` that names where the first bad value is. A caller that must tell divergence
from other errors (the experiments' sweep) catches the type, not a message.

On a device (a GPU) the training path checks with :func:`assert_finite` instead: a device-side
assertion that never waits for the device; on the CPU it raises the same named error.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["NonFiniteActivationsError", "assert_finite", "check_finite_activations", "on_device"]


class NonFiniteActivationsError(ValueError):
    """Activations hold NaN or ±Inf; the message names the layer (where known), example, neuron.

    A subclass of ``ValueError``: code catching ``ValueError`` keeps working.

    Parameters
    ----------
    message : str
    layer : str, optional
        The layer whose output holds the value, where the raiser knows it.
    example : int, optional
        The example holding the first non-finite value: its index in the data set where the
        raiser knows it (:func:`~topo_neurons.analyse`, data fed in batches), else its row in
        the batch the raiser saw; the message says which.
    neuron : int, optional
        Column of the first non-finite value.
    value : float, optional
        The value itself (``nan``, ``inf`` or ``-inf``).

    Examples
    --------
    >>> import torch
    >>> import topo_neurons as tn
    >>> try:
    ...     tn.correlation_matrix(torch.tensor([[0.0, 1.0], [float("nan"), 2.0], [1.0, 0.0]]))
    ... except tn.NonFiniteActivationsError as err:
    ...     print(err.example, err.neuron, err.value)
    1 0 nan
    """

    def __init__(
        self,
        message: str,
        *,
        layer: str | None = None,
        example: int | None = None,
        neuron: int | None = None,
        value: float | None = None,
    ) -> None:
        super().__init__(message)
        self.layer, self.example, self.neuron, self.value = layer, example, neuron, value

    def __reduce__(self):  # keyword attributes survive pickling (process pools)
        return (_rebuild, (self.args, self.layer, self.example, self.neuron, self.value))


def _rebuild(args, layer, example, neuron, value) -> NonFiniteActivationsError:
    return NonFiniteActivationsError(
        *args, layer=layer, example=example, neuron=neuron, value=value
    )


def check_finite_activations(
    A: torch.Tensor,
    describe: Callable[[int, int, float, list[int]], str],
    *,
    layer: str | None = None,
    example_of: Callable[[int], int] | None = None,
) -> None:
    """Raise :class:`NonFiniteActivationsError` if ``A`` holds a NaN or ±Inf.

    Parameters
    ----------
    A : torch.Tensor, shape (m, n)
        Activations: examples × neurons.
    describe : callable
        ``describe(example, neuron, value, bad_neurons) → message``: the caller's words for the
        first non-finite value (row-major order) and the sorted columns holding any.
    layer : str, optional
        Stored on the error.
    example_of : callable, optional
        ``example_of(row) → example``: the example a row of ``A`` is in the caller's data (a
        data set fed in batches, a sequence's tokens), stored on the error as ``example``;
        default: the row itself.

    Notes
    -----
    One reduction pass on the usual (finite) path; only a non-finite sum (a NaN/Inf, or an
    overflow of finite values) needs the element-wise scan that finds the culprit.
    """
    a = A.detach()
    if bool(torch.isfinite(a.sum())):
        return
    finite = torch.isfinite(a)
    if bool(finite.all()):
        return  # the sum overflowed; every value is finite
    ex, neuron = (int(v) for v in torch.nonzero(~finite)[0])
    value = a[ex, neuron].item()
    bad = torch.nonzero(~finite.all(dim=0)).flatten().tolist()
    message = describe(ex, neuron, value, bad)
    example = ex if example_of is None else int(example_of(ex))
    raise NonFiniteActivationsError(
        message, layer=layer, example=example, neuron=neuron, value=value
    )


def on_device(A: torch.Tensor) -> bool:
    """Whether ``A`` lives on a device other than the CPU (where a host read synchronises).

    The default of :func:`assert_finite`'s ``sync_free`` (looked up at call time: the tests
    treat the CPU as a device by replacing it, a proxy of ``torch.cuda.set_sync_debug_mode``).
    """
    return A.device.type != "cpu"


def assert_finite(
    A: torch.Tensor,
    describe: Callable[[int, int, float, list[int]], str],
    what: str,
    *,
    sync_free: bool | None = None,
    layer: str | None = None,
    example_of: Callable[[int], int] | None = None,
) -> None:
    """:func:`check_finite_activations`, or on the device path its form without a host read.

    Parameters
    ----------
    A : torch.Tensor, shape (m, n)
        Activations: examples × neurons.
    describe, layer, example_of
        As for :func:`check_finite_activations`.
    what : str
        The device-side assertion's message: ``"{what} contain NaN or Inf"``.
    sync_free : bool, optional
        Never wait for the device: ``torch._assert_async`` on ``isfinite(A).all()``, enqueued
        on a GPU (a NaN/Inf stops the run with a device-side assertion when the kernel runs,
        not with :class:`NonFiniteActivationsError` here); checked at once on the CPU, which
        then raises the named error as usual. ``False``: the host check. Default
        (``None``): sync-free on a device (:func:`on_device`), the host check on the CPU.
    """
    if sync_free is None:
        sync_free = on_device(A)
    if not sync_free:
        check_finite_activations(A, describe, layer=layer, example_of=example_of)
        return
    try:  # enqueued on a GPU (no synchronisation); immediate on the CPU
        torch._assert_async(torch.isfinite(A.detach()).all(), f"{what} contain NaN or Inf")
    except RuntimeError:
        check_finite_activations(A, describe, layer=layer, example_of=example_of)
        raise  # pragma: no cover - the check above raises the named error
