"""The ``refresh_every`` cache of T1 and T2: search the MST every k-th training call.

:class:`_TreeLoss` is the base of :class:`~topo_neurons.TopologicalRedundancy` and
:class:`~topo_neurons.DeathSpread`: it keeps the tree of the last search, decides when to search
again (age, a change of the neurons, constant neurons holding cached edges) and stores the cache
in ``state_dict()``. A subclass gives the exact loss (``_loss``) and the loss of given deaths
(``_reduce``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ._base import Distributed, Kind, Selection, _activations, _Loss
from ._deaths import _edge_deaths, _extrema


def _check_refresh_every(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(
            f"refresh_every={k!r} is not valid; it must be an int ≥ 1 (1: a new tree every call)"
        )
    return k


def _selection_key(selection: Selection) -> tuple:
    """A comparable fingerprint of which neurons the columns are (layer names and indices)."""
    if selection is None:
        return ()
    if isinstance(selection, Mapping):
        return tuple(
            (str(name), tuple(torch.as_tensor(idx).reshape(-1).tolist()))
            for name, idx in selection.items()
        )
    return (tuple(torch.as_tensor(selection).reshape(-1).tolist()),)


#: Share of the tree's edges that neurons turned constant since the search may hold beyond one
#: edge each before a cached tree is searched again (see ``_dead_hubs``).
_DEAD_EDGE_SLACK = 0.01


@torch.no_grad()
def _dead_hubs(const_now: torch.Tensor, edges: torch.Tensor, const_before: torch.Tensor) -> bool:
    """Whether neurons that turned constant since the search hold too many cached edges.

    A constant neuron (a dead ReLU) has ``d = 1`` with every neuron, so a minimum spanning tree
    found now would attach it by a single edge. A cached tree may hold it by many: a hub of the
    cached tree that becomes constant turns all its edges' terms to ``1 − d = 0`` at once,
    which training can exploit (it drives hubs dead). When the neurons that are constant now
    but were not at the search hold, beyond one edge each, more than
    ``_DEAD_EDGE_SLACK · (n − 1)`` edges of the cached tree, the tree is searched again.
    """
    died = const_now & ~const_before
    degree = torch.bincount(edges.reshape(-1), minlength=died.numel())
    excess = (degree[died] - 1).clamp_(min=0).sum()
    return int(excess) > _DEAD_EDGE_SLACK * edges.shape[0]


class _TreeLoss(_Loss):
    """Shared by T1 and T2: the optional cache of the MST edges (``refresh_every``).

    In training mode with ``refresh_every = k > 1``, the tree is searched on the first call and
    then every ``k``-th call; the calls in between evaluate the loss on the cached edges. The
    tree is also searched again whenever the neurons change: another number of columns, or
    another ``selection`` passed to :meth:`forward`, or constant neurons holding more edges of
    the cached tree than a fresh tree would give them (see ``_dead_hubs``). In eval mode the
    loss is always exact and the cache is left alone. The cache survives ``state_dict()`` /
    ``load_state_dict()``.
    """

    def __init__(
        self, *, kind: Kind, backend: str, distributed: Distributed, refresh_every: int
    ) -> None:
        super().__init__(kind=kind, backend=backend, distributed=distributed)
        self.refresh_every = _check_refresh_every(refresh_every)
        self._edges: torch.Tensor | None = None
        self._const = torch.zeros(0, dtype=torch.bool)  # constant neurons at the search
        self._key: tuple = ()
        self._age = 0
        #: Tree edges that changed at the last search (``None`` before a second search or
        #: after a change of neurons), e.g. to choose ``refresh_every``.
        self.changed_edges: int | None = None

    def refresh(self) -> None:
        """Drop the cached tree: the next training call searches a new one."""
        self._edges, self._key, self._age = None, (), 0
        self.changed_edges = None

    def forward(self, A: torch.Tensor, *, selection: Selection = None) -> torch.Tensor:
        """The loss of activations ``A`` of shape (m, n); a scalar tensor.

        Parameters
        ----------
        A : torch.Tensor, shape (m, n)
        selection : mapping of str to index tensor, or index tensor, optional
            Which neurons the columns of ``A`` are (e.g. ``ActivationRecorder.selection()``);
            with ``refresh_every > 1`` a different selection than at the cached tree's search
            makes this call search a new tree. Ignored when ``refresh_every == 1``.
        """
        if self.refresh_every == 1 or not self.training:
            return self._loss(A)
        A = _activations(A, type(self).__name__, self.distributed)
        key = (A.shape[1], _selection_key(selection))
        extrema = _extrema(A)
        const = extrema[0] == extrema[1]
        cached = self._edges
        if cached is not None and key == self._key and self._age < self.refresh_every:
            if cached.device != A.device:
                cached = self._edges = cached.to(A.device)
            if not _dead_hubs(const, cached, self._const.to(A.device)):
                self._age += 1
                # The cached edges were validated when found: no check (and no device sync).
                d, _ = _edge_deaths(A, self.kind, self.backend, cached, extrema)
                return self._reduce(d)
        d, edges = _edge_deaths(A, self.kind, self.backend, None, extrema)
        if cached is not None and key == self._key:
            n = A.shape[1]
            old = cached.to(edges.device).sort(dim=1).values  # (i, j) with i < j, as edges
            new_codes = edges[:, 0] * n + edges[:, 1]
            old_codes = old[:, 0] * n + old[:, 1]
            self.changed_edges = int((~torch.isin(new_codes, old_codes)).sum())
        else:
            self.changed_edges = None
        self._edges, self._key, self._age = edges, key, 1
        self._const = const
        return self._reduce(d)

    #: Name of the functional form, in the messages of invalid activations.
    _functional = ""

    def _loss(self, A: torch.Tensor) -> torch.Tensor:
        """The exact loss: the functional form, on a freshly searched tree."""
        A = _activations(A, self._functional, self.distributed)
        d, _ = _edge_deaths(A, self.kind, self.backend, None)
        return self._reduce(d)

    def _reduce(self, d: torch.Tensor) -> torch.Tensor:
        """The loss of the deaths ``d``."""
        raise NotImplementedError

    def _options(self) -> str:
        """The subclass's own options, for :meth:`extra_repr`."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        r = f", refresh_every={self.refresh_every}" if self.refresh_every != 1 else ""
        return self._options() + r

    def get_extra_state(self) -> dict[str, object]:
        edges = None if self._edges is None else self._edges.detach().cpu()
        return {"edges": edges, "key": self._key, "age": self._age, "const": self._const.cpu()}

    def set_extra_state(self, state: dict[str, object]) -> None:
        keys = {"edges", "key", "age", "const"}
        if not isinstance(state, Mapping) or set(state) != keys:
            raise ValueError(
                f"{type(self).__name__}: not a cached-tree state (expected keys {sorted(keys)}); "
                f"got {type(state).__name__}"
                + (f" with keys {sorted(state)}" if isinstance(state, Mapping) else "")
            )
        edges = state["edges"]
        self._edges = None if edges is None else torch.as_tensor(edges, dtype=torch.long)
        self._key, self._age = tuple(state["key"]), int(state["age"])
        self._const = torch.as_tensor(state["const"], dtype=torch.bool)

    def _load_from_state_dict(  # type: ignore[override]
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ) -> None:
        # A checkpoint written before ``refresh_every`` existed has no cached tree: load it with
        # strict=True as before, and start without a cache (the next call searches the tree).
        key = prefix + "_extra_state"
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        if key not in state_dict:
            if key in missing_keys:
                missing_keys.remove(key)
            self.refresh()
