"""Capture the activations of a torch model's neurons with forward hooks, and sample them.

An :class:`ActivationRecorder` hooks a model's layers while it is used as a context manager and
turns what they output into an activation matrix ``A`` of shape ``(m examples, n neurons)``.
A layer's neurons are, by default, its values after its activation (``point="post"``: the
activation module or function that follows it is found by tracing the forward with
``torch.fx``). A ``Linear`` layer's neurons are its output features; a convolution's are its
``(channel, position)`` units in row-major order, or its channels with every pixel an example
(``positions="examples"``); a sequence layer's ``(batch, seq, features)`` output gives one
example per token (padded tokens dropped with ``mask=``). In models with attention blocks the
default layers are each block's MLP hidden layer. A sampling strategy picks which neurons of
each layer become columns of ``A``:

* :class:`AllNeurons` — every neuron;
* :class:`ImportanceSampling` — the paper's: per hidden layer the ``⌊p·n_layer⌋`` neurons of
  largest mean ``|activation|`` over the batch, the output layer whole;
* :class:`RandomSampling` — the same counts, chosen uniformly at random (seeded);
* :class:`FixedSelection` — a selection given once and reused (e.g. for many batches).

This package knows nothing of correlation or persistence (one direction of imports).

One module per part: ``_sampling`` (the strategies), ``_naming`` (neuron labels,
:class:`NeuronIndex`), ``_layers`` (which modules are layers: types and roles), ``_trace`` (the
activation after each layer, traced with ``torch.fx``), ``_targets`` (from ``layers=`` to hook
targets and batch axes), ``_records`` (what a hook keeps, the mask, reading the records back),
``_recorder`` (:class:`ActivationRecorder`: the recording state and the hooks' life cycle) and
``_trace_cache`` (what the set-up found, kept per model: a second recorder skips the trace;
:func:`clear_trace_cache`).
"""

from ._naming import NeuronIndex
from ._recorder import ActivationRecorder, FewExamplesWarning
from ._sampling import (
    AllNeurons,
    FixedSelection,
    ImportanceSampling,
    RandomSampling,
    SamplingStrategy,
)
from ._trace_cache import clear_trace_cache

__all__ = [
    "ActivationRecorder",
    "AllNeurons",
    "FewExamplesWarning",
    "FixedSelection",
    "ImportanceSampling",
    "NeuronIndex",
    "RandomSampling",
    "SamplingStrategy",
    "clear_trace_cache",
]
