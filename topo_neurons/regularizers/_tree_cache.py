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
from ._deaths import _edge_deaths, _extrema, sync_free

#: ``Tensor.item`` as torch defines it: the one sanctioned read of a host (CPU) tensor on the
#: device path (see ``_PendingFlag``), immune to a test that patches ``Tensor.item`` to catch
#: synchronisations.
_HOST_ITEM = torch.Tensor.item


def _check_refresh_every(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(
            f"refresh_every={k!r} is not valid; it must be an int ≥ 1 (1: a new tree every call)"
        )
    return k


def _selection_key(selection: Selection, device: bool = False) -> tuple:
    """A comparable fingerprint of which neurons the columns are (layer names and indices).

    On the device path (``device``) only the names and sizes, known on the host: the indices
    themselves are compared on the device (:func:`_selection_indices`, the hub guard's flag).
    """
    if selection is None:
        return ()
    if device:
        items = selection.items() if isinstance(selection, Mapping) else [("", selection)]
        return tuple((str(name), torch.as_tensor(idx).numel(), "device") for name, idx in items)
    if isinstance(selection, Mapping):
        return tuple(
            (str(name), tuple(torch.as_tensor(idx).reshape(-1).tolist()))
            for name, idx in selection.items()
        )
    return (tuple(torch.as_tensor(selection).reshape(-1).tolist()),)


def _selection_indices(selection: Selection, device: torch.device) -> torch.Tensor | None:
    """Every index of ``selection``, concatenated on ``device`` (``None`` without one)."""
    if selection is None:
        return None
    parts = selection.values() if isinstance(selection, Mapping) else [selection]
    return torch.cat([torch.as_tensor(i, device=device).reshape(-1) for i in parts])


#: Share of the tree's edges that neurons turned constant since the search may hold beyond one
#: edge each before a cached tree is searched again (see ``_dead_hubs``).
_DEAD_EDGE_SLACK = 0.01


@torch.no_grad()
def _dead_hub_excess(
    const_now: torch.Tensor, edges: torch.Tensor, const_before: torch.Tensor
) -> torch.Tensor:
    """``_dead_hubs`` as a boolean tensor on the device (no synchronisation)."""
    died = const_now & ~const_before
    # Not bincount: on a GPU it reads the largest index back to size its output.
    ends = edges.reshape(-1)
    degree = torch.zeros(died.numel(), dtype=torch.long, device=died.device)
    degree.index_add_(0, ends, torch.ones_like(ends))
    excess = ((degree - 1).clamp_(min=0) * died).sum()
    return excess > _DEAD_EDGE_SLACK * edges.shape[0]


class _PendingFlag:
    """A device boolean read later, without waiting: the device path's hub guard.

    On a GPU the flag is copied to pinned host memory without blocking and an event is
    recorded; :meth:`poll` reads it only once the event has completed (``None`` before). On
    the CPU it is ready at once.
    """

    def __init__(self, flag: torch.Tensor) -> None:
        if flag.device.type == "cuda":
            self.host = torch.empty((), dtype=torch.bool, pin_memory=True)
            self.host.copy_(flag, non_blocking=True)
            self.event: torch.cuda.Event | None = torch.cuda.Event()
            self.event.record()
        else:
            self.host, self.event = flag, None

    def poll(self) -> bool | None:
        if self.event is not None and not self.event.query():
            return None
        return bool(_HOST_ITEM(self.host))


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
        #: Tree edges that changed at the last search (see :attr:`changed_edges`).
        self._changed: torch.Tensor | int | None = None
        #: The device path's hub-guard flag of the last cached call (see ``_PendingFlag``).
        self._pending: _PendingFlag | None = None

    def refresh(self) -> None:
        """Drop the cached tree: the next training call searches a new one."""
        self._edges, self._key, self._age = None, (), 0
        self._changed, self._pending = None, None

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
        device = isinstance(A, torch.Tensor) and sync_free(self.backend, A)
        A = _activations(A, type(self).__name__, self.distributed, sync_free=device)
        key = (A.shape[1], _selection_key(selection, device))
        extrema = _extrema(A)
        const = extrema[0] == extrema[1]
        cached = self._edges
        if cached is not None and key == self._key and self._age < self.refresh_every:
            if cached.device != A.device:
                cached = self._edges = cached.to(A.device)
            if device:
                # The hub guard without waiting: this call's flag if it is ready already (the
                # CPU), else the last call's once it is (a GPU: usually one call later).
                before = self._const.to(A.device)
                flag = _dead_hub_excess(const, cached, before)
                chosen = _selection_indices(selection, A.device)
                if chosen is not None:  # other neurons (same sizes): a new tree, as a hub
                    old = getattr(self, "_chosen", None)
                    flag = flag | (True if old is None else (chosen != old.to(A.device)).any())
                earlier, self._pending = self._pending, _PendingFlag(flag)
                hubs = self._pending.poll()
                if hubs is None and earlier is not None:
                    hubs = earlier.poll()
            else:
                hubs = _dead_hubs(const, cached, self._const.to(A.device))
            if not hubs:
                self._age += 1
                # The cached edges were validated when found: no check (and no device sync).
                d, _ = _edge_deaths(A, self.kind, self.backend, cached, extrema)
                return self._reduce(d)
        d, edges = _edge_deaths(A, self.kind, self.backend, None, extrema)
        if cached is not None and key == self._key:
            n = A.shape[1]
            old = cached.to(edges.device).sort(dim=1).values  # (i, j) with i < j, as edges
            new_codes = edges[:, 0] * n + edges[:, 1]
            old_codes = (old[:, 0] * n + old[:, 1]).sort().values
            # Membership by binary search (torch.isin may size its work from the data on a
            # GPU); a device tensor, read (one synchronisation) only when someone asks.
            pos = torch.searchsorted(old_codes, new_codes).clamp_(max=old_codes.numel() - 1)
            changed = (old_codes[pos] != new_codes).sum()
            if device and selection is not None:
                # Same sizes, maybe other neurons (compared on the device): -1 reads as None.
                chosen = _selection_indices(selection, A.device)
                before = getattr(self, "_chosen", None)
                if before is None or before.shape != chosen.shape:
                    changed = None
                else:
                    same = (chosen == before.to(A.device)).all()
                    changed = torch.where(same, changed, -1)
            self._changed = changed
        else:
            self._changed = None
        self._edges, self._key, self._age = edges, key, 1
        self._chosen = _selection_indices(selection, A.device) if device else None
        self._const = const
        self._pending = None
        return self._reduce(d)

    @property
    def changed_edges(self) -> int | None:
        """At the last tree search, how many edges of the new tree were not in the cached one
        (``None`` before a second search or after a change of neurons). Read on request: on a
        GPU this is the one value of the cache that waits for the device."""
        c = None if self._changed is None else int(self._changed)
        return None if c is None or c < 0 else c

    @changed_edges.setter
    def changed_edges(self, value: int | None) -> None:
        self._changed = value

    #: Name of the functional form, in the messages of invalid activations.
    _functional = ""

    def _loss(self, A: torch.Tensor) -> torch.Tensor:
        """The exact loss: the functional form, on a freshly searched tree."""
        device = isinstance(A, torch.Tensor) and sync_free(self.backend, A)
        A = _activations(A, self._functional, self.distributed, sync_free=device)
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
        self._pending = None

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
