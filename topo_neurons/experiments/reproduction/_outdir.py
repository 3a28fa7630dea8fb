"""The output folder of ``reproduce``: checked writable before any training, and locked.

* :func:`check_output_dir` creates the folder and writes, syncs and removes a probe file in it,
  so that a read-only folder or a full disk is told before minutes of training (``os.access``
  says yes to root on a read-only mount and knows nothing of free space).
* :func:`output_lock` holds a :class:`filelock.FileLock` on ``OUT/reproduce.lock`` for the
  whole run and records who holds it (pid, host, start time) in ``OUT/reproduce.lock.owner``;
  a second ``reproduce`` on the same folder is refused at once with :class:`OutputInUseError`
  naming that holder. The lock is the operating system's (``flock``): a holder that dies
  releases it. The lock file stays in the folder after the run (removing a lock file that
  another process may be opening would break the mutual exclusion); the owner file is removed.
* :func:`environment_message` is the one line the command prints for an ``OSError`` (a
  read-only folder, a full disk, a missing data folder): the path and the cause.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from ...io import atomic_write_text

__all__ = [
    "LOCK_NAME",
    "OWNER_NAME",
    "OutputInUseError",
    "OutputNotWritableError",
    "check_output_dir",
    "environment_message",
    "naming",
    "output_lock",
]

#: The lock file in the output folder, and the file beside it naming the holder.
LOCK_NAME = "reproduce.lock"
OWNER_NAME = "reproduce.lock.owner"


class OutputInUseError(ValueError):
    """Another process holds the output folder's lock (another ``reproduce`` writes there)."""


class OutputNotWritableError(OSError):
    """The output folder cannot be created or written (found before any training)."""


def check_output_dir(out: Path) -> Path:
    """Create ``out`` and prove it writable by writing, syncing and removing a probe file.

    Parameters
    ----------
    out : pathlib.Path

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    ValueError
        ``out`` exists and is not a directory.
    OutputNotWritableError
        ``out`` cannot be created or written (read-only, no permission, no space): an
        ``OSError`` whose ``filename`` is ``out`` and ``errno`` the system's. Folders created
        by this call are removed again.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {out} exists and is not a directory")
    created = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".reproduce-probe-", dir=out)
        try:
            os.write(fd, b"\0" * 4096)  # a block: a full disk refuses it
            os.fsync(fd)
        finally:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(probe)
    except OSError as exc:
        for p in created:  # deepest first: leave nothing behind
            with contextlib.suppress(OSError):
                p.rmdir()
        cause = exc.strerror or str(exc)
        raise OutputNotWritableError(
            exc.errno, f"cannot write in the output folder ({cause}); nothing was trained", str(out)
        ) from exc
    return out


def _owner(out: Path) -> str:
    try:
        owner = json.loads((out / OWNER_NAME).read_text(encoding="utf-8"))
        return f"pid {owner['pid']} on {owner['host']}, started {owner['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "its holder has not recorded itself yet"


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold the lock of the output folder ``out`` for the block, or refuse at once.

    Parameters
    ----------
    out : pathlib.Path
        An existing folder (see :func:`check_output_dir`).

    Raises
    ------
    OutputInUseError
        Another process holds the lock; the message names it (pid, host, start time).
    """
    from filelock import FileLock, Timeout

    lock = FileLock(out / LOCK_NAME, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise OutputInUseError(
            f"output folder {out} is in use by another reproduce ({_owner(out)}); wait for it "
            "to finish, or choose another output folder"
        ) from None
    owner = out / OWNER_NAME
    try:
        started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": started}
        atomic_write_text(owner, json.dumps(record))
        yield
    finally:
        with contextlib.suppress(OSError):
            owner.unlink()
        lock.release()


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """Give an ``OSError`` raised in the block without a file name (a failed ``write``) the
    name ``path``, so that the message says where."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None or exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc


#: The temporary name :func:`topo_neurons.io.atomic_path` gives a file: ``.NAME.XXXXXXXX.SUFFIX``.
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.[A-Za-z0-9_]{8}(?P<suffix>\.[^.]*)?")


def environment_message(exc: OSError) -> str:
    """One line for an ``OSError`` of the environment: the path, the cause, what is kept.

    A temporary file of an atomic write is named by the file it was to replace.
    """
    if exc.errno is None:  # raised with a message of its own (a missing data file)
        return " ".join(str(exc).split())
    path = exc.filename
    if path is not None:
        p = Path(os.fsdecode(path))
        m = _TEMPORARY.fullmatch(p.name)
        if m and (m["suffix"] or "") == Path(m["name"]).suffix:
            p = p.with_name(m["name"])
        path = str(p)
    code = errno.errorcode.get(exc.errno, str(exc.errno))
    line = f"{path}: {exc.strerror or os.strerror(exc.errno)} [{code}]"
    written = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO)
    if exc.errno in written and not isinstance(exc, OutputNotWritableError):
        line += (
            "; every file already written is intact (each is replaced whole): fix this and "
            "run the same command again to resume"
        )
    return " ".join(line.split())
