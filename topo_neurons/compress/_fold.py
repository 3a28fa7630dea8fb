"""Fold redundant neurons into the neurons they duplicate: :func:`fold_redundant`."""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .._modes import eval_mode
from ..analysis._batches import Data, iter_batches, model_dtype_device, run_model
from ..capture import ActivationRecorder, FewExamplesWarning
from ..correlation import correlation_dissimilarity
from ..persistence import zero_persistence
from ._graph import FoldSite, find_sites
from ._report import ClusterFold, FoldReport, LayerFold, NeuronFold

__all__ = ["fold_redundant"]


def fold_redundant(
    model: nn.Module,
    data: Data,
    threshold: float = 0.05,
    layers: str | Sequence[str] | None = None,
    *,
    max_error: float | None = None,
    dry_run: bool = False,
    fold_constant: bool = False,
    batch_size: int = 256,
) -> tuple[nn.Module | None, FoldReport]:
    """Fold each redundant neuron into the neurons it duplicates; return a smaller model.

    For each layer, the neurons are its post-activation outputs (what the next layer reads),
    recorded by :class:`~topo_neurons.ActivationRecorder` over ``data`` in eval mode (a
    convolution's channels with every position as an example). Their clusters are the
    single-linkage clusters at ``threshold`` of the 0-dim barcode of the dissimilarity
    ``1 − |ρ|`` (:meth:`~topo_neurons.Barcode.clusters`: the MST edges of death ≤ threshold,
    the report's ``R(t)``). Each cluster keeps one **representative**, the member of largest
    activation variance over ``data`` (ties: smallest index); every other member ``j`` is
    mapped by float64 least squares over the calibration examples from the cluster's kept
    neurons, ``h_j ≈ Σ a_k·h_k + c`` (``a·h_rep + c`` when nothing is refused), and folded into
    the consumer: ``W[:, k] += a_k·W[:, j]``, ``bias += c·W[:, j]`` (a convolution: ``c`` times
    the sum of the kernel ``W[:, j]``); then input column ``j`` of the consumer and output row
    ``j`` of the producer (and channel ``j`` of a BatchNorm between them) are removed. The fold
    is exact when ``h_j`` is an affine function of the kept neurons on every input.

    Parameters
    ----------
    model : torch.nn.Module
        Never modified: the folds are made on a deep copy. It must trace with ``torch.fx``.
    data : tensor, array or iterable of batches
        Calibration examples (as :func:`~topo_neurons.analyse` takes them). Each folded layer
        needs at least ``n + 1`` examples for ``n`` neurons (for a convolution, images ×
        positions), so that ``n`` neurons can be affinely independent on them and an exact
        affine relation found is one of the network, not of too few examples.
    threshold : float in [0, 1], default 0.05
        Scale of the clusters, in units of ``1 − |ρ|``. 0 folds only pairs whose computed
        ``1 − |ρ|`` is exactly 0: rounding can leave an exact copy at ~1e-16 (it is then not
        folded), so fold exact copies with a tiny threshold such as 1e-9.
    layers : str or sequence of str, optional
        Producing layers to fold (``Linear`` or ``Conv*d`` names). ``None``: every layer that
        can be folded; the others are listed in :attr:`FoldReport.skipped` with the reason.
        A named layer that cannot be folded is a ``ValueError`` naming it.
    max_error : float, optional
        Refuse a fold whose relative RMS residual (from the representative alone) exceeds
        it; a refused neuron is kept, and the maps of the others read it too.
    dry_run : bool, default False
        Compute and return the report only; no model is built (``None`` is returned).
    fold_constant : bool, default False
        Also fold the neurons that are constant over ``data`` (dead ReLUs) into the
        consumer's bias (``h_j = c``: exact on ``data``; a neuron constant on the calibration
        data may still vary on other inputs). They have no correlation, so the MST never
        clusters them; they are left out of the clustering and reported in
        :attr:`LayerFold.constant`.
    batch_size : int, default 256
        Rows per forward pass when ``data`` is one tensor or array.

    Returns
    -------
    folded : torch.nn.Module or None
        The folded deep copy (in the input's training mode), or ``None`` with ``dry_run``.
    report : FoldReport
        Per layer: clusters, representatives, removed neurons, maps and their errors.

    Raises
    ------
    ValueError
        An unknown layer, a layer whose consumer is not one linear layer (a norm layer after
        the activation, a residual sum, a second use, a flatten), a threshold outside [0, 1],
        a negative or non-finite ``max_error``, too few calibration examples, or non-finite
        activations.
    TypeError
        ``model`` is not a module, or an option has the wrong type.

    Notes
    -----
    Every layer is calibrated on the activations of the input model (one pass over
    ``data``), so the report of ``dry_run=True`` is that of the real fold. Folds of
    successive layers are each exact only up to their own residual; measure the folded
    model. A convolution's constant ``c`` enters through the consumer's bias, which equals
    the folded term only where the kernel sees no zero padding: at the borders of a padded
    consumer the folded model differs (``docs/fold.md`` measures by how much). A BatchNorm
    *after* the activation, a Flatten between a convolution and a Linear and grouped
    convolutions are refused.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    threshold = _check_threshold(threshold)
    if max_error is not None:
        if isinstance(max_error, bool) or not isinstance(max_error, numbers.Real):
            raise TypeError(f"max_error must be a number or None; got {type(max_error).__name__}")
        if not (math.isfinite(max_error) and max_error >= 0):
            raise ValueError(f"max_error must be a finite number ≥ 0; got {max_error!r}")
        max_error = float(max_error)
    if isinstance(layers, str):
        layers = [layers]
    elif layers is not None:
        layers = list(dict.fromkeys(layers))  # a layer named twice is folded once
        bad = [x for x in layers if not isinstance(x, str)]
        if bad:
            raise TypeError(f"layers must be module names (str); got {bad!r}")
    sites, skipped = find_sites(model, layers)
    acts = _calibrate(model, data, sites, batch_size) if sites else {}
    layer_folds = tuple(
        _fold_layer(site, acts[site.layer], threshold, max_error, bool(fold_constant))
        for site in sites
    )
    report = FoldReport(threshold, max_error, bool(dry_run), layer_folds, skipped)
    if dry_run:
        return None, report
    folded = copy.deepcopy(model)
    named = dict(folded.named_modules())
    for site, lf in zip(sites, layer_folds, strict=True):
        _apply(named, site, lf)
    return folded, report


def _check_threshold(threshold: object) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold must be a number; got {type(threshold).__name__}")
    t = float(threshold)
    if not (0.0 <= t <= 1.0):
        raise ValueError(
            f"threshold must be in [0, 1] (a dissimilarity 1 − |ρ|); got {threshold!r}"
        )
    return t


def _calibrate(
    model: nn.Module, data: Data, sites: list[FoldSite], batch_size: int
) -> dict[str, np.ndarray]:
    """Post-activation outputs ``(m, n)`` (float64) of each site's layer over ``data``."""
    import warnings

    names = [s.layer for s in sites]
    dtype, device = model_dtype_device(model)
    with (
        eval_mode(model),
        torch.no_grad(),
        warnings.catch_warnings(),
        ActivationRecorder(model, names, detach=True, positions="examples") as rec,
    ):
        warnings.simplefilter("ignore", FewExamplesWarning)  # checked below, per layer
        for x in iter_batches(data, batch_size):
            run_model(model, x, dtype, device)
        per_layer = rec.per_layer()
        points = rec.record_points
    out = {}
    for site in sites:
        own = f"{site.layer} ({type(dict(model.named_modules())[site.layer]).__name__})"
        if points.get(site.layer) == own:  # the recorder saw no activation: never fold that
            raise ValueError(
                f"layer {site.layer!r}: the activation recorder found no activation after it "
                f"(it records {own}), while tracing found one; cannot calibrate the fold"
            )
        A = per_layer[site.layer].detach().to("cpu", torch.float64).numpy()
        m, n = A.shape
        if m < n + 1:
            raise ValueError(
                f"layer {site.layer!r} has {n} neurons but data gives only {m} calibration "
                f"examples; fold_redundant needs at least n + 1 = {n + 1}"
            )
        if not np.isfinite(A).all():
            example, neuron = np.argwhere(~np.isfinite(A))[0]
            raise ValueError(
                f"layer {site.layer!r}: non-finite activation (NaN or Inf) at calibration "
                f"example {example}, neuron {neuron}; fold_redundant needs finite activations"
            )
        out[site.layer] = A
    return out


def _fit(A: np.ndarray, sources: list[int], j: int) -> tuple[np.ndarray, float, float, float]:
    """Least squares ``h_j ≈ A[:, sources] @ a + c``: ``(a, c, rel_error, max_abs_error)``."""
    X = np.column_stack([A[:, sources], np.ones(A.shape[0])])
    y = A[:, j]
    sol = np.linalg.lstsq(X, y, rcond=None)[0]
    resid = y - X @ sol
    spread = float(np.linalg.norm(y - y.mean()))
    rel = float(np.linalg.norm(resid)) / spread if spread > 0 else 0.0
    return sol[:-1], float(sol[-1]), rel, float(np.abs(resid).max())


def _fold_layer(
    site: FoldSite, A: np.ndarray, threshold: float, max_error: float | None, fold_constant: bool
) -> LayerFold:
    flat = A.max(axis=0) == A.min(axis=0)
    constant: tuple[NeuronFold, ...] = ()
    cols = np.arange(A.shape[1])
    if fold_constant:
        constant = tuple(
            NeuronFold(int(j), (), (), float(A[0, j]), 0.0, 0.0) for j in np.flatnonzero(flat)
        )
        cols = np.flatnonzero(~flat)
    labels = np.full(A.shape[1], -1)
    if len(cols) >= 2:
        bc = zero_persistence(correlation_dissimilarity(A[:, cols], kind="abs"))
        labels[cols] = bc.clusters(threshold)
    var = A.var(axis=0)
    clusters = []
    for lab in np.unique(labels[cols]):
        members = cols[labels[cols] == lab]
        if len(members) < 2:
            continue
        rep = int(members[np.argmax(var[members])])
        others = [int(j) for j in members if j != rep]
        pair = {j: _fit(A, [rep], j) for j in others}
        refused = sorted(j for j in others if max_error is not None and pair[j][2] > max_error)
        sources = [rep, *refused]
        folds = []
        for j in others:
            if j in refused:
                a, c, rel, mx = pair[j]
                folds.append(NeuronFold(j, (rep,), (float(a[0]),), c, rel, mx, True))
                continue
            a, c, rel, mx = _fit(A, sources, j) if refused else pair[j]
            folds.append(NeuronFold(j, tuple(sources), tuple(map(float, a)), c, rel, mx))
        clusters.append(ClusterFold(tuple(int(i) for i in members), rep, tuple(folds)))
    m, n = A.shape
    return LayerFold(site.layer, site.consumer, n, m, tuple(clusters), constant)


def _set(module: nn.Module, name: str, value: torch.Tensor | None, like: torch.Tensor) -> None:
    if value is None:
        return
    value = value.to(like.dtype)
    if isinstance(like, nn.Parameter):
        setattr(module, name, nn.Parameter(value, requires_grad=like.requires_grad))
    else:
        module._buffers[name] = value


def _apply(named: dict[str, nn.Module], site: FoldSite, lf: LayerFold) -> None:
    """Fold ``lf`` into the modules of the copy (the consumer's columns, then the rows)."""
    removed = lf.removed
    if not removed:
        return
    keep = torch.tensor([j for j in range(lf.n_neurons) if j not in set(removed)])
    consumer = named[site.consumer]
    W = consumer.weight.detach().to(torch.float64)
    W_new = W.clone()
    spatial = tuple(range(1, W.ndim - 1))  # kernel axes of a column W[:, j]
    b_add = torch.zeros(W.shape[0], dtype=torch.float64, device=W.device)
    for f in [f for c in lf.clusters for f in c.folds] + list(lf.constant):
        if f.refused:
            continue
        for k, a in zip(f.sources, f.coef, strict=True):
            W_new[:, k] += a * W[:, f.neuron]
        col = W[:, f.neuron].sum(dim=spatial) if spatial else W[:, f.neuron]
        b_add += f.intercept * col
    if consumer.bias is None:
        if bool(torch.any(b_add != 0)):
            consumer.bias = nn.Parameter(torch.zeros_like(b_add, dtype=consumer.weight.dtype))
    if consumer.bias is not None:
        _set(consumer, "bias", consumer.bias.detach().to(torch.float64) + b_add, consumer.bias)
    _set(consumer, "weight", W_new[:, keep.to(W.device)], consumer.weight)
    if isinstance(consumer, nn.Linear):
        consumer.in_features = len(keep)
    else:
        consumer.in_channels = len(keep)
    for name in (site.layer, *site.norms):
        mod = named[name]
        for attr in ("weight", "bias", "running_mean", "running_var"):
            t = getattr(mod, attr, None)
            if isinstance(t, torch.Tensor):
                _set(mod, attr, t.detach()[keep.to(t.device)].clone(), t)
        if isinstance(mod, nn.Linear):
            mod.out_features = len(keep)
        elif isinstance(mod, nn.modules.conv._ConvNd):
            mod.out_channels = len(keep)
        else:
            mod.num_features = len(keep)
