"""Activations → Pearson correlation → dissimilarity between neurons.

The correlation space of neurons: for activations ``A`` of shape ``(m, n)`` (``m`` examples,
``n`` neurons) each column is centred and divided by its Euclidean norm, giving ``Z``; the
Pearson correlation matrix is ``C = ZᵀZ`` and the dissimilarity is

* ``kind="abs"``:  ``d = 1 − |ρ|`` (the code of Ballester et al. for its MNIST runs),
* ``kind="sqrt"``: ``d = sqrt(1 − ρ²)`` (the text of the paper).

Both lie in ``[0, 1]``; ``d = 0`` means perfectly (anti)correlated neurons. The functions here
know nothing of models or of persistence (one direction of imports).

Torch comes first: a torch tensor gives a torch tensor with autograd intact; a numpy array gives
a numpy array (computed through a zero-copy torch view, so both share one implementation).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, overload

import numba
import numpy as np
import torch

from ._finite import check_finite_activations
from ._memory import check_square_fits
from ._options import check_choice

__all__ = [
    "CONSTANT_POLICIES",
    "KINDS",
    "constant_neurons",
    "correlation_dissimilarity",
    "correlation_matrix",
    "dissimilarity_from_correlation",
    "normalized_activations",
]

Kind = Literal["abs", "sqrt"]
ConstantPolicy = Literal["uncorrelated", "drop", "raise"]

KINDS: tuple[str, ...] = ("abs", "sqrt")
CONSTANT_POLICIES: tuple[str, ...] = ("uncorrelated", "drop", "raise")

#: Rows per GEMM block on the no-grad path (bounds the temporaries of the GPU path).
_BLOCK_ROWS = 2048
#: Floor under ``1 − ρ²`` in the backward pass of ``kind="sqrt"`` (finite gradient at |ρ| = 1).
_SQRT_GRAD_EPS = 1e-12


def check_kind(kind: str) -> str:
    """Return ``kind`` if it is a valid dissimilarity kind, else raise ``ValueError``."""
    return check_choice("kind", kind, KINDS, what="dissimilarity", plural="kinds")


def _check_policy(constant: str) -> str:
    return check_choice(
        "constant", constant, CONSTANT_POLICIES, what="constant-neuron policy", plural="policies"
    )


def _as_torch(A: np.ndarray | torch.Tensor, name: str) -> tuple[torch.Tensor, bool]:
    """Return ``A`` as a floating torch tensor (zero-copy for numpy) and whether it was numpy."""
    if isinstance(A, torch.Tensor):
        t = A
        was_numpy = False
    elif isinstance(A, np.ndarray):
        if A.dtype.kind not in "fiub":
            raise TypeError(
                f"{name} must hold real numbers; got numpy dtype {A.dtype} "
                "(float32 and float64 are supported)"
            )
        arr = A if A.dtype in (np.float32, np.float64) else A.astype(np.float64)
        t = torch.from_numpy(np.ascontiguousarray(arr))
        was_numpy = True
    else:
        raise TypeError(
            f"{name} must be a numpy array or a torch tensor of shape (m examples, n neurons); "
            f"got {type(A).__name__}"
        )
    if t.is_complex():
        raise TypeError(f"{name} must be real; got complex dtype {t.dtype}")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    elif t.dtype not in (torch.float32, torch.float64):
        t = t.to(torch.float32)
    return t, was_numpy


def _validate_activations(t: torch.Tensor, name: str) -> None:
    if t.ndim != 2:
        raise ValueError(
            f"{name} must have shape (m examples, n neurons); got {t.ndim} dimension(s) "
            f"with shape {tuple(t.shape)}"
        )
    m, n = t.shape
    if m < 2:
        raise ValueError(
            f"{name} needs at least 2 examples to correlate neurons; got shape {tuple(t.shape)}"
        )
    if n < 2:
        raise ValueError(
            f"{name} needs at least 2 neurons to form a correlation space; "
            f"got shape {tuple(t.shape)}"
        )

    def describe(ex: int, neuron: int, value: float, cols: list[int]) -> str:
        shown = ", ".join(str(c) for c in cols[:10]) + (" …" if len(cols) > 10 else "")
        return (
            f"{name} contain {value} at example {ex}, neuron {neuron} "
            f"(non-finite values in neuron(s) {shown}); NaN/Inf activations are always an error"
        )

    check_finite_activations(t, describe)


def constant_neurons(A: np.ndarray | torch.Tensor) -> np.ndarray:
    """Indices of the neurons that are constant over the batch.

    A constant neuron (e.g. a dead ReLU) has zero variance and therefore no Pearson correlation.

    Parameters
    ----------
    A : numpy.ndarray or torch.Tensor, shape (m, n)
        Activations: ``m`` examples, ``n`` neurons.

    Returns
    -------
    numpy.ndarray of int64, shape (k,)
        Ascending indices of the columns whose maximum equals their minimum.
    """
    t, _ = _as_torch(A, "activations")
    _validate_activations(t, "activations")
    t = t.detach()
    const = t.amax(dim=0) == t.amin(dim=0)
    return torch.nonzero(const).flatten().cpu().numpy().astype(np.int64)


def normalized_activations(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre and normalise each neuron's column: the ``Z`` of ``C = ZᵀZ``.

    Parameters
    ----------
    A : torch.Tensor, shape (m, n)
        Validated floating activations.

    Returns
    -------
    Z : torch.Tensor, shape (m, n)
        Unit-norm centred columns; constant columns are all zero (no gradient flows through them).
    const : torch.Tensor of bool, shape (n,)
        Which columns are constant.
    """
    A_det = A.detach()
    const = A_det.amax(dim=0) == A_det.amin(dim=0)
    # Constant columns: the rounded mean of equal values may differ from them in the last bit,
    # so their centred values are set to exactly zero (torch.where passes them no gradient) and
    # divided by one instead of by a zero norm: no NaN in the forward or backward pass.
    if not (A.requires_grad and torch.is_grad_enabled()):
        # Same arithmetic in place: one (m, n) allocation instead of four.
        Z = A_det - A_det.mean(dim=0, keepdim=True)
        Z.masked_fill_(const, 0.0)
        norm = torch.linalg.vector_norm(Z, dim=0)
        norm.masked_fill_(const, 1.0)
        return Z.div_(norm), const
    centred = A - A.mean(dim=0, keepdim=True)
    centred = torch.where(const, torch.zeros_like(centred), centred)
    norm = torch.linalg.vector_norm(centred, dim=0)
    safe = torch.where(const, torch.ones_like(norm), norm)
    return centred / safe, const


class _SafeSqrt(torch.autograd.Function):
    """``sqrt(max(x, 0))`` whose gradient stays finite at ``x = 0`` (|ρ| = 1)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y = torch.sqrt(torch.clamp(x, min=0.0))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (y,) = ctx.saved_tensors
        return grad * 0.5 / torch.clamp(y, min=_SQRT_GRAD_EPS**0.5)


def dissimilarity_from_correlation(C: torch.Tensor, kind: str = "abs") -> torch.Tensor:
    """Map correlations to dissimilarities (differentiable, elementwise).

    Parameters
    ----------
    C : torch.Tensor, any shape
        Pearson correlations (values slightly outside [-1, 1] from rounding are clamped).
    kind : {"abs", "sqrt"}
        ``"abs"``: ``1 − |ρ|``; ``"sqrt"``: ``sqrt(1 − ρ²)`` with a finite gradient at |ρ| = 1.

    Returns
    -------
    torch.Tensor, same shape as ``C``
        Dissimilarities in ``[0, 1]``.
    """
    check_kind(kind)
    if kind == "abs":
        return torch.clamp(1.0 - torch.abs(C), min=0.0)
    return _SafeSqrt.apply(1.0 - C * C)


class _Gram(torch.autograd.Function):
    """``ZᵀZ`` with the entries of the no-grad path (bitwise) and the exact gradient.

    Forward: the blocked, exactly symmetric product of :func:`_fill_blocked` (half the flops,
    canonical GEMM panels); backward: ``∂L/∂Z = Z (G + Gᵀ)``, one GEMM.
    """

    @staticmethod
    def forward(ctx, Z: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        Zd = Z.detach()
        n = Zd.shape[1]
        out = torch.empty((n, n), dtype=Zd.dtype, device=Zd.device)
        _fill_blocked(Zd, out, "gram")
        ctx.save_for_backward(Z)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (Z,) = ctx.saved_tensors
        return Z @ (grad + grad.T)


def _correlation_grad(Z: torch.Tensor, const: torch.Tensor) -> torch.Tensor:
    """Full correlation with autograd; constant neurons get ρ = 0 off the diagonal.

    The entries are those of the no-grad path bitwise (:class:`_Gram`), exactly symmetric.
    """
    C = _Gram.apply(Z)
    n = C.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=C.device)
    C = torch.where(eye, torch.ones_like(C), C)
    if bool(const.any()):
        # Symmetrise the block structure: rows and columns of constant neurons are 0, diag 1.
        mask = (const[:, None] | const[None, :]) & ~eye
        C = torch.where(mask, torch.zeros_like(C), C)
    return C


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


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_blas_lock = threading.Lock()
_blas_users = 0
_blas_saved = 1


@contextlib.contextmanager
def one_blas_thread() -> Iterator[int]:
    """Run the block with one torch/MKL thread; yield the thread count to use for tiles.

    Small GEMMs (one tile) lose to MKL's own threading (measured 3–5× slower with two MKL
    threads than with one on this 2-core machine under load); the tiles are spread over
    threads instead. Re-entrant across threads: the first caller saves the count and the last
    one restores it.
    """
    global _blas_users, _blas_saved
    with _blas_lock:
        if _blas_users == 0:
            _blas_saved = torch.get_num_threads()
        _blas_users += 1
        workers = _blas_saved
        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)
    try:
        yield workers
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0 and torch.get_num_threads() != _blas_saved:
                torch.set_num_threads(_blas_saved)


def run_on_tile_threads(job: Callable[[Sequence[int]], None], items: Sequence[int]) -> None:
    """``job(chunk)`` over ``items`` dealt round-robin to ``torch.get_num_threads()`` threads.

    Each chunk runs in a thread of a shared pool with one MKL thread (:func:`one_blas_thread`);
    the compiled tile kernels release the GIL. One chunk runs in the calling thread.
    """
    global _pool
    with one_blas_thread() as workers:
        workers = max(1, min(workers, len(items)))
        chunks = [items[w::workers] for w in range(workers)]
        if workers == 1:
            job(chunks[0])
            return
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2))
            pool = _pool
        futures = [pool.submit(job, c) for c in chunks[1:]]
        job(chunks[0])
        for f in futures:
            f.result()


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

        # Row a holds nb − a tiles: deal rows as a, nb−1−a, … so the chunks carry equal work.
        order = [r for k in range((nb + 1) // 2) for r in dict.fromkeys((k, nb - 1 - k))]
        run_on_tile_threads(rows, order)
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


def _prepare(
    A: np.ndarray | torch.Tensor, constant: str
) -> tuple[torch.Tensor, bool, torch.Tensor, torch.Tensor]:
    _check_policy(constant)
    t, was_numpy = _as_torch(A, "activations")
    _validate_activations(t, "activations")
    Z, const = normalized_activations(t)
    if constant == "raise" and bool(const.any()):
        idx = torch.nonzero(const).flatten().tolist()
        shown = ", ".join(str(i) for i in idx[:10]) + (" …" if len(idx) > 10 else "")
        raise ValueError(
            f"activations have {len(idx)} constant neuron(s) (zero variance over the batch, "
            f"e.g. dead ReLUs): neuron(s) {shown}; use constant='uncorrelated' or 'drop'"
        )
    kept = torch.arange(t.shape[1], device=t.device)
    if constant == "drop" and bool(const.any()):
        kept = torch.nonzero(~const).flatten()
        if kept.numel() < 2:
            raise ValueError(
                f"constant='drop' leaves {kept.numel()} neuron(s) out of {t.shape[1]}; "
                "at least 2 non-constant neurons are needed"
            )
        Z = Z[:, kept]
        const = const[kept]
    return Z, was_numpy, const, kept


def _compute(
    A: np.ndarray | torch.Tensor, transform: str, constant: str
) -> tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor]:
    Z, was_numpy, const, kept = _prepare(A, constant)
    # One guard before any n × n allocation (MemoryError naming n, the bytes and the ways out).
    grad = Z.requires_grad and torch.is_grad_enabled()
    check_square_fits(
        Z.shape[1],
        Z.element_size(),
        _GRAD_COPIES if grad else 1.0,
        what="the correlation " + ("matrix" if transform == "corr" else "dissimilarity"),
        device=Z.device,
    )
    diag = 1.0 if transform == "corr" else 0.0
    off = 0.0 if transform == "corr" else 1.0
    if Z.requires_grad and torch.is_grad_enabled():
        C = _correlation_grad(Z, const)
        out = C if transform == "corr" else dissimilarity_from_correlation(C, transform)
        if transform != "corr":
            eye = torch.eye(out.shape[0], dtype=torch.bool, device=out.device)
            out = torch.where(eye, torch.zeros_like(out), out)
    else:
        Zd = Z.detach()
        n = Zd.shape[1]
        out = torch.empty((n, n), dtype=Zd.dtype, device=Zd.device)
        _fill_blocked(Zd, out, transform)
        _finish(out, const, diag, off)
    if was_numpy:
        return out.numpy(), kept.numpy()
    return out, kept


#: ``n × n`` arrays alive at once on the autograd path (``ZᵀZ``, its symmetrisation, the mask,
#: the dissimilarity and what autograd keeps for the backward pass).
_GRAD_COPIES = 5.0


@overload
def correlation_dissimilarity(
    A: np.ndarray, kind: Kind = ..., constant: ConstantPolicy = ..., *, return_kept: bool = ...
) -> np.ndarray: ...
@overload
def correlation_dissimilarity(
    A: torch.Tensor, kind: Kind = ..., constant: ConstantPolicy = ..., *, return_kept: bool = ...
) -> torch.Tensor: ...


def correlation_dissimilarity(
    A: np.ndarray | torch.Tensor,
    kind: Kind = "abs",
    constant: ConstantPolicy = "uncorrelated",
    *,
    return_kept: bool = False,
):
    """Correlation dissimilarity between the neurons (columns) of an activation matrix.

    Parameters
    ----------
    A : numpy.ndarray or torch.Tensor, shape (m, n)
        Activations of ``n`` neurons over ``m ≥ 2`` examples. float32 and float64 keep their
        dtype; integer input is computed in float64. A torch tensor keeps its device and its
        autograd graph.
    kind : {"abs", "sqrt"}, default "abs"
        ``"abs"``: ``d = 1 − |ρ|``; ``"sqrt"``: ``d = sqrt(1 − ρ²)`` (finite gradient at |ρ| = 1).
    constant : {"uncorrelated", "drop", "raise"}, default "uncorrelated"
        Policy for neurons that are constant over the batch (no correlation is defined):
        ``"uncorrelated"`` sets ``d = 1`` to every other neuron (no gradient, never NaN);
        ``"drop"`` removes them from the output; ``"raise"`` raises ``ValueError`` naming them.
    return_kept : bool, default False
        Also return the indices (into the columns of ``A``) of the rows of the output.

    Returns
    -------
    D : same type as ``A``, shape (n', n')
        Symmetric (bitwise on the no-grad path) with an exact zero diagonal, values in
        ``[0, 1]`` (unitless). ``n' = n`` unless ``constant="drop"`` removed neurons.
    kept : same type as ``A`` of int64, shape (n',)
        Only if ``return_kept``.

    Raises
    ------
    ValueError
        Wrong rank, fewer than 2 examples or neurons, NaN/Inf (naming example and neuron),
        unknown ``kind`` or ``constant``, constant neurons under ``constant="raise"``.
    TypeError
        Not an array/tensor, or complex/non-numeric dtype.

    Notes
    -----
    Without autograd (numpy input, or ``torch.no_grad()``), only the upper block triangle of
    ``ZᵀZ`` is multiplied, in blocks of 2048 rows written straight into the output, then one
    fused parallel pass (compiled with numba) maps it and mirrors it: peak memory is the ``n²``
    output plus ``Z``, with no ``m × n²`` or block temporary (on a GPU, one block temporary).

    Examples
    --------
    >>> import numpy as np
    >>> import topo_neurons as tn
    >>> A = np.array([[0.0, 0.0, 1.0], [1.0, 2.0, 0.0], [2.0, 4.0, 1.0]])
    >>> tn.correlation_dissimilarity(A).round(6)
    array([[0., 0., 1.],
           [0., 0., 1.],
           [1., 1., 0.]])
    """
    check_kind(kind)
    D, kept = _compute(A, kind, constant)
    return (D, kept) if return_kept else D


def correlation_matrix(
    A: np.ndarray | torch.Tensor, constant: ConstantPolicy = "uncorrelated"
) -> np.ndarray | torch.Tensor:
    """Pearson correlation matrix of the neurons (columns) of ``A``.

    Parameters
    ----------
    A : numpy.ndarray or torch.Tensor, shape (m, n)
        Activations; same rules as :func:`correlation_dissimilarity`.
    constant : {"uncorrelated", "drop", "raise"}
        Constant neurons get ``ρ = 0`` with every other neuron under ``"uncorrelated"``.

    Returns
    -------
    same type as ``A``, shape (n', n')
        Symmetric, unit diagonal, values in ``[-1, 1]``.
    """
    C, _ = _compute(A, "corr", constant)
    return C
