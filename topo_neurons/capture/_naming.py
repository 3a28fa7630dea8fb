"""Names of the recorded neurons: ``layer[index]`` labels and :class:`NeuronIndex`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["NeuronIndex"]

_AXES = ("z", "y", "x")


def _label(layer: str, i: int, shape: tuple[int, ...], kind: str | None) -> str:
    """Readable name of neuron ``i`` of ``layer`` (see :meth:`NeuronIndex.labels`)."""
    if kind == "channels":
        return f"{layer}[c={i}]"
    if len(shape) <= 1:
        return f"{layer}[{i}]"
    idx = np.unravel_index(i, shape)
    if kind == "units":
        names = ("c", *_AXES[len(_AXES) - (len(shape) - 1) :]) if len(shape) <= 4 else ()
        if names:
            return f"{layer}[" + ", ".join(f"{a}={int(v)}" for a, v in zip(names, idx)) + "]"
    return f"{layer}[" + ", ".join(str(int(v)) for v in idx) + "]"


@dataclass(frozen=True)
class NeuronIndex:
    """Where each column of an activation matrix came from.

    Attributes
    ----------
    layers : tuple of str
        Recorded layer names, in layer (forward-call) order.
    layer : numpy.ndarray of int64, shape (n_sampled,)
        For each column, its layer as an index into ``layers``.
    neuron : numpy.ndarray of int64, shape (n_sampled,)
        For each column, the index of the neuron within its layer (for a convolution the flat
        ``(channel, position)`` index, ``channel * H * W + row * W + col``).
    sizes : dict of str to int
        Number of neurons of each full layer (before sampling), in layer order.
    shapes : dict of str to tuple of int
        Shape of each layer's neurons: the per-example output shape when every unit is a
        neuron, e.g. ``(450,)`` or ``(32, 14, 14)``; ``(C,)`` when the channels (or features)
        are the neurons and the positions are examples (``positions="examples"``).
    kinds : dict of str to str
        What each layer's neurons are: ``"features"`` (a feature axis, possibly flattened with
        positions), ``"units"`` (a convolution's ``(channel, position)`` units) or
        ``"channels"`` (a convolution's channels, positions being examples). A layer missing
        from ``kinds`` is read as ``"features"``.

    Examples
    --------
    >>> import numpy as np
    >>> from topo_neurons import NeuronIndex
    >>> ix = NeuronIndex(("fc1", "conv"), np.array([0, 0, 1]), np.array([3, 17, 71]),
    ...                  {"fc1": 20, "conv": 128}, {"fc1": (20,), "conv": (8, 4, 4)},
    ...                  {"fc1": "features", "conv": "units"})
    >>> ix.labels()
    ['fc1[3]', 'fc1[17]', 'conv[c=4, y=1, x=3]']
    """

    layers: tuple[str, ...]
    layer: np.ndarray
    neuron: np.ndarray
    sizes: dict[str, int] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.layer.shape[0])

    def labels(self) -> list[str]:
        """One readable name per column.

        ``"fc1[17]"`` for feature 17 of ``fc1``; ``"conv1[c=3, y=0, x=7]"`` for the unit of
        channel 3 at row 0, column 7 of a convolution (``c=, x=`` for 1-d, ``c=, z=, y=, x=``
        for 3-d ones); ``"conv1[c=3]"`` for channel 3 when the channels are the neurons;
        ``"enc[2, 17]"`` for a multi-axis feature layer flattened per example.
        """
        out = []
        for li, ni in zip(self.layer.tolist(), self.neuron.tolist()):
            name = self.layers[li]
            out.append(_label(name, ni, self.shapes.get(name, ()), self.kinds.get(name)))
        return out

    def columns(self, layer: str) -> np.ndarray:
        """Column indices (into the activation matrix) of the neurons of ``layer``.

        Raises
        ------
        ValueError
            ``layer`` was not recorded (the recorded layers are listed).
        """
        if layer not in self.layers:
            raise ValueError(f"layer {layer!r} was not recorded; recorded layers: {self.layers}")
        return np.flatnonzero(self.layer == self.layers.index(layer))


#: Normalisation layers have parameters but do not make new neurons: their outputs are affine
#: copies of the previous layer's (BatchNorm) or rescalings of them, so they are not recorded by
#: default.
