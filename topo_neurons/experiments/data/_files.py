"""Readers of the files a user already has: MNIST (IDX, gzipped or not), CIFAR-10 (python)."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np

__all__ = [
    "CIFAR10_TEST_BATCH",
    "CIFAR10_TRAIN_BATCHES",
    "MNIST_FILES",
    "load_cifar10",
    "load_mnist",
    "read_idx",
]

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
    X_train, y_train, X_test, y_test : numpy.ndarray
        The five training batches and ``test_batch``: images of float32, shape
        ``(m, 3, 32, 32)``, values in [0, 1], and labels of int64, shape ``(m,)``.
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
