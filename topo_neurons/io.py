"""Atomic file writing shared by every module that saves results."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from numpy.lib.npyio import NpzFile

__all__ = ["atomic_path", "atomic_write_text", "open_npz"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it over ``path`` atomically.

    An interrupted write leaves the previous file (if any) untouched and no partial file.
    The temporary keeps the suffix of ``path`` so that libraries which add or check suffixes
    (``numpy.savez``, matplotlib) write to exactly the yielded name.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        # mkstemp creates 0600; give the file the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def open_npz(target: str | os.PathLike[str], what: str, npy_detail: str) -> NpzFile:
    """``np.load(target)`` without pickles, as an ``.npz`` archive, or a ``ValueError``.

    The loaders of the package's ``.npz`` files (``Barcode.load``, ``BarcodeHistory.load``)
    share it; ``what`` names the expected file (``"a barcode file"``) and ``npy_detail`` ends
    the message of a single-array ``.npy`` file; an unreadable (corrupt, truncated) file names
    the cause.
    """
    import zipfile

    import numpy as np

    try:
        loaded = np.load(target, allow_pickle=False)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(
            f"{str(target)!r} is not {what}: it cannot be read as .npz "
            f"({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError(
            f"{str(target)!r} is not {what}: it holds one array of shape {loaded.shape} "
            f"{npy_detail}"
        )
    return loaded
