"""One memory guard for every ``n × n`` allocation.

Before a dense ``n × n`` matrix is allocated (correlation, dissimilarity, the streaming
accumulator of :func:`~topo_neurons.analyse`, the autograd path of the regularisers), the bytes it
needs are estimated and compared with the memory available on the device that will hold it. If
they do not fit, :class:`MemoryError` is raised *before* the allocation, naming ``n``, the bytes
and the ways out, instead of failing deep inside torch's allocator (or swapping the machine to a
halt).

The available memory is :func:`available_memory`: ``psutil.virtual_memory().available`` for the
CPU, ``torch.cuda.mem_get_info`` for a CUDA device. The environment variable
``TOPO_NEURONS_AVAILABLE_MEMORY`` (bytes; suffixes ``K``, ``M``, ``G``, ``T`` in powers of 1024)
overrides both, e.g. to test the guard or to keep a run under a budget. Requests of at most
64 MiB are not checked against the system (querying it costs ~60 µs, which would show inside
training steps on small layers) unless the variable is set.
"""

from __future__ import annotations

import os
import re
from typing import Any

__all__ = ["ENV_VAR", "available_memory", "check_square_fits", "format_bytes"]

#: Environment variable overriding :func:`available_memory` (bytes, or with K/M/G/T suffix).
ENV_VAR = "TOPO_NEURONS_AVAILABLE_MEMORY"

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
#: Requests this small are not checked against the system (unless the variable is set).
_ALWAYS_FITS = 64 * 1024**2


def format_bytes(n: float) -> str:
    """``34359738368`` → ``'32.0 GiB'``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _from_env() -> int | None:
    text = os.environ.get(ENV_VAR)
    if text is None or not text.strip():
        return None
    found = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if found is None:
        raise ValueError(
            f"{ENV_VAR}={text!r} is not a number of bytes (examples: 8000000000, 512M, 16G)"
        )
    return int(float(found.group(1)) * _UNITS[found.group(2).upper()])


def available_memory(device: Any = None) -> int:
    """Bytes that can be allocated now on ``device`` (default: the CPU).

    Parameters
    ----------
    device : torch.device or str, optional
        ``None`` or a CPU device: ``psutil.virtual_memory().available``. A CUDA device: the free
        memory reported by ``torch.cuda.mem_get_info``. Other devices (``mps``, …): the CPU's.

    Returns
    -------
    int
        Bytes; the environment variable ``TOPO_NEURONS_AVAILABLE_MEMORY`` overrides it.
    """
    override = _from_env()
    if override is not None:
        return override
    if device is not None:
        import torch

        dev = torch.device(device)
        if dev.type == "cuda":
            free, _total = torch.cuda.mem_get_info(dev)
            return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def check_square_fits(
    n: int,
    itemsize: int,
    copies: float = 1.0,
    *,
    what: str = "the n × n matrix",
    device: Any = None,
    extra_bytes: int = 0,
) -> int:
    """Raise :class:`MemoryError` if ``copies`` dense ``n × n`` arrays cannot fit.

    Parameters
    ----------
    n : int
        Number of neurons (rows and columns).
    itemsize : int
        Bytes per entry (4 for float32, 8 for float64).
    copies : float, default 1
        How many ``n × n`` arrays are alive at the peak of the computation.
    what : str
        What is being computed, for the message (e.g. ``"analyse (streaming correlation)"``).
    device : torch.device or str, optional
        Where the arrays live (see :func:`available_memory`).
    extra_bytes : int, default 0
        Memory needed besides the ``n × n`` arrays (e.g. the activations).

    Returns
    -------
    int
        The bytes needed (estimate), when they fit.

    Raises
    ------
    MemoryError
        Naming ``n``, the bytes needed and available, and the ways out.
    """
    n = int(n)
    needed = int(copies * n * n * int(itemsize)) + int(extra_bytes)
    if needed <= _ALWAYS_FITS and _from_env() is None:
        return needed  # no system query (~60 µs) inside training steps on small layers
    free = available_memory(device)
    if needed > free:
        where = "" if device is None else f" on {device}"
        raise MemoryError(
            f"{what} for n = {n} neurons needs about {format_bytes(needed)} "
            f"({copies:g} × {n}² × {itemsize} bytes) but only {format_bytes(free)} is available"
            f"{where}. Ways out: analyse fewer neurons (sampling=tn.ImportanceSampling(p) or "
            f"tn.RandomSampling(p); --sampling importance --p P on the command line), take a conv "
            f"layer's channels as neurons and its positions as examples (positions='examples'), "
            f"or use tn.correlation_persistence(A), the tiled path that never holds the n × n "
            f"matrix"
        )
    return needed
