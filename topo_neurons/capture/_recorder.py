"""The forward-hook recorder: :class:`ActivationRecorder`.

The class holds the state of one recording and the hooks' life cycle (install on ``with``,
remove on exit, the model's keyword mask); the set-up of the targets is :mod:`._targets`, what
a hook keeps and how the records are read back is :mod:`._records`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import torch
from torch import nn

from .._options import check_choice
from ._checks import select_columns
from ._layers import _SEQ_FIRST_TYPES, POINTS, POSITIONS, _display, _Target
from ._naming import NeuronIndex
from ._records import (
    _UNREAD,
    FewExamplesWarning,
    _check_mask,
    layer_mask,
    mask_from_kwargs,
    output_rows,
    per_call_key,
    stack_records,
    warn_few_examples,
)
from ._sampling import AllNeurons, SamplingStrategy
from ._targets import force_eager, unwrap_compiled
from ._trace_cache import cached_targets

__all__ = ["ActivationRecorder", "FewExamplesWarning"]


class ActivationRecorder:
    """Record the activations of a model's neurons while it runs (a context manager).

    Inside ``with rec:`` forward hooks on the chosen layers store each layer's neurons: by
    default the values *after* the layer's activation (what the next layer sees), one row per
    example. After the forward, :meth:`activations` returns the sampled neurons of all layers
    side by side, with gradient to the model unless ``detach=True``. Entering the context starts
    a fresh recording; the hooks are removed on exit, also when the block raises.

    Parameters
    ----------
    model : torch.nn.Module
        The network.
    layers : None, str, nn.Module, or sequence of str / nn.Module, default None
        Which layers to record. ``None``: every leaf module with parameters of its own
        (``Linear``, ``Conv*``, …) that the forward calls, except normalisation layers
        (``BatchNorm*``, ``InstanceNorm*``, ``LayerNorm``, ``GroupNorm``, ``RMSNorm``): a
        ``BatchNorm`` after a ``Linear`` would only repeat the ``Linear``'s neurons as affine
        copies (correlation ±1, deaths 0); name it in ``layers=`` to record it anyway. In a
        model with attention blocks (``nn.TransformerEncoderLayer``, a Hugging Face
        ``BertLayer``, any module with an ``…Attention`` child) the default is the hidden layer
        of each block's MLP (``linear1``, ``intermediate.dense``), not every projection; where a
        block cannot be traced (ALBERT), its activation module (``…albert_layers.0.activation``),
        and a block shared by every layer is recorded call by call, one layer ``name#k`` per
        call. Modules that return tuples (``LSTM``, ``GRU``, ``RNN``, ``LSTMCell``,
        ``MultiheadAttention``) are never chosen by default (a warning names the recurrent
        ones). Names are those of ``model.named_modules()``; ``"name#k"`` is call ``k`` (from
        0) of a module called several times per forward; an unknown name or module raises
        ``ValueError`` listing the valid names. Layers are always ordered by their first call
        in the forward, and the last one called is the *output layer* (kept whole by the
        sampling strategies).
    sampling : SamplingStrategy, default AllNeurons()
        Which neurons of each layer become columns (see :class:`ImportanceSampling`,
        :class:`RandomSampling`, :class:`FixedSelection`).
    detach : bool, default False
        Store detached outputs (no autograd graph is kept: for analysis, not for training).
    point : {"post", "pre"}, default "post"
        Which values of a layer with parameters (``Linear``, ``Conv*``, …) are its neurons.
        ``"post"``: the output of the activation that follows it, past any normalisation,
        dropout or identity modules in between (``Linear → [BatchNorm] → [Dropout] → ReLU``
        records the ``ReLU``'s output); functional activations (``F.relu(self.fc(x))``,
        ``x.relu()``) are found by tracing the forward with ``torch.fx`` and applied to the
        recorded output. A layer followed by no activation (the logits) is recorded as it is.
        Where the forward cannot be traced, the layer's own output is recorded and a warning
        names the layer (once). ``"pre"``: the layer's own output. Modules without parameters
        named in ``layers=`` (a ``ReLU``, a block) are always recorded as they are.
    positions : {"auto", "neurons", "examples"}, default "auto"
        Where the examples are. ``"neurons"``: each example's output is flattened, every unit is a
        neuron (a convolution's ``(channel, position)`` units, the paper's CNN choice).
        ``"examples"``: every position is an example (a convolution's pixels, a sequence's
        tokens) and the neurons are the channels (``Conv*``, ``BatchNorm*``: axis 1 after the
        batch) or the features (any other layer: the last axis). ``"auto"``: ``"examples"`` for
        outputs of 3 or more axes of non-convolutional layers (``(batch, seq, features)``),
        ``"neurons"`` otherwise.
    batch_dim : int or mapping of str to int, optional
        The batch axis of the layers' outputs (one for all, or per layer name). Default 0, except
        inside a torch ``Transformer*`` / ``MultiheadAttention`` module built with
        ``batch_first=False``, whose outputs are ``(seq, batch, …)``: there the batch axis must
        be given (``batch_dim=1``), otherwise ``ValueError`` — the sequence axis is never taken
        as the batch silently.
    mask : bool tensor, str, optional
        Padding mask, ``attention_mask`` style: ``True`` (or 1) keeps a position, ``False`` (0)
        drops it; shape ``(batch, positions…)`` equal to the positions of every layer recorded
        with ``positions="examples"`` (e.g. ``(batch, seq)``). A string names the model's
        keyword argument that holds it (``mask="attention_mask"`` for Hugging Face models), read
        at every call. A tensor applies to every forward until :attr:`mask` is set again. (torch's
        ``src_key_padding_mask`` is the opposite, ``True`` = padding: pass its negation.) A name
        that is not among a call's keyword arguments raises ``ValueError`` listing them.
    select_output : int, callable, or mapping of str to int / callable, optional
        For layers that return a tuple: the index of the element recorded (``0``: an LSTM's
        or attention's output), or a callable ``output → tensor``; one for all layers or per
        layer name. Without it a tuple output raises ``TypeError`` naming the layer.

    Notes
    -----
    Each call of a hooked module appends its output as new examples (rows). Several forwards
    inside one ``with`` block therefore concatenate their batches (call :meth:`clear` between
    them to start over). A module called more than once *per forward* (weight sharing) makes
    its row count differ from the other layers'; :meth:`activations` then raises a
    ``ValueError`` naming the layer and its number of calls — record it separately in that case.
    All layers must give the same number of examples (rows); otherwise :meth:`activations`
    raises a ``ValueError`` naming each layer's count.

    NaN or Inf in a recorded output raises ``ValueError`` naming the layer, the neuron and the
    example when the activations are read. Reading :meth:`activations` with no more examples than
    neurons (``m ≤ n``: every correlation structure is degenerate, deaths near 0) warns once.

    A model compiled with ``torch.compile`` is recorded through the module it wraps
    (``_orig_mod``: the layer names are the original's) and runs eagerly inside ``with``
    (``torch.compiler.set_stance("force_eager")``, restored on exit): code compiled before
    the hooks existed would not call them, since dynamo does not guard on hooks. The NaN
    error names the example (and, for sequences, its position); :func:`~topo_neurons.analyse`
    names its index in the data set and its batch.

    Inside ``with``, torch's fused fast path for ``nn.TransformerEncoderLayer`` and
    ``nn.MultiheadAttention`` is switched off (it bypasses the modules, so no hook would fire);
    it is restored on exit. A recorder built again on an unchanged model reuses the trace.

    Examples
    --------
    >>> import torch
    >>> import topo_neurons as tn
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> with tn.ActivationRecorder(model) as rec:
    ...     out = model(torch.randn(16, 4))
    >>> rec.activations().shape
    torch.Size([16, 11])
    >>> rec.neuron_index().layers
    ('0', '2')
    >>> rec.record_points
    {'0': '1 (ReLU)', '2': '2 (Linear)'}
    >>> bool((rec.per_layer()["0"] >= 0).all())  # post-ReLU values
    True
    """

    def __init__(
        self,
        model: nn.Module,
        layers: str | nn.Module | Iterable[str | nn.Module] | None = None,
        sampling: SamplingStrategy | None = None,
        *,
        detach: bool = False,
        point: str = "post",
        positions: str = "auto",
        batch_dim: int | Mapping[str, int] | None = None,
        mask: torch.Tensor | np.ndarray | str | None = None,
        select_output: int | Callable | Mapping[str, int | Callable] | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        sampling = AllNeurons() if sampling is None else sampling
        if not callable(getattr(sampling, "select", None)):
            raise TypeError(
                "sampling must be a strategy with a select(per_layer, output_layer) method "
                "(AllNeurons(), ImportanceSampling(p), RandomSampling(p, seed), "
                f"FixedSelection(indices)); got {type(sampling).__name__}"
            )
        check_choice("point", point, POINTS, what="", plural="options")
        check_choice("positions", positions, POSITIONS, what="", plural="options")
        self.model = model
        #: The module whose layers are hooked: the model, or what ``torch.compile`` wrapped.
        self._root = unwrap_compiled(model)
        self.sampling = sampling
        self.detach = bool(detach)
        self.point = point
        self.positions = positions
        self._mask = _check_mask(mask)
        self._call_mask: object = _UNREAD
        self._targets = cached_targets(self._root, layers, point, select_output, batch_dim)
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._records: dict[str, list[torch.Tensor]] = {}
        self._versions: dict[str, list[int]] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._kinds: dict[str, str] = {}
        self._where: dict[str, list[tuple[tuple[int, ...], torch.Tensor | None]]] = {}
        self._calls: dict[str, int] = {}
        self._first_example, self._batch, self._sync_free = 0, None, None  # _checks.py
        self._stance: object = None
        self._cache: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] | None = None
        self._active = False
        self._fastpath: bool | None = None
        self._warned_few = False
        self._warn_few_examples = True

    @property
    def mask(self) -> torch.Tensor | str | None:
        """The padding mask (``True`` = keep) applied to the following forwards; settable."""
        return self._mask

    @mask.setter
    def mask(self, value: torch.Tensor | np.ndarray | str | None) -> None:
        self._mask = _check_mask(value)

    @property
    def record_points(self) -> dict[str, str]:
        """For each layer, the module whose output is recorded (and the functional activation
        applied to it, if any), e.g. ``{'fc1': 'relu1 (ReLU)', 'out': 'out (Linear)'}``."""
        return {t.name: t.source for t in self._targets}

    def _hook(self, t: _Target):
        name = t.name

        def hook(module: nn.Module, inputs: object, output: object) -> None:
            k = self._calls[name] = self._calls.get(name, -1) + 1  # call k in this forward
            if t.call is not None and k != t.call:
                return
            key = per_call_key(self, name, k) if t.per_call else name
            mask = layer_mask(self._mask, self._call_mask, self._root)
            flat, shape, kind, where = output_rows(
                module, output, t, self.positions, mask, detach=self.detach
            )
            self._shapes[key] = shape
            self._kinds[key] = kind
            self._where.setdefault(key, []).append((where, mask))
            # The version counter reveals a later in-place change (e.g. ReLU(inplace=True)).
            self._records.setdefault(key, []).append(flat)
            self._versions.setdefault(key, []).append(flat._version)
            self._cache = None

        return hook

    def _model_mask_hook(self, module: nn.Module, args: object, kwargs: dict) -> None:
        self._calls = {}  # a new forward: calls of shared modules count from 0
        self._call_mask = mask_from_kwargs(self._mask, module, kwargs)

    def __enter__(self) -> ActivationRecorder:
        if self._active:
            raise RuntimeError("this ActivationRecorder is already recording (nested `with`)")
        self.clear()
        try:
            for t in self._targets:
                self._handles.append(t.hook.register_forward_hook(self._hook(t)))
            # Always installed: rec.mask may become a keyword name inside the block.
            self._handles.append(
                self._root.register_forward_pre_hook(self._model_mask_hook, with_kwargs=True)
            )
            if self._root is not self.model:
                # Code compiled without these hooks would not call them (dynamo does not
                # guard on hooks): the compiled model runs eagerly while it is recorded.
                self._stance = force_eager()
            if any(isinstance(m, _SEQ_FIRST_TYPES) for m in self.model.modules()):
                self._fastpath = torch.backends.mha.get_fastpath_enabled()
                torch.backends.mha.set_fastpath_enabled(False)
        except BaseException:
            self._remove()
            raise
        self._active = True
        return self

    def __exit__(self, *exc: object) -> None:
        self._remove()

    def _remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        if self._stance is not None:
            self._stance.__exit__(None, None, None)
            self._stance = None
        if self._fastpath is not None:
            torch.backends.mha.set_fastpath_enabled(self._fastpath)
            self._fastpath = None
        self._active = False

    @property
    def recording(self) -> bool:
        """Whether the hooks are installed (inside the ``with`` block)."""
        return self._active

    def clear(self) -> None:
        """Forget the recorded activations (the hooks stay installed inside ``with``)."""
        self._records = {}
        self._versions = {}
        self._shapes = {}
        self._kinds = {}
        self._where = {}
        self._calls = {}
        self._call_mask = _UNREAD
        self._cache = None

    def _data_at(self, first_example: int, batch: int | None) -> None:
        """Name errors by the data set: the next recorded example is ``first_example`` of
        batch ``batch`` (set by :func:`~topo_neurons.analyse` before each batch)."""
        self._first_example, self._batch = int(first_example), batch

    def _recorded_examples(self) -> int:
        """Examples (batch rows, not positions) recorded so far by the first layer."""
        parts = next(iter(self._where.values()), [])
        return sum(where[0] for where, _ in parts)

    # ---------------------------------------------------------------- results
    def _compute(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """``(chosen indices, sampled activations)`` per layer, cached until the next record."""
        if self._cache is None:
            full = stack_records(
                self._records,
                self._versions,
                self._shapes,
                self._targets,
                self._where,
                self._first_example,
                self._batch,
                self._sync_free,
            )
            self._cache = select_columns(self.sampling, full, self._sync_free)
        return self._cache

    def per_layer(self) -> dict[str, torch.Tensor]:
        """Sampled activations of each recorded layer.

        Returns
        -------
        dict of str to torch.Tensor, each of shape (m, n_layer_sampled)
            In layer (forward-call) order; grad flows to the model unless ``detach=True``.
        """
        return dict(self._compute()[1])

    def activations(self) -> torch.Tensor:
        """The sampled activations of all recorded layers side by side.

        Returns
        -------
        torch.Tensor, shape (m, n_sampled)
            Columns grouped by layer in layer order (see :meth:`neuron_index`); grad flows to
            the model unless ``detach=True``.

        Raises
        ------
        RuntimeError
            Nothing was recorded.
        ValueError
            NaN/Inf in a layer's output (layer, example and neuron named), or layers with
            different numbers of examples.

        Warns
        -----
        FewExamplesWarning
            Once per recorder, when ``m ≤ n`` (no more examples than neurons).
        """
        parts = list(self._compute()[1].values())
        A = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        m, n = A.shape
        if m <= n and n > 1 and self._warn_few_examples and not self._warned_few:
            self._warned_few = True
            warn_few_examples(m, n)
        return A

    def selection(self) -> dict[str, torch.Tensor]:
        """The neuron indices kept in each layer (pass to :class:`FixedSelection` to reuse).

        Returns
        -------
        dict of str to torch.LongTensor, each of shape (n_layer_sampled,)
        """
        return dict(self._compute()[0])

    def neuron_index(self) -> NeuronIndex:
        """Which layer and neuron each column of :meth:`activations` is.

        Returns
        -------
        NeuronIndex
        """
        sel, _ = self._compute()
        names = tuple(sel)
        layer = np.concatenate(
            [np.full(sel[n].numel(), i, dtype=np.int64) for i, n in enumerate(names)]
        )
        neuron = np.concatenate([sel[n].cpu().numpy().astype(np.int64) for n in names])
        sizes = {n: int(math.prod(self._shapes[n])) for n in names}
        shapes = {n: self._shapes[n] for n in names}
        kinds = {n: self._kinds[n] for n in names}
        return NeuronIndex(names, layer, neuron, sizes, shapes, kinds)

    def __repr__(self) -> str:
        names = [_display(t.name) for t in self._targets]
        return (
            f"ActivationRecorder(layers={names}, sampling={self.sampling!r}, "
            f"point={self.point!r}, positions={self.positions!r})"
        )
