"""Pearson correlations of neurons accumulated over batches: :class:`StreamingCorrelation`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .._finite import check_finite_activations
from .._memory import check_square_fits
from ..correlation import check_kind, dissimilarity_from_correlation

__all__ = ["StreamingCorrelation"]


class StreamingCorrelation:
    """Pearson correlation of ``n`` neurons accumulated over batches of any number of examples.

    Keeps running sums of the shifted activations ``x − c`` (``c`` = the first batch's mean, for
    numerical safety): ``Σ(x − c)`` (n,), ``Σ(x − c)(x − c)ᵀ`` (n × n), in float64, plus each
    neuron's running minimum and maximum (to find constant neurons exactly, like
    :func:`~topo_neurons.constant_neurons`). Memory is ``O(n²)``, independent of the number of
    examples; the result equals the correlation of all examples stacked together.

    Parameters
    ----------
    n : int
        Number of neurons (columns of every batch).
    labels : sequence of str, optional
        Neuron names used in error messages (e.g. ``"fc1[3]"``); default ``"neuron j"``.
    device : torch.device or str, optional
        Where the sums live (default: the device of the first batch).

    Examples
    --------
    >>> import numpy as np
    >>> from topo_neurons.analysis import StreamingCorrelation
    >>> X = np.random.default_rng(0).standard_normal((100, 3))
    >>> acc = StreamingCorrelation(3)
    >>> for start in range(0, 100, 32):
    ...     acc.update(X[start:start + 32])
    >>> bool(np.allclose(acc.correlation(), np.corrcoef(X, rowvar=False)))
    True
    """

    def __init__(
        self,
        n: int,
        labels: Sequence[str] | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if int(n) < 1:
            raise ValueError(f"StreamingCorrelation needs n ≥ 1 neurons; got {n}")
        self.n = int(n)
        if labels is not None and len(labels) != self.n:
            raise ValueError(f"labels must name the {self.n} neurons; got {len(labels)}")
        self.labels = list(labels) if labels is not None else None
        self._device = torch.device(device) if device is not None else None
        self.n_examples = 0
        self._shift: torch.Tensor | None = None
        self._s1: torch.Tensor | None = None
        self._s2: torch.Tensor | None = None
        self._min: torch.Tensor | None = None
        self._max: torch.Tensor | None = None

    def _name(self, j: int) -> str:
        return self.labels[j] if self.labels is not None else f"neuron {j}"

    def update(self, batch: np.ndarray | torch.Tensor) -> None:
        """Add a batch of activations, shape (m, n), any ``m ≥ 1``.

        Raises
        ------
        ValueError
            Wrong shape, or NaN/Inf (naming the neuron and the example, counted over all
            batches so far).
        """
        if isinstance(batch, np.ndarray):
            x = torch.from_numpy(np.asarray(batch, dtype=np.float64))
        elif isinstance(batch, torch.Tensor):
            x = batch.detach()
        else:
            raise TypeError(
                f"a batch must be a numpy array or a torch tensor; got {type(batch).__name__}"
            )
        if x.ndim != 2 or x.shape[1] != self.n:
            raise ValueError(
                f"a batch of activations must have shape (m, {self.n}); got {tuple(x.shape)}"
            )
        if x.shape[0] == 0:
            return
        if self._device is None:
            self._device = x.device
        x = x.to(device=self._device, dtype=torch.float64)
        check_finite_activations(
            x,
            lambda i, j, value, _: (
                f"activation of {self._name(j)} is {value} at example "
                f"{self.n_examples + i}; NaN/Inf activations are always an error"
            ),
        )
        if self._shift is None:
            # The n × n sum and the covariance's temporaries live on this device.
            check_square_fits(
                self.n,
                8,
                4.0,
                what="the streaming correlation accumulator",
                device=self._device,
            )
            self._shift = x.mean(dim=0)
            self._s1 = torch.zeros(self.n, dtype=torch.float64, device=self._device)
            self._s2 = torch.zeros((self.n, self.n), dtype=torch.float64, device=self._device)
            self._min = x.amin(dim=0)
            self._max = x.amax(dim=0)
        else:
            torch.minimum(self._min, x.amin(dim=0), out=self._min)
            torch.maximum(self._max, x.amax(dim=0), out=self._max)
        xs = x - self._shift
        self._s1 += xs.sum(dim=0)
        self._s2.addmm_(xs.T, xs)
        self.n_examples += int(x.shape[0])

    def constant(self) -> np.ndarray:
        """Which neurons were constant over every example so far: bool, shape (n,)."""
        self._check_ready()
        return (self._max == self._min).cpu().numpy()

    def _check_ready(self) -> None:
        if self.n_examples < 2:
            raise ValueError(f"correlations need at least 2 examples; got {self.n_examples} so far")

    def covariance(self) -> np.ndarray:
        """Population covariance (divided by ``m``) of the neurons: float64, shape (n, n)."""
        self._check_ready()
        m = float(self.n_examples)
        cov = (self._s2 - torch.outer(self._s1, self._s1) / m) / m
        cov = 0.5 * (cov + cov.T)
        return cov.cpu().numpy()

    def correlation(self) -> np.ndarray:
        """Pearson correlation of all examples so far: float64, shape (n, n).

        Symmetric, unit diagonal, values in ``[-1, 1]``; a constant neuron gets ``ρ = 0`` with
        every other neuron (the ``"uncorrelated"`` policy of
        :func:`~topo_neurons.correlation_matrix`).
        """
        cov = self.covariance()
        const = self.constant()
        var = np.diag(cov).copy()
        var[const] = 1.0
        # A non-constant neuron has positive variance; guard rounding only.
        var = np.maximum(var, np.finfo(np.float64).tiny)
        scale = 1.0 / np.sqrt(var)
        C = cov * scale[:, None] * scale[None, :]
        np.clip(C, -1.0, 1.0, out=C)
        C[const, :] = 0.0
        C[:, const] = 0.0
        np.fill_diagonal(C, 1.0)
        return C

    def dissimilarity(self, kind: str = "abs") -> np.ndarray:
        """Correlation dissimilarity (``1 − |ρ|`` or ``sqrt(1 − ρ²)``): float64, shape (n, n)."""
        check_kind(kind)
        D = dissimilarity_from_correlation(torch.from_numpy(self.correlation()), kind).numpy()
        np.fill_diagonal(D, 0.0)
        return D
