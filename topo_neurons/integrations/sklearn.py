"""A scikit-learn transformer: activation matrices → giotto-tda's 3-D array of H0 diagrams.

An adapter over the public API (:func:`~topo_neurons.correlation_dissimilarity`,
:func:`~topo_neurons.zero_persistence`, :func:`~topo_neurons.correlation_persistence`,
:meth:`Barcode.to_giotto <topo_neurons.Barcode.to_giotto>`), following scikit-learn's and
giotto-tda's conventions (``sklearn/base.py``; ``VietorisRipsPersistence`` in
``gtda/homology/simplicial.py``): parameters stored unchanged in ``__init__`` and validated in
:meth:`~NeuronPersistence.fit`; :meth:`~NeuronPersistence.transform` maps a list of point
clouds, here activation matrices, to one array of diagrams padded as giotto-tda pads them, so
that giotto-tda's diagram transformers (``PersistenceEntropy``, ``Amplitude``,
``PairwiseDistance``, …) take its output in a pipeline. scikit-learn is a dependency of the
package: nothing to install.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .._options import check_choice
from ..correlation import check_kind, correlation_dissimilarity
from ..persistence import Barcode, correlation_persistence, zero_persistence
from ..persistence._giotto import pad_diagrams

__all__ = ["NEURON_PERSISTENCE_PATHS", "NeuronPersistence"]

#: Values of ``NeuronPersistence(path=...)``.
NEURON_PERSISTENCE_PATHS: tuple[str, ...] = ("auto", "dense", "tiled")
#: ``path="auto"`` takes the tiled engine above this many neurons (the dense ``n × n``
#: float64 matrix would pass 512 MiB).
_AUTO_TILED_NEURONS = 8192


class NeuronPersistence(TransformerMixin, BaseEstimator):
    """The H0 diagram of each activation matrix, in giotto-tda's layout.

    Each sample is one activation matrix ``A_i`` of shape ``(m_i, n_i)`` (examples × neurons;
    the sizes may differ between samples); its neurons are the points, their correlation
    dissimilarity the distances, and its 0-dimensional persistence is returned as giotto-tda's
    ``VietorisRipsPersistence(homology_dimensions=(0,))`` returns the persistence of a point
    cloud: rows ``[0, death, 0]``, the infinite bar dropped (``reduced_homology=True``) or
    kept with death ``infinity_values``, zero-length bars dropped, diagrams padded with
    ``[0, 0, 0]`` rows to one array.

    Parameters
    ----------
    kind : {"abs", "sqrt"}, default "abs"
        The correlation dissimilarity (:func:`~topo_neurons.correlation_dissimilarity`).
    constant : {"uncorrelated", "drop", "raise"}, default "uncorrelated"
        What a constant neuron is (see :func:`~topo_neurons.correlation_dissimilarity`).
    path : {"auto", "dense", "tiled"}, default "auto"
        ``"dense"``: :func:`~topo_neurons.zero_persistence` of the ``n × n`` matrix;
        ``"tiled"``: :func:`~topo_neurons.correlation_persistence` (no ``n × n`` matrix, any
        ``n``); ``"auto"``: tiled above 8192 neurons. The deaths are the same.
    reduced_homology : bool, default True
        giotto-tda's option: drop the infinite H0 bar.
    infinity_values : float, optional
        Its death when ``reduced_homology=False`` (default ``inf``, giotto-tda's default for
        an unbounded filtration).

    Attributes
    ----------
    homology_dimensions_ : tuple of int
        ``(0,)``.
    infinity_values_ : float
        The death given to the infinite bar.

    Examples
    --------
    >>> import numpy as np
    >>> import topo_neurons as tn
    >>> rng = np.random.default_rng(0)
    >>> X = [rng.standard_normal((100, 12)), rng.standard_normal((80, 9))]
    >>> D = tn.NeuronPersistence().fit_transform(X)
    >>> D.shape  # two diagrams, 11 finite bars in the larger, padded to one array
    (2, 11, 3)
    """

    def __init__(
        self,
        kind: str = "abs",
        constant: str = "uncorrelated",
        path: str = "auto",
        reduced_homology: bool = True,
        infinity_values: float | None = None,
    ) -> None:
        self.kind = kind
        self.constant = constant
        self.path = path
        self.reduced_homology = reduced_homology
        self.infinity_values = infinity_values

    def _check_params(self) -> None:
        check_kind(self.kind)
        check_choice("constant", self.constant, ("uncorrelated", "drop", "raise"))
        check_choice("path", self.path, NEURON_PERSISTENCE_PATHS)
        if not isinstance(self.reduced_homology, (bool, np.bool_)):
            raise TypeError(f"reduced_homology must be a bool; got {self.reduced_homology!r}")
        inf = self.infinity_values
        if inf is not None and (
            isinstance(inf, bool) or not isinstance(inf, (int, float, np.number)) or not inf > 0
        ):
            raise ValueError(f"infinity_values={inf!r} must be a number > 0 or None")

    @staticmethod
    def _samples(X: Any) -> list[np.ndarray | torch.Tensor]:
        if isinstance(X, (np.ndarray, torch.Tensor)) and X.ndim == 3:
            return list(X)
        if isinstance(X, (str, bytes)) or not isinstance(X, Sequence):
            raise TypeError(
                "X must be a list of activation matrices of shape (m_i, n_i), or a 3-D array "
                f"(n_samples, m, n); got {type(X).__name__}"
                + (f" of shape {tuple(X.shape)}" if hasattr(X, "shape") else "")
            )
        out = []
        for i, A in enumerate(X):
            if not isinstance(A, torch.Tensor):
                A = np.asarray(A)
            if A.ndim != 2:
                raise ValueError(
                    f"X[{i}] must be an activation matrix of shape (m, n); got shape "
                    f"{tuple(A.shape)}"
                )
            out.append(A)
        if not out:
            raise ValueError("X holds no activation matrices")
        return out

    def fit(self, X: Any, y: Any = None) -> NeuronPersistence:
        """Check the parameters and ``X``; nothing is learnt (each diagram depends on its own
        sample only). Returns ``self``."""
        self._check_params()
        self._samples(X)
        self.homology_dimensions_ = (0,)
        self.infinity_values_ = (
            np.inf if self.infinity_values is None else float(self.infinity_values)
        )
        return self

    def barcodes(self, X: Any) -> list[Barcode]:
        """The :class:`~topo_neurons.Barcode` of each activation matrix of ``X``, with its
        pairs (what :meth:`transform` lays out)."""
        check_is_fitted(self, "homology_dimensions_")
        return [self._barcode(A) for A in self._samples(X)]

    def _barcode(self, A: np.ndarray | torch.Tensor) -> Barcode:
        n = A.shape[1]
        if self.path == "tiled" or (self.path == "auto" and n > _AUTO_TILED_NEURONS):
            return correlation_persistence(A, self.kind, self.constant)
        D = correlation_dissimilarity(A, self.kind, self.constant)
        if isinstance(D, torch.Tensor):
            D = D.detach().cpu().numpy()
        return zero_persistence(D)

    def transform(self, X: Any, y: Any = None) -> np.ndarray:
        """The diagrams of the activation matrices ``X``.

        Parameters
        ----------
        X : list of array_like or torch.Tensor, each of shape (m_i, n_i); or an array of
            shape (n_samples, m, n)

        Returns
        -------
        numpy.ndarray of float64, shape (n_samples, n_features, 3)
            Rows ``[birth, death, 0]`` (see the class docstring); ``n_features`` the largest
            number of rows, at least 1.
        """
        rows = [
            bc.to_giotto(self.reduced_homology, self.infinity_values_) for bc in self.barcodes(X)
        ]
        return pad_diagrams(rows)
