"""A task as the experiments use it: a :class:`Dataset` split into train / validation / test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Dataset", "split_and_standardize", "standardize_features"]


@dataclass(frozen=True)
class Dataset:
    """A task split into train / validation / test, standardised on train.

    Attributes
    ----------
    name : str
        Task name (one of :data:`TASKS`).
    task_type : {"classification", "regression"}
    X_train, X_val, X_test : numpy.ndarray of float32, shape (m_split, *input_shape)
        Standardised inputs.
    y_train, y_val, y_test : numpy.ndarray, shape (m_split,)
        Class indices (int64) for classification, standardised targets (float32) for regression.
    input_shape : tuple of int
        Shape of one example, e.g. ``(64,)`` or ``(1, 8, 8)``.
    n_outputs : int
        Number of classes (classification) or 1 (regression).
    metric : {"accuracy", "r2"}
        The metric reported (higher is better for both).
    """

    name: str
    task_type: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    input_shape: tuple[int, ...]
    n_outputs: int
    metric: str

    @property
    def in_features(self) -> int:
        """Number of input features of one example (product of ``input_shape``)."""
        return int(np.prod(self.input_shape))

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, {self.task_type}, train={len(self.y_train)}, "
            f"val={len(self.y_val)}, test={len(self.y_test)}, input_shape={self.input_shape}, "
            f"n_outputs={self.n_outputs}, metric={self.metric!r})"
        )


def _check_fractions(fractions: tuple[float, float, float]) -> tuple[float, float, float]:
    if len(fractions) != 3 or any(not 0 < f < 1 for f in fractions):
        raise ValueError(
            f"fractions={fractions!r} must be three numbers in (0, 1): train, validation, test"
        )
    if abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"fractions={fractions!r} must sum to 1; they sum to {sum(fractions):g}")
    return tuple(float(f) for f in fractions)  # type: ignore[return-value]


def standardize_features(train: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Standardise with the mean and std of ``train`` (axis 0); constant features unscaled.

    The one standardisation of the package: the tasks (fitted on the training split) and the
    command line's ``--standardize`` (fitted on the whole data) use it.

    Parameters
    ----------
    train : numpy.ndarray, shape (m, ...)
        The arrays whose per-feature mean and population std (float64) are used.
    *others : numpy.ndarray, shape (k, ...)
        Further arrays scaled with the same statistics.

    Returns
    -------
    tuple of numpy.ndarray of float32
        ``train`` and ``others``, centred and divided by the std (1 for constant features),
        computed in float64 and rounded once to float32.
    """
    mean = train.mean(axis=0, dtype=np.float64)
    std = train.std(axis=0, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    return tuple(((a - mean) / std).astype(np.float32) for a in (train, *others))


def split_and_standardize(
    X: np.ndarray,
    y: np.ndarray,
    *,
    name: str,
    task_type: str,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    input_shape: tuple[int, ...] | None = None,
    test: tuple[np.ndarray, np.ndarray] | None = None,
    standardize: bool = True,
) -> Dataset:
    """Split ``(X, y)`` into train / validation / test and standardise on train.

    Parameters
    ----------
    X : numpy.ndarray, shape (m, *input_shape)
        Inputs.
    y : numpy.ndarray, shape (m,)
        Class indices (classification) or real targets (regression).
    name : str
        Name recorded in the :class:`Dataset`.
    task_type : {"classification", "regression"}
        Classification splits are stratified by ``y``.
    seed : int
        Seed of the split (the same seed gives the same split).
    fractions : tuple of 3 floats
        Train, validation and test fractions, summing to 1. When ``test`` is given, only the
        ratio of the first two matters (``X`` is split into train and validation).
    input_shape : tuple of int, optional
        Shape of one example; default ``X.shape[1:]``.
    test : (X_test, y_test), optional
        A fixed test set (e.g. MNIST's official one).
    standardize : bool
        Standardise the inputs on the training split; ``False`` keeps them as given (cast to
        float32), as the paper's MNIST pipeline does.

    Returns
    -------
    Dataset
    """
    from sklearn.model_selection import train_test_split

    if task_type not in ("classification", "regression"):
        raise ValueError(
            f"task_type={task_type!r} is not valid; valid types are 'classification', 'regression'"
        )
    f_train, f_val, f_test = _check_fractions(fractions)
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim < 2 or y.shape != (X.shape[0],):
        raise ValueError(
            f"X must have shape (m, features...) and y shape (m,); got X {X.shape}, y {y.shape}"
        )
    classification = task_type == "classification"
    strat = y if classification else None
    if test is None:
        X_rest, X_test, y_rest, y_test = train_test_split(
            X, y, test_size=f_test, random_state=seed, stratify=strat
        )
        val_share = f_val / (f_train + f_val)
    else:
        X_rest, y_rest = X, y
        X_test, y_test = (np.asarray(a) for a in test)
        val_share = f_val / (f_train + f_val)
    X_train, X_val, y_train, y_val = train_test_split(
        X_rest,
        y_rest,
        test_size=val_share,
        random_state=seed,
        stratify=y_rest if classification else None,
    )
    shape = tuple(input_shape) if input_shape is not None else tuple(X.shape[1:])
    flat = [a.reshape(len(a), -1).astype(np.float64) for a in (X_train, X_val, X_test)]
    scaled = standardize_features(*flat) if standardize else [a.astype(np.float32) for a in flat]
    Xs = [a.reshape((len(a), *shape)) for a in scaled]
    if classification:
        ys = [np.asarray(a, dtype=np.int64) for a in (y_train, y_val, y_test)]
        n_outputs = int(max(a.max() for a in ys)) + 1
        metric = "accuracy"
    else:
        ys = [
            a.ravel()
            for a in standardize_features(
                *(np.asarray(a, np.float64)[:, None] for a in (y_train, y_val, y_test))
            )
        ]
        n_outputs = 1
        metric = "r2"
    return Dataset(
        name=name,
        task_type=task_type,
        X_train=Xs[0],
        y_train=ys[0],
        X_val=Xs[1],
        y_val=ys[1],
        X_test=Xs[2],
        y_test=ys[2],
        input_shape=shape,
        n_outputs=n_outputs,
        metric=metric,
    )
