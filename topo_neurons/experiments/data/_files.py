"""Readers of the files a user already has: MNIST (IDX, gzipped or not), CIFAR-10 (binary or
python version; the python pickles through an unpickler that builds nothing but a batch)."""

from __future__ import annotations

import gzip
import math
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


#: Bytes of one record of the binary version: the label, then 3 × 32 × 32 pixels.
_CIFAR_PIXELS = 3 * 32 * 32
_CIFAR_RECORD = 1 + _CIFAR_PIXELS
#: The keys of a python-version batch (``encoding="bytes"``): required, then optional.
_CIFAR_KEYS = (b"data", b"labels")
_CIFAR_OPTIONAL_KEYS = (b"batch_label", b"filenames")


def _latin1_encode(text: object, encoding: object = "utf-8") -> bytes:
    """``_codecs.encode`` as a pickle of protocol < 3 uses it: a ``bytes`` object stored as
    its latin-1 text. Anything else (another codec, a non-text argument) is refused."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(
            f"refused _codecs.encode({type(text).__name__}, {encoding!r}): only "
            "encode(str, 'latin1') (how protocol 2 stores bytes) belongs in a CIFAR-10 batch"
        )
    return text.encode("latin1")


class _NDArrayName:
    """What ``numpy.ndarray`` loads as: a marker for ``_reconstruct``, never the array class."""


class _ArrayState:
    """What ``_reconstruct`` returns here: the array is built by :meth:`__setstate__` from a
    checked state, with a fresh numeric dtype, never with the dtype object of the file (whose
    flags a pickle can set: an object dtype over raw bytes is a forged pointer)."""

    array: np.ndarray | None = None

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, tuple) or len(state) != 5:
            raise pickle.UnpicklingError("refused an array state that numpy never writes")
        _, shape, dtype, fortran, raw = state
        self.array = _checked_array(raw, dtype, shape, "F" if fortran else "C")


def _checked_array(raw: object, dtype: object, shape: object, order: object) -> np.ndarray:
    """A copy of the numeric array of ``shape`` in the bytes ``raw``, or ``UnpicklingError``."""
    if (
        not isinstance(dtype, np.dtype)
        or dtype.kind not in "biuf"
        or dtype.names is not None
        or dtype.subdtype is not None
    ):
        raise pickle.UnpicklingError(
            f"refused an array of dtype {dtype!r}: a CIFAR-10 batch holds numeric arrays only"
        )
    try:
        clean = np.dtype(dtype.str)  # a fresh dtype: none of the file's flags
    except TypeError:
        raise pickle.UnpicklingError(f"refused an array of dtype {dtype!r}") from None
    if (
        not isinstance(shape, tuple)
        or any(type(k) is not int or k < 0 for k in shape)
        or order not in ("C", "F")
        or not isinstance(raw, (bytes, bytearray))
        or len(raw) != math.prod(shape) * clean.itemsize
    ):
        raise pickle.UnpicklingError("refused an array whose shape and data do not match")
    return np.frombuffer(raw, clean).reshape(shape, order=order).copy()


def _reconstruct(cls: object, shape: object, typecode: object) -> _ArrayState:
    if cls is not _NDArrayName:
        raise pickle.UnpicklingError("refused _reconstruct of anything but numpy.ndarray")
    return _ArrayState()


def _frombuffer(buf: object, dtype: object, shape: object, order: object) -> np.ndarray:
    return _checked_array(buf, dtype, shape, order)


def _numpy_rebuilders() -> dict[tuple[str, str], object]:
    """What a pickled numpy array names, under numpy 1.x and 2.x module paths: checked
    stand-ins that build a plain numeric array, never numpy's own rebuilders."""
    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): _NDArrayName,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = _reconstruct
        allowed[(f"{package}.numeric", "_frombuffer")] = _frombuffer
    return allowed


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that builds only what a genuine CIFAR-10 python batch holds.

    The containers and scalars (dict, list, bytes, str, int) need no lookup; the only names a
    batch asks for are numpy's array and dtype rebuilders (and ``_codecs.encode`` for bytes
    written with protocol 2 by Python 3). The array rebuilders load as checked stand-ins that
    copy the bytes into a numeric array of a fresh dtype (a dtype's pickled state can set its
    flags: numpy's own rebuilders would then build an object array over raw bytes, forged
    pointers). Every other name is refused *before* it is imported, built or called, so a file
    whose ``__reduce__`` names ``os.system`` or ``open`` runs nothing.
    """

    _ALLOWED: dict[tuple[str, str], object] | None = None

    def find_class(self, module: str, name: str) -> object:
        if _CifarUnpickler._ALLOWED is None:
            _CifarUnpickler._ALLOWED = _numpy_rebuilders()
        found = _CifarUnpickler._ALLOWED.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(
                f"refused to load {module}.{name}: a CIFAR-10 python batch holds only a dict of "
                "bytes, str, int, lists and numpy uint8 arrays"
            )
        return found

    def persistent_load(self, pid: object) -> object:
        raise pickle.UnpicklingError("refused a persistent id: not part of a CIFAR-10 batch")


def _check_labels(labels: object, m: int, path: Path) -> np.ndarray:
    if isinstance(labels, np.ndarray) and labels.dtype.kind in "iu" and labels.ndim == 1:
        values = labels.astype(np.int64)
    elif isinstance(labels, list) and all(type(v) is int for v in labels):
        values = np.array(labels, dtype=np.int64).reshape(-1)
    else:
        raise ValueError(f"{path}: not a CIFAR-10 python batch (b'labels' is not a list of int)")
    if len(values) != m:
        raise ValueError(f"{path}: {m} images but {len(values)} labels")
    bad = values[(values < 0) | (values > 9)]
    if bad.size:
        raise ValueError(f"{path}: label {int(bad[0])} is not a CIFAR-10 class (0 … 9)")
    return values


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One python-version batch, through :class:`_CifarUnpickler`, checked key by key."""
    with open(path, "rb") as fh:
        try:
            batch = _CifarUnpickler(fh, encoding="bytes").load()
        except pickle.UnpicklingError as exc:
            if str(exc).startswith("refused"):
                raise ValueError(
                    f"{path}: {exc}; nothing in the file was built or run (the binary version, "
                    "cifar-10-batches-bin, is read with no pickle at all)"
                ) from None
            raise ValueError(f"{path}: not a CIFAR-10 python batch ({exc})") from None
        except Exception as exc:  # a damaged or foreign pickle: any error of the rebuilders
            raise ValueError(
                f"{path}: not a CIFAR-10 python batch ({type(exc).__name__}: {exc})"
            ) from None
    if isinstance(batch, dict):  # the arrays of _reconstruct were built by their states
        batch = {k: v.array if isinstance(v, _ArrayState) else v for k, v in batch.items()}
    keys = list(batch) if isinstance(batch, dict) else []
    if not isinstance(batch, dict) or any(k not in keys for k in _CIFAR_KEYS):
        raise ValueError(
            f"{path}: not a CIFAR-10 python batch (expected a dict with b'data' and b'labels'; "
            f"got {type(batch).__name__} with keys {keys[:6]!r})"
        )
    extra = [k for k in keys if k not in (*_CIFAR_KEYS, *_CIFAR_OPTIONAL_KEYS)]
    if extra:
        raise ValueError(
            f"{path}: not a CIFAR-10 python batch (unexpected key(s) {extra[:6]!r}; a batch "
            f"holds {', '.join(map(repr, (*_CIFAR_KEYS, *_CIFAR_OPTIONAL_KEYS)))})"
        )
    data = batch[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        what = (
            f"{data.dtype} array of shape {data.shape}"
            if isinstance(data, np.ndarray)
            else (type(data).__name__)
        )
        raise ValueError(f"{path}: b'data' is a {what}; expected a uint8 array (m, 3072)")
    if data.shape[1] != _CIFAR_PIXELS or len(data) == 0:
        raise ValueError(
            f"{path}: data of shape {data.shape}; expected (m, 3072) with m ≥ 1 and m labels"
        )
    labels = _check_labels(batch[b"labels"], len(data), path)
    return data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0, labels


def _read_cifar_binary(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One binary-version batch: records of 1 label byte + 3072 pixel bytes, nothing else."""
    size = path.stat().st_size
    if size == 0 or size % _CIFAR_RECORD:
        raise ValueError(
            f"{path}: {size} bytes is not a whole number of CIFAR-10 records (1 label byte + "
            f"3072 pixel bytes = {_CIFAR_RECORD} bytes each; the official files hold 10000, "
            f"{10000 * _CIFAR_RECORD} bytes): the file is cut or damaged"
        )
    records = np.fromfile(path, dtype=np.uint8).reshape(-1, _CIFAR_RECORD)
    if records.size != size:  # the file changed while it was read
        raise ValueError(f"{path}: read {records.size} bytes of {size}")
    labels = records[:, 0].astype(np.int64)
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise ValueError(
            f"{path}: record {int(bad[0])} has label {int(labels[bad[0]])}, not a CIFAR-10 "
            "class (0 … 9): not a CIFAR-10 binary batch, or a damaged one"
        )
    pixels = records[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0
    return pixels, labels


def _cifar_layout(directory: Path) -> tuple[Path, tuple[str, ...], bool]:
    """``(folder, file names, binary?)``: the binary version wherever any of its files is."""
    binary = tuple(f"{n}.bin" for n in (*CIFAR10_TRAIN_BATCHES, CIFAR10_TEST_BATCH))
    python = (*CIFAR10_TRAIN_BATCHES, CIFAR10_TEST_BATCH)
    for names, sub, is_binary in (
        (binary, "cifar-10-batches-bin", True),
        (python, "cifar-10-batches-py", False),
    ):
        for folder in (directory / sub, directory):
            if folder.is_dir() and any((folder / n).is_file() for n in names):
                return folder, names, is_binary
    raise FileNotFoundError(
        f"cifar10: no CIFAR-10 batches in {directory}: expected the binary version "
        f"(preferred, no pickle: {', '.join(binary)}, or a cifar-10-batches-bin folder with "
        f"them) or the python version ({', '.join(python)}, or a cifar-10-batches-py "
        "folder); nothing is downloaded"
    )


def load_cifar10(data_dir: str | os.PathLike[str]) -> tuple[np.ndarray, ...]:
    """Read CIFAR-10 from the binary version (preferred) or the python version in ``data_dir``.

    The **binary version** (``cifar-10-binary.tar.gz``: ``data_batch_1.bin`` …
    ``data_batch_5.bin``, ``test_batch.bin``) is read with no pickle: each file must be a
    whole number of 3073-byte records (a label byte in 0 … 9, then 3072 pixel bytes; the
    official files hold 10000 records each). The **python version** (``data_batch_1`` …
    ``data_batch_5``, ``test_batch``: pickles) is read through an unpickler that builds only
    what a genuine batch holds — dicts, lists, bytes, str, int and numpy arrays — and refuses
    anything else *before* building it, so a doctored file runs no code; the loaded dict is then
    checked (keys, a uint8 array of shape ``(m, 3072)``, ``m`` labels in 0 … 9). Where both
    versions are present the binary one is read.

    Parameters
    ----------
    data_dir : path-like
        Directory holding the six files of either version, or a ``cifar-10-batches-bin`` /
        ``cifar-10-batches-py`` folder with them.

    Returns
    -------
    X_train, y_train, X_test, y_test : numpy.ndarray
        The five training batches and the test batch: images of float32, shape
        ``(m, 3, 32, 32)``, values in [0, 1], and labels of int64, shape ``(m,)``.

    Raises
    ------
    FileNotFoundError
        Neither version is in ``data_dir``, or files of the version found are missing.
    ValueError
        A file is cut, damaged, not a CIFAR-10 batch, or (python version) asks for anything a
        batch does not hold; the message names the file.
    """
    directory = _check_dir(data_dir, "cifar10")
    folder, names, binary = _cifar_layout(directory)
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        version = "binary" if binary else "python"
        raise FileNotFoundError(
            f"cifar10: missing {', '.join(missing)} in {folder} (the {version} version of "
            f"CIFAR-10 needs {', '.join(names)}; nothing is downloaded)"
        )
    read = _read_cifar_binary if binary else _read_cifar_batch
    batches = [read(folder / n) for n in names]
    X_train = np.concatenate([b[0] for b in batches[:-1]])
    y_train = np.concatenate([b[1] for b in batches[:-1]])
    return X_train, y_train, *batches[-1]
