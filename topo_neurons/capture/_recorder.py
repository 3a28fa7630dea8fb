"""The forward-hook recorder: :class:`ActivationRecorder`."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping

import numpy as np
import torch
import torch.distributed
import torch.fx
from torch import nn

from .._finite import check_finite_activations
from .._options import check_choice
from ._layers import (
    _CHANNEL_TYPES,
    _SEQ_FIRST_TYPES,
    _WARNED,
    POINTS,
    POSITIONS,
    _batch_axis_unknown,
    _block_layers,
    _check_mask,
    _default_layers,
    _display,
    _is_neuron_layer,
    _PostResolver,
    _Target,
    _Unknown,
)
from ._naming import NeuronIndex
from ._sampling import AllNeurons, SamplingStrategy

__all__ = ["ActivationRecorder"]


class FewExamplesWarning(UserWarning):
    """No more examples than neurons (``m ≤ n``): the correlations are degenerate.

    ``n`` columns over ``m`` examples span at most ``m − 1`` dimensions, so the deaths are biased
    towards 0 (all near 0, and T1 near its maximum, when ``m ≪ n``). The recorder,
    :func:`~topo_neurons.analyse` and :class:`~topo_neurons.Regularized` warn with this category;
    filter it where a small batch is deliberate (the paper trains 1010 neurons on batches of 256)::

        warnings.simplefilter("ignore", tn.FewExamplesWarning)
    """


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
        of each block's MLP (``linear1``, ``intermediate.dense``), not every projection. Names
        are those of ``model.named_modules()``; an unknown name or module raises ``ValueError``
        listing the valid names. Layers are always ordered by their first call in the forward,
        and the last one called is the *output layer* (kept whole by the sampling strategies).
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
        ``src_key_padding_mask`` is the opposite, ``True`` = padding: pass its negation.)

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

    Inside ``with``, torch's fused fast path for ``nn.TransformerEncoderLayer`` and
    ``nn.MultiheadAttention`` is switched off (it bypasses the modules, so no hook would fire);
    it is restored on exit.

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
        self.sampling = sampling
        self.detach = bool(detach)
        self.point = point
        self.positions = positions
        self._mask = _check_mask(mask)
        self._call_mask: torch.Tensor | None = None
        self._targets = self._resolve(model, layers, point)
        self._set_batch_dims(batch_dim)
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._records: dict[str, list[torch.Tensor]] = {}
        self._versions: dict[str, list[int]] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._kinds: dict[str, str] = {}
        self._cache: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]] | None = None
        self._active = False
        self._fastpath: bool | None = None
        self._warned_few = False
        self._warn_few_examples = True

    # ---------------------------------------------------------------- set-up
    def _resolve(
        self,
        model: nn.Module,
        layers: str | nn.Module | Iterable[str | nn.Module] | None,
        point: str,
    ) -> list[_Target]:
        named = dict(model.named_modules())
        if layers is None:
            resolver = _PostResolver(model, [m for _, m in _default_layers(model)])
            chosen = _block_layers(model, resolver) or _default_layers(model)
            if not chosen:
                raise ValueError(
                    f"{type(model).__name__} has no leaf module with parameters to record; "
                    "pass layers=[...] with module names"
                )
        else:
            chosen = self._named_layers(model, named, layers)
            resolver = _PostResolver(model, [m for _, m in chosen])
        targets = []
        unseen: list[tuple[str, nn.Module, str]] = []
        for name, mod in chosen:
            t = _Target(name, mod, name, mod, channels=isinstance(mod, _CHANNEL_TYPES))
            t.source = f"{_display(name)} ({type(mod).__name__})"
            if point == "post" and _is_neuron_layer(mod):
                found = resolver.resolve(name)
                if isinstance(found, _Unknown):
                    unseen.append((name, mod, found.reason))
                elif found is not None:
                    hook_name, fn = found
                    t.hook_name, t.hook, t.fn = hook_name, named[hook_name], fn
                    what = type(t.hook).__name__
                    if fn is None:
                        t.source = f"{_display(hook_name)} ({what})"
                    else:
                        fname = getattr(fn, "__name__", type(fn).__name__)
                        t.source = f"{_display(hook_name)} ({what}) → {fname}"
            targets.append(t)
        self._warn_fallback(model, unseen)
        return targets

    @staticmethod
    def _warn_fallback(model: nn.Module, unseen: list[tuple[str, nn.Module, str]]) -> None:
        """One warning naming every layer recorded before its activation (once per layer)."""
        seen = _WARNED.setdefault(model, set())
        new = [(n, m, r) for n, m, r in unseen if n not in seen]
        if not new:
            return
        seen.update(n for n, _, _ in new)
        names = ", ".join(f"{_display(n)!r} ({type(m).__name__})" for n, m, _ in new)
        reasons = "; ".join(dict.fromkeys(r for _, _, r in new))
        which = "layer" if len(new) == 1 else "layers"
        warnings.warn(
            f"point='post': cannot see which activation follows {which} {names} because "
            f"{reasons}; recording the layer output before any activation. Name the activation "
            "modules in layers=, or pass point='pre' to record pre-activations on purpose.",
            UserWarning,
            stacklevel=4,
        )

    @staticmethod
    def _named_layers(
        model: nn.Module,
        named: dict[str, nn.Module],
        layers: str | nn.Module | Iterable[str | nn.Module],
    ) -> list[tuple[str, nn.Module]]:
        by_id = {id(m): n for n, m in named.items()}
        items = [layers] if isinstance(layers, (str, nn.Module)) else list(layers)
        if not items:
            raise ValueError("layers=[] selects nothing; pass None for every parametrised layer")
        valid = [n for n in named if n]
        shown = ", ".join(repr(n) for n in valid[:30]) + (" …" if len(valid) > 30 else "")
        out: list[tuple[str, nn.Module]] = []
        for item in items:
            if isinstance(item, str):
                if item not in named:
                    raise ValueError(
                        f"layer {item!r} is not a module of {type(model).__name__}; "
                        f"valid names are: {shown}"
                    )
                name = item
            elif isinstance(item, nn.Module):
                if id(item) not in by_id:
                    raise ValueError(
                        f"module {type(item).__name__} is not part of {type(model).__name__}; "
                        f"valid names are: {shown}"
                    )
                name = by_id[id(item)]
            else:
                raise TypeError(
                    f"layers must hold module names (str) or modules; got {type(item).__name__}"
                )
            if any(name == n for n, _ in out):
                raise ValueError(f"layer {_display(name)!r} is listed twice in layers")
            out.append((name, named[name]))
        return out

    def _set_batch_dims(self, batch_dim: int | Mapping[str, int] | None) -> None:
        names = [t.name for t in self._targets]
        per: Mapping[str, int] = {}
        default: int | None = None
        if isinstance(batch_dim, Mapping):
            unknown = [k for k in batch_dim if k not in names]
            if unknown:
                raise ValueError(
                    f"batch_dim names layers {unknown} that are not recorded; recorded: {names}"
                )
            per = batch_dim
        elif batch_dim is not None:
            default = batch_dim
        for t in self._targets:
            b = per.get(t.name, default)
            if b is None:
                where = _batch_axis_unknown(self.model, t.hook_name)
                if where is not None:
                    raise ValueError(
                        f"layer {_display(t.name)!r} is inside {where}: its outputs are "
                        "(seq, batch, ...), so the batch axis cannot be taken as axis 0; pass "
                        "batch_dim=1 (or batch_dim={layer: axis}), or build the model with "
                        "batch_first=True"
                    )
                b = 0
            if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 0:
                raise ValueError(
                    f"batch_dim for layer {_display(t.name)!r} must be an axis index ≥ 0; got {b!r}"
                )
            t.batch_dim = int(b)

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

    def _mode(self, t: _Target, ndim: int) -> str:
        if self.positions != "auto":
            return self.positions
        return "examples" if ndim >= 3 and not t.channels else "neurons"

    def _hook(self, t: _Target):
        name = t.name

        def hook(module: nn.Module, inputs: object, output: object) -> None:
            if not isinstance(output, torch.Tensor):
                raise TypeError(
                    f"layer {_display(name)!r} ({type(module).__name__}) returned "
                    f"{type(output).__name__}, not a tensor; record a module that outputs a "
                    "tensor of shape (batch, ...)"
                )
            if output.ndim < 2 or t.batch_dim >= output.ndim:
                raise ValueError(
                    f"layer {_display(name)!r} output has shape {tuple(output.shape)}; "
                    f"expected (batch, features, ...) with the batch on axis {t.batch_dim}"
                )
            out = output.detach() if self.detach else output
            if t.fn is not None:
                out = t.fn(out)
            if t.batch_dim:
                out = out.movedim(t.batch_dim, 0)
            mode = self._mode(t, out.ndim)
            if mode == "neurons" or out.ndim == 2:
                self._shapes[name] = tuple(out.shape[1:])
                self._kinds[name] = "units" if t.channels and out.ndim > 2 else "features"
                positions = tuple(out.shape[:1])
                flat = out.reshape(out.shape[0], -1)
            else:
                if t.channels:
                    out = out.movedim(1, -1)
                self._shapes[name] = (out.shape[-1],)
                self._kinds[name] = "channels" if t.channels else "features"
                positions = tuple(out.shape[:-1])
                flat = out.reshape(-1, out.shape[-1])
            mask = self._call_mask if isinstance(self._mask, str) else self._mask
            if mask is not None:
                if tuple(mask.shape) != positions:
                    raise ValueError(
                        f"mask of shape {tuple(mask.shape)} does not match the positions "
                        f"{positions} of layer {_display(name)!r} (output "
                        f"{tuple(output.shape)}, batch axis {t.batch_dim}, "
                        f"{mode}); the mask needs one entry per example position"
                    )
                flat = flat[mask.reshape(-1).to(flat.device)]
            # The version counter reveals a later in-place change (e.g. ReLU(inplace=True)).
            self._records.setdefault(name, []).append(flat)
            self._versions.setdefault(name, []).append(flat._version)
            self._cache = None

        return hook

    def _model_mask_hook(self, module: nn.Module, args: object, kwargs: dict) -> None:
        value = kwargs.get(self._mask) if isinstance(self._mask, str) else None
        self._call_mask = None if value is None else _check_mask(value)

    def __enter__(self) -> ActivationRecorder:
        if self._active:
            raise RuntimeError("this ActivationRecorder is already recording (nested `with`)")
        self.clear()
        try:
            for t in self._targets:
                self._handles.append(t.hook.register_forward_hook(self._hook(t)))
            # Always installed: rec.mask may become a keyword name inside the block.
            self._handles.append(
                self.model.register_forward_pre_hook(self._model_mask_hook, with_kwargs=True)
            )
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
        self._call_mask = None
        self._cache = None

    # ---------------------------------------------------------------- results
    def _full(self) -> dict[str, torch.Tensor]:
        """Full per-layer activations, in forward-call order, validated."""
        if not self._records:
            names = [_display(t.name) for t in self._targets]
            raise RuntimeError(
                "nothing was recorded: run the model inside `with recorder:` before reading "
                f"activations (hooked layers: {names[:10]}{' …' if len(names) > 10 else ''})"
            )
        for name, parts in self._records.items():
            for part, version in zip(parts, self._versions[name]):
                if part._version != version:
                    raise ValueError(
                        f"layer {_display(name)!r} output was modified in place after it was "
                        "recorded (e.g. by a following ReLU(inplace=True)), so its recorded "
                        "values are not its output; use point='post' (records the activation's "
                        "output), record the module that modifies it instead, or construct "
                        "that module with inplace=False"
                    )
        full = {
            name: (parts[0] if len(parts) == 1 else torch.cat(parts, dim=0))
            for name, parts in self._records.items()
        }
        rows = {name: a.shape[0] for name, a in full.items()}
        if len(set(rows.values())) > 1:
            calls = {_display(n): len(p) for n, p in self._records.items()}
            shown = {_display(n): r for n, r in rows.items()}
            if len(set(calls.values())) > 1:
                raise ValueError(
                    f"recorded layers have different numbers of examples {shown} (calls per "
                    f"layer: {calls}); a module called more than once per forward (weight "
                    "sharing) cannot be recorded with the others: record it in its own "
                    "ActivationRecorder"
                )
            shapes = {_display(n): self._shapes[n] for n in rows}
            raise ValueError(
                f"recorded layers have different numbers of examples {shown} (neurons per "
                f"layer: {shapes}); every layer must give one row per example: record layers "
                "with the same positions (e.g. the tokens of a sequence model, not its pooled "
                "output), or set positions=, batch_dim= or mask= so that they agree"
            )
        for name, a in full.items():
            label, shape = _display(name), self._shapes[name]
            check_finite_activations(
                a,
                lambda ex, neuron, value, _, label=label, shape=shape: (
                    f"layer {label!r} output {value} at example {ex}, neuron {neuron} "
                    f"(neurons of shape {shape}); NaN/Inf activations are an error"
                ),
                layer=label,
            )
        return full

    def _compute(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        if self._cache is not None:
            return self._cache
        full = self._full()
        output_layer = next(reversed(full))
        if type(self.sampling) is AllNeurons:  # fast path: nothing to select or check
            self._cache = (self.sampling.select(full, output_layer), full)
            return self._cache
        sel = self.sampling.select(full, output_layer)
        if not isinstance(sel, Mapping) or set(sel) != set(full):
            got = list(sel) if isinstance(sel, Mapping) else type(sel).__name__
            raise ValueError(
                f"{self.sampling!r}.select returned indices for {got}; expected exactly the "
                f"recorded layers {list(full)}"
            )
        chosen: dict[str, torch.Tensor] = {}
        sampled = {}
        for name, a in full.items():
            idx = torch.as_tensor(sel[name], dtype=torch.long, device=a.device)
            if idx.ndim != 1 or idx.numel() == 0:
                raise ValueError(
                    f"{self.sampling!r} selected {tuple(idx.shape)} indices for layer "
                    f"{_display(name)!r}; expected a non-empty 1-D index tensor"
                )
            if int(idx.min()) < 0 or int(idx.max()) >= a.shape[1]:
                raise ValueError(
                    f"{self.sampling!r} selected an index outside [0, {a.shape[1]}) for layer "
                    f"{_display(name)!r}"
                )
            chosen[name] = idx
            sampled[name] = a if idx.numel() == a.shape[1] and _is_arange(idx) else a[:, idx]
        self._cache = (chosen, sampled)
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
            warnings.warn(
                f"{m} examples for {n} neurons (m ≤ n): the {n} columns span at most m − 1 = "
                f"{m - 1} dimensions, so their correlations are degenerate and the deaths biased "
                "towards 0 (all near 0, and T1 near its maximum, when m ≪ n). Record more "
                "examples than neurons: a larger batch, fewer or sampled neurons, "
                "positions='examples'; in a training loop DataLoader(..., drop_last=True) "
                "avoids a short last batch.",
                FewExamplesWarning,
                stacklevel=2,
            )
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


def _is_arange(idx: torch.Tensor) -> bool:
    return bool((idx == torch.arange(idx.numel(), device=idx.device)).all())
