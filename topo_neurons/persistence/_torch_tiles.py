"""The device MST from activations, tile by tile: ``n²`` dissimilarities are never stored.

Each Borůvka round of :mod:`._torch_mst` needs, for every neuron, its smallest ``(d, j)`` to a
neuron of another component. Here they come from the Gram tiles ``P[a]ᵀ P[b]`` of the
normalised activations (``a ≤ b``, panels of ``tile`` neurons): each tile is mapped to
dissimilarities, the pairs inside one component are masked, and the tile's row minima update
the candidates of block ``a`` and its column minima those of block ``b``. Memory: the panels
(``m·n``) plus one tile and its mask (``tile²``); time per round: one pass of GEMMs over the
upper tile triangle.

Where each value comes from. A pair ``(i, j)``, ``i < j``, is always read from the GEMM call
of the canonical orientation (the panel holding ``i`` as rows; a diagonal tile's strict upper
triangle), as the dense path and the tiled engine do. On the CPU the tile is
``GEMM_TILE`` wide, the panels are :func:`~topo_neurons.correlation.gemm_panels` and the call is
:func:`~topo_neurons.correlation.gram_tile`'s ``torch.mm(P[a].T, P[b], out=tmp)``, mapped by
its compiled kernel (float64, rounded once): every dissimilarity is bitwise the dense
path's and the tiled engine's, so the edges are theirs and the deaths equal bit for bit. On
another device the tiles are wider (fewer, larger GEMMs) and mapped in the dtype as the dense
device path maps its blocks; its GEMMs have other shapes than the dense path's, so deaths agree
with it to rounding (ties within rounding may pick other edges).
"""

from __future__ import annotations

import numpy as np
import torch

from ..correlation import GEMM_TILE, _prepare, gemm_panels, map_into
from ._barcode import Barcode
from ._torch_mst import boruvka, torch_mst_dense

__all__ = ["DEVICE_TILE", "torch_mst_activations"]

_CODES = {"abs": 1, "sqrt": 2}
#: Tile width on non-CPU devices (a float32 tile is 256 MiB; a multiple of ``GEMM_TILE``).
DEVICE_TILE = 8192


def _map_tile(G: torch.Tensor, kind: str, host_kernel: bool) -> torch.Tensor:
    """Dissimilarities of a Gram tile (``G`` may be modified in place).

    ``host_kernel`` (a CPU tile): the dense path's compiled map; else torch operations in the
    tile's dtype, as the dense path maps its blocks on a device.
    """
    if host_kernel:
        # The dense path's compiled map itself (float64, rounded once): torch's vectorised
        # float64 sqrt was measured to differ from it in the last bit (508 of 10⁵ values).
        out = torch.empty_like(G)
        map_into(G.view(-1).numpy(), out.view(-1).numpy(), _CODES[kind])
        return out
    if kind == "abs":  # as the dense path's device blocks (_fill_blocked)
        return G.abs_().neg_().add_(1.0).clamp_(0.0, 1.0)
    return G.square_().neg_().add_(1.0).clamp_(min=0.0).sqrt_()


def _panels(Z: torch.Tensor, tile: int) -> torch.Tensor:
    """``Z`` (m, n) as contiguous zero-padded panels (ceil(n / tile), m, tile)."""
    if tile == GEMM_TILE:
        return gemm_panels(Z)
    m, n = Z.shape
    nb = -(-n // tile)
    P = Z.new_zeros((nb, m, tile))
    for a in range(nb):
        c0, c1 = a * tile, min(n, (a + 1) * tile)
        P[a, :, : c1 - c0] = Z[:, c0:c1]
    return P


def _update(
    best_d: torch.Tensor, best_j: torch.Tensor, s: int, d: torch.Tensor, j: torch.Tensor
) -> None:
    """Candidates ``[s, s + len(d))`` become the smaller ``(d, j)`` of theirs and the new ones."""
    seg_d, seg_j = best_d[s : s + d.shape[0]], best_j[s : s + d.shape[0]]
    better = (d < seg_d) | ((d == seg_d) & (j < seg_j))
    seg_d.copy_(torch.where(better, d, seg_d))
    seg_j.copy_(torch.where(better, j, seg_j))


def tile_row_minima(P: torch.Tensor, n: int, kind: str, *, host_kernel: bool | None = None):
    """``row_minima`` of :func:`~._torch_mst.boruvka` computed from the Gram tiles of ``P``.

    ``host_kernel``: map the tiles with the CPU's compiled kernel (default: on a CPU tensor).
    """
    if host_kernel is None:
        host_kernel = P.device.type == "cpu"
    nb, _, tile = P.shape
    dev, dtype = P.device, P.dtype
    pad = nb * tile
    ar = torch.arange(tile, device=dev)
    lower = ar[None, :] <= ar[:, None]  # a diagonal tile: keep the strict upper triangle only
    padded = (nb - 1) * tile + ar >= n  # the last panel's zero padding
    inf = torch.full((), float("inf"), dtype=dtype, device=dev)
    tmp = torch.empty((tile, tile), dtype=dtype, device=dev)

    def row_minima(comp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.full((pad,), -1, dtype=torch.long, device=dev)
        labels[:n] = comp
        best_d = torch.full((pad,), float("inf"), dtype=dtype, device=dev)
        best_j = torch.full((pad,), pad, dtype=torch.long, device=dev)
        for a in range(nb):
            la = labels[a * tile : (a + 1) * tile]
            for b in range(a, nb):
                torch.mm(P[a].T, P[b], out=tmp)  # gram_tile's call on the CPU
                X = _map_tile(tmp, kind, host_kernel)
                mask = la[:, None] == labels[b * tile : (b + 1) * tile][None, :]
                if a == b:
                    mask |= lower
                if b == nb - 1:
                    mask |= padded[None, :]
                if a == nb - 1:
                    mask |= padded[:, None]
                X = X.masked_fill_(mask, inf)
                # Ties: the first minimum, i.e. the smallest index (see _torch_mst).
                d, j = torch.min(X, dim=1)
                _update(best_d, best_j, a * tile, d, j + b * tile)
                d, i = torch.min(X, dim=0)
                _update(best_d, best_j, b * tile, d, i + a * tile)
        return best_d[:n], best_j[:n]

    return row_minima


def torch_mst_activations(
    A: np.ndarray | torch.Tensor,
    kind: str,
    constant: str,
    *,
    block_size: int | None,
    dense_max: int,
) -> Barcode:
    """The barcode of ``correlation_persistence`` computed by the torch MST on ``A``'s device.

    ``block_size=None`` with ``n ≤ dense_max``: the dense dissimilarity on the device and the
    dense rounds; otherwise Gram tiles (``GEMM_TILE`` wide on the CPU, ``block_size`` or
    ``DEVICE_TILE`` elsewhere) with the rounds stopped once the tree is complete (one
    synchronisation per round: this is the analysis path, not a training step).
    """
    from ..correlation import correlation_dissimilarity

    if isinstance(A, torch.Tensor):
        A = A.detach()
    n_cols = A.shape[1] if getattr(A, "ndim", 0) == 2 else None
    with torch.no_grad():
        if block_size is None and n_cols is not None and n_cols <= dense_max:
            D = correlation_dissimilarity(A, kind, constant)
            Dt = torch.from_numpy(D) if isinstance(D, np.ndarray) else D
            edges, deaths = torch_mst_dense(Dt, symmetric=True)
            n = Dt.shape[0]
        else:
            Z, _, _, _ = _prepare(A, constant)
            n = Z.shape[1]
            # The CPU keeps the dense path's GEMM panels whatever block_size is (bitwise
            # the same dissimilarities); a device takes block_size-wide tiles.
            tile = GEMM_TILE if Z.device.type == "cpu" else (block_size or DEVICE_TILE)
            P = _panels(Z, tile)
            del Z
            a, b, deaths = boruvka(
                n, tile_row_minima(P, n, kind), P.dtype, P.device, early_exit=True
            )
            edges = torch.stack([a, b], dim=1)
    return Barcode(
        deaths=deaths.cpu().numpy(), edges=edges.cpu().numpy(), n_points=n, backend="torch"
    )
