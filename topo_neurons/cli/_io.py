"""Files of the commands: ``--out`` checks, arrays, barcodes, figure formats and saving.

Every output is written atomically (through :func:`topo_neurons.plotting.save_figure` and
:meth:`topo_neurons.Barcode.save`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._errors import UserError, note

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..persistence import Barcode

__all__ = [
    "FIGURE_FORMATS",
    "csv_list",
    "existing_file",
    "figure_formats",
    "figure_style",
    "floats",
    "load_array",
    "load_barcode",
    "output_dir",
    "print_written",
    "save_figures",
    "staged_outputs",
]

FIGURE_FORMATS: tuple[str, ...] = ("png", "pdf", "svg")

#: Suffixes that make ``--out`` look like a file name (a directory ``run_1.5`` is still fine).
_FILE_SUFFIXES = frozenset(
    ".npz .npy .png .pdf .svg .eps .ps .jpg .jpeg .gif .tif .tiff .txt .json .md .csv .pt .pth "
    ".pkl .zip".split()
)


def output_dir(text: str, command: str, old_suffixes: Sequence[str] = ()) -> tuple[Path, bool]:
    """Check ``--out`` before any work: ``(directory, False)`` or ``(file, True)`` (old form).

    ``--out`` is the output directory of every subcommand. A path ending in one of
    ``old_suffixes`` that is not an existing directory is the old form (a file), still accepted
    with a note on stderr; any other file-like path is refused.
    """
    out = Path(text)
    suffix = out.suffix.lower()
    if suffix in _FILE_SUFFIXES and not out.is_dir():
        if suffix in old_suffixes:
            note(
                command,
                f"note: --out {text} names a file, the old form (still written); --out is now "
                f"the output directory of every command: --out {out.parent} --name {out.stem}",
            )
            _check_writable(out.parent, text)
            return out, True
        if not out.exists():
            valid = ", ".join(old_suffixes) if old_suffixes else "none"
            raise UserError(
                f"--out {text!r} looks like a file name (suffix {out.suffix!r}); --out is the "
                f"output directory (file suffixes still accepted for the old form: {valid})"
            )
    if out.exists() and not out.is_dir():
        raise UserError(
            f"--out {text!r} exists and is not a directory; --out is the output directory"
        )
    _check_writable(out, text)
    return out, False


def _check_writable(directory: Path, text: str) -> None:
    probe = directory
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UserError(f"--out {text!r}: {str(probe)!r} is a file, not a directory")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"--out {text!r}: no permission to write in {str(probe)!r}")


def existing_file(path: str, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise UserError(f"{what} {path!r} does not exist")
    if not p.is_file():
        raise UserError(f"{what} {path!r} is not a file")
    return p


def csv_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    return items or None


def floats(text: str, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise UserError(f"{what} must be comma-separated numbers; got {text!r}") from None
    if not values:
        raise UserError(f"{what} is empty")
    return values


def load_array(path: str, key: str | None = None, what: str = "input") -> np.ndarray:
    """Read an array from ``.npy`` or ``.npz`` (no pickles); ``key`` picks an ``.npz`` entry."""
    p = existing_file(path, what)
    suffix = p.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise UserError(f"{what} {path!r} must be a .npy or .npz file; got suffix {p.suffix!r}")
    try:
        loaded = np.load(p, allow_pickle=False)
    except ValueError as exc:  # object arrays need pickles: refused
        raise UserError(f"{what} {path!r} cannot be read without pickles: {exc}") from None
    except (OSError, EOFError) as exc:
        raise UserError(f"{what} {path!r} is not a valid {suffix} file: {exc}") from None
    if suffix == ".npy":
        if key is not None:
            raise UserError(f"--key applies to .npz files; {path!r} is a .npy file")
        return loaded
    with loaded as f:
        names = list(f.files)
        if key is None:
            if len(names) == 1:
                key = names[0]
            else:
                raise UserError(
                    f"{what} {path!r} holds several arrays {names}; choose one with --key"
                )
        if key not in names:
            raise UserError(f"{what} {path!r} has no array {key!r}; arrays in it: {names}")
        try:
            return f[key]
        except ValueError as exc:
            raise UserError(f"array {key!r} of {path!r} cannot be read without pickles") from exc


@contextlib.contextmanager
def figure_style() -> Iterator[None]:
    import matplotlib

    matplotlib.use("Agg")
    from ..plotting import paper_style

    with paper_style(columns=1):
        yield


def save_figures(fig: Figure, targets: Sequence[Path]) -> list[Path]:
    """Save ``fig`` to each target atomically, in the format of its suffix (TrueType fonts)."""
    from ..plotting import save_figure

    return [save_figure(fig, target) for target in targets]


def figure_formats(text: str) -> list[str]:
    items = csv_list(text) or []
    bad = [f for f in items if f not in FIGURE_FORMATS]
    if bad or not items:
        raise UserError(
            f"--formats {text!r}: unknown format(s) {bad}; valid formats are {FIGURE_FORMATS}"
        )
    return items


def load_barcode(path: str) -> Barcode:
    from ..persistence import Barcode

    existing_file(path, "barcode file")
    try:
        return Barcode.load(path)
    except ValueError as exc:  # names the file and what is wrong with it
        raise UserError(" ".join(str(exc).split())) from None


def print_written(paths: Sequence[Path]) -> None:
    """Tell the user which files a command wrote (one line on stdout)."""
    print(f"wrote {', '.join(str(p) for p in paths)}")


class _Staging:
    """The outputs of one run, written into a hidden folder first (see :func:`staged_outputs`)."""

    def __init__(self, out: Path, stage: Path, option: str) -> None:
        self.out = out
        self.stage = stage
        self.option = option
        self.names: list[str] = []

    def write(self, name: str, writer: Callable[[Path], object]) -> Path:
        """Run ``writer(staged path)`` for the output ``name``; return its final path.

        An ``OSError`` (a full disk, no permission) becomes a :class:`UserError` naming the
        final path and the cause.
        """
        try:
            writer(self.stage / name)
        except OSError as exc:
            cause = exc.strerror or str(exc) or type(exc).__name__
            raise UserError(
                f"{self.option} {str(self.out)!r}: cannot write {str(self.out / name)!r}: "
                f"{cause}; nothing of this run was written (the folder's earlier files are "
                f"unchanged)"
            ) from exc
        self.names.append(name)
        return self.out / name


@contextlib.contextmanager
def staged_outputs(
    out: Path, produced_by_any_run: Sequence[str], option: str = "--out"
) -> Iterator[_Staging]:
    """Write one run's outputs so that ``out`` never holds a mix of two runs.

    Yields a :class:`_Staging`: each ``staging.write(name, writer)`` writes into a hidden
    sibling folder ``out/.staging-XXXX/``. When the block ends without an error, every staged
    file is moved into ``out`` by :func:`os.replace` (same file system, atomic per file), and
    the files of ``produced_by_any_run`` that this run did not write (an earlier run's
    ``.pdf`` copies, say) are removed; SIGINT and SIGTERM wait until these moves are done. On
    an error or an interrupt before that, the staging folder is removed and ``out`` keeps the
    earlier run's files, complete and unchanged.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".staging-", dir=out))
    except OSError as exc:
        cause = exc.strerror or str(exc)
        raise UserError(f"{option} {str(out)!r}: cannot create the folder: {cause}") from exc
    staging = _Staging(out, stage, option)
    try:
        yield staging
        with _signals_deferred():
            try:
                for name in staging.names:
                    os.replace(stage / name, out / name)
                for name in produced_by_any_run:
                    old = out / name
                    if name not in staging.names and old.is_file():
                        old.unlink()
            except OSError as exc:
                cause = exc.strerror or str(exc)
                raise UserError(
                    f"{option} {str(out)!r}: cannot move the outputs into place: {cause}"
                ) from exc
    finally:
        with _signals_deferred():  # an interrupt now would leave the staging folder behind
            shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then act on them (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    watched = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in watched}
    for sig in watched:
        signal.signal(sig, lambda signum, _frame: received.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        signal.raise_signal(received[0])
