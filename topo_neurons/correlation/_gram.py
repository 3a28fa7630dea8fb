"""The Gram product ``ZᵀZ`` on canonical GEMM tiles, mapped and mirrored by compiled kernels.

One concept: how ``transform(ZᵀZ)`` is computed without autograd, exactly symmetric and with
the same GEMM calls wherever it is computed. :func:`gemm_panels` cuts ``Z`` into fixed-shape
panels, :func:`gram_tile` multiplies two of them and stores the mapped tile (and its mirror)
through the numba kernels :func:`_map_into` / :func:`_store_tile`; :func:`_fill_blocked` fills
the dense ``n × n`` output from those tiles (the tiled engine of
:mod:`topo_neurons.persistence` calls :func:`gram_tile` itself, so both agree bitwise).
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
import torch

from .._threads import run_on_tile_threads

__all__ = ["GEMM_TILE", "gemm_panels", "gram_tile"]

#: Rows per GEMM block on the no-grad path (bounds the temporaries of the GPU path).
_BLOCK_ROWS = 2048

_TRANSFORMS = {"corr": 0, "abs": 1, "sqrt": 2, "gram": 3}


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _map_into(src, dst, code):  # pragma: no cover - compiled
    """``dst[k] = src[k] = f(src[k])`` for a contiguous run, ``f`` chosen by ``code``.

    ``code`` 0: clamp to [−1, 1]; 1: ``1 − |ρ|`` clamped to [0, 1]; 2: ``sqrt(max(1 − ρ², 0))``;
    3: unchanged (the raw ``ZᵀZ`` of the autograd path);
    computed in float64 and rounded once to the dtype of ``src``. One branch per run, so each
    loop is a straight vectorisable pass.
    """
    if code == 1:
        for k in range(src.shape[0]):
            y = min(max(1.0 - abs(np.float64(src[k])), 0.0), 1.0)
            src[k] = y
            dst[k] = y
    elif code == 3:
        for k in range(src.shape[0]):
            dst[k] = src[k]
    elif code == 2:
        for k in range(src.shape[0]):
            x = np.float64(src[k])
            y = np.sqrt(max(1.0 - x * x, 0.0))
            src[k] = y
            dst[k] = y
    else:
        for k in range(src.shape[0]):
            y = min(max(np.float64(src[k]), -1.0), 1.0)
            src[k] = y
            dst[k] = y


#: Side of every GEMM call of ``ZᵀZ`` on the CPU. MKL's value for an entry of a GEMM depends on
#: the shape of the call (measured: float64 kernels change with the number of output columns;
#: calls with fewer than 16 rows use other kernels; the last columns of a panel can differ with
#: the row count). So every product here is one call of a fixed shape: tile ``a`` of
#: ``GEMM_TILE`` neurons (zero-padded at the end) against tile ``b``, both contiguous
#: ``(m, GEMM_TILE)`` panels of :func:`gemm_panels`. The dense path and the tiled engine
#: (:func:`~topo_neurons.correlation_persistence`) make the same calls on the same panels, so
#: their dissimilarities are bitwise equal.
GEMM_TILE = 256


def gemm_panels(Z: torch.Tensor) -> torch.Tensor:
    """``Z`` cut into contiguous, zero-padded panels of ``GEMM_TILE`` neurons.

    Parameters
    ----------
    Z : torch.Tensor, shape (m, n)

    Returns
    -------
    torch.Tensor, shape (ceil(n / GEMM_TILE), m, GEMM_TILE)
        ``P[a, :, c] = Z[:, a·GEMM_TILE + c]`` (0 beyond ``n``).
    """
    m, n = Z.shape
    nb = -(-n // GEMM_TILE)
    P = Z.new_zeros((nb, m, GEMM_TILE))
    full = n // GEMM_TILE
    if full:
        P[:full].copy_(Z[:, : full * GEMM_TILE].reshape(m, full, GEMM_TILE).permute(1, 0, 2))
    if n % GEMM_TILE:
        P[full, :, : n % GEMM_TILE] = Z[:, full * GEMM_TILE :]
    return P


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _store_tile(tmp, dst, r0, c0, nr, nc, code, mirror, diag_tile, diag, dstT):  # pragma: no cover
    """Map ``tmp[:nr, :nc]`` (a GEMM tile, in place) and store it at ``dst[r0:, c0:]``.

    ``diag_tile``: only the strict upper triangle is mapped and stored (the diagonal gets
    ``diag``). ``mirror``: also store the transpose at ``dstT[c0:, r0:]`` (``dstT`` is ``dst``
    for the dense matrix, bitwise symmetric).
    """
    for i in range(nr):
        j0 = i + 1 if diag_tile else 0
        if j0 < nc:
            row = tmp[i, j0:nc]
            _map_into(row, dst[r0 + i, c0 + j0 : c0 + nc], code)
        if diag_tile:
            dst[r0 + i, c0 + i] = diag
    if mirror:  # transposed in 16 × 16 blocks (both sides stay in cache lines)
        for jb in range(0, nc, 16):
            for ib in range(0, min(jb + 16, nr) if diag_tile else nr, 16):
                for j in range(jb, min(jb + 16, nc)):
                    out = dstT[c0 + j]
                    for i in range(ib, min(ib + 16, min(j, nr) if diag_tile else nr)):
                        out[r0 + i] = tmp[i, j]
        if diag_tile:
            for i in range(nr):
                dstT[c0 + i, r0 + i] = diag


def gram_tile(
    P: torch.Tensor,
    a: int,
    b: int,
    tmp: torch.Tensor,
    dst: np.ndarray,
    r0: int,
    c0: int,
    code: int,
    *,
    mirror: bool = False,
    diag: float = 0.0,
    Pb: torch.Tensor | None = None,
    dstT: np.ndarray | None = None,
) -> None:
    """One canonical GEMM tile ``P[a]ᵀ P[b]``, mapped by ``code`` into ``dst[r0:, c0:]``.

    Parameters
    ----------
    P : torch.Tensor, shape (nb, m, GEMM_TILE)
        Panels of :func:`gemm_panels` holding tile ``a`` (and ``b`` unless ``Pb`` is given).
    a, b : int
        Panel indices; ``a == b`` with ``Pb is None`` is a diagonal tile (strict upper
        triangle only).
    tmp : torch.Tensor, shape (GEMM_TILE, GEMM_TILE)
        Scratch output of the GEMM (contiguous, dtype of ``P``).
    dst : numpy.ndarray
        Destination; ``nr × nc`` entries are written, ``nr``/``nc`` the valid neurons of the
        tiles (clipped to ``dst``).
    code : int
        0 clamp to [−1, 1], 1 ``1 − |ρ|``, 2 ``sqrt(1 − ρ²)``, 3 unchanged.
    mirror : bool
        Also write the transpose: into ``dst`` (the dense matrix) or into ``dstT``.
    diag : float
        Diagonal value of a diagonal tile.
    Pb : torch.Tensor, optional
        Panels holding tile ``b`` when they are not ``P`` (blocks on a Dask worker).
    dstT : numpy.ndarray, optional
        Destination of the transpose (at ``dstT[c0:, r0:]``); default ``dst``.
    """
    Q = P if Pb is None else Pb
    torch.mm(P[a].T, Q[b], out=tmp)
    nr = min(GEMM_TILE, dst.shape[0] - r0)
    nc = min(GEMM_TILE, dst.shape[1] - c0)
    diag_tile = Pb is None and a == b
    T = dst if dstT is None else dstT
    _store_tile(tmp.numpy(), dst, r0, c0, nr, nc, code, mirror, diag_tile, diag, T)


@torch.no_grad()
def _fill_blocked(
    Z: torch.Tensor, out: torch.Tensor, transform: str, block_rows: int = _BLOCK_ROWS
) -> torch.Tensor:
    """Fill ``out`` (n × n) with ``transform(ZᵀZ)`` block by block, exactly symmetric.

    Only the upper tile triangle is multiplied (half the flops). On the CPU each tile is one
    canonical GEMM call (:func:`gram_tile`, shared with the tiled engine) into a small scratch
    tile, mapped and stored with its mirror image by one compiled kernel; on other devices each
    row block is mapped and mirrored with tensor operations (one block-sized temporary).
    ``out`` is bitwise symmetric; its diagonal is set by :func:`_finish`.
    ``transform`` is ``"corr"``, ``"abs"``, ``"sqrt"`` or ``"gram"`` (raw ``ZᵀZ``).
    """
    n = Z.shape[1]
    if out.device.type == "cpu" and out.is_contiguous():
        P = gemm_panels(Z)
        dst = out.numpy()
        code = _TRANSFORMS[transform]
        diag = 1.0 if transform in ("corr", "gram") else 0.0
        nb = P.shape[0]

        def rows(chunk: Sequence[int]) -> None:
            tmp = torch.empty((GEMM_TILE, GEMM_TILE), dtype=Z.dtype)
            for a in chunk:
                for b in range(a, nb):
                    r0, c0 = a * GEMM_TILE, b * GEMM_TILE
                    gram_tile(P, a, b, tmp, dst, r0, c0, code, mirror=True, diag=diag)

        # Row a holds nb − a tiles: rows in decreasing order of work, dealt back and forth.
        run_on_tile_threads(rows, list(range(nb)))
        return out
    for i0 in range(0, n, block_rows):
        i1 = min(i0 + block_rows, n)
        blk = Z[:, i0:i1].T @ Z[:, i0:]  # (block, n − i0): the only temporary
        if transform == "gram":
            pass
        elif transform == "corr":
            blk.clamp_(-1.0, 1.0)
        elif transform == "abs":
            blk.abs_().neg_().add_(1.0).clamp_(0.0, 1.0)
        else:  # sqrt(1 − ρ²)
            blk.square_().neg_().add_(1.0).clamp_(min=0.0).sqrt_()
        out[i0:i1, i0:].copy_(blk)
        out[i0:, i0:i1].copy_(blk.T)
        # The diagonal block Z_bᵀZ_b is not bitwise symmetric from GEMM: mirror its upper part.
        upper = torch.triu(out[i0:i1, i0:i1], diagonal=1)
        out[i0:i1, i0:i1].copy_(upper + upper.T)
    return out


def _finish(out: torch.Tensor, const: torch.Tensor, diag: float, off: float) -> torch.Tensor:
    """Set the exact diagonal and the rows/columns of constant neurons (in place, no grad)."""
    if bool(const.any()):
        idx = torch.nonzero(const).flatten()
        out[idx, :] = off
        out[:, idx] = off
    out.fill_diagonal_(diag)
    return out
