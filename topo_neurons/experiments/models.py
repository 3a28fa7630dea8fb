"""The networks of the experiments: the paper's MLPs adapted to the input size, and a small CNN.

Ballester et al. trained multilayer perceptrons on MNIST whose hidden widths shrink like a
trapezium. Here the same hidden widths sit between an input of any size and an output of any
size:

===================== ============================== =========
name                  hidden widths                  dropout
===================== ============================== =========
``trapezium``         450-350-200                    none
``trapezium_dropout`` 450-350-200                    0.5
``deep_trapezium``    300-250-200-150-100            none
``cnn``               conv 16, conv 32, dense 64     none
===================== ============================== =========

Every hidden layer is ``Linear → ReLU`` (``→ Dropout(0.5)`` for ``trapezium_dropout``). The
layers with parameters are named ``fc1``, ``fc2``, …, ``out`` (``conv1``, ``conv2``, ``fc1``,
``out`` for the CNN), the names :class:`topo_neurons.ActivationRecorder` reports.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = [
    "MODELS",
    "ModelSpec",
    "SmallCNN",
    "TrapeziumMLP",
    "keras_init_",
    "make_model",
    "neuron_layers",
]


@dataclass(frozen=True)
class ModelSpec:
    """One entry of the model registry.

    Attributes
    ----------
    name : str
    hidden : tuple of int
        Hidden widths (MLP) or ``(conv1 channels, conv2 channels, dense width)`` (CNN).
    dropout : float
        Dropout probability after each hidden ReLU (0 = none).
    kind : {"mlp", "cnn"}
    """

    name: str
    hidden: tuple[int, ...]
    dropout: float
    kind: str


#: The registry used by :func:`make_model`.
MODELS: dict[str, ModelSpec] = {
    "trapezium": ModelSpec("trapezium", (450, 350, 200), 0.0, "mlp"),
    "trapezium_dropout": ModelSpec("trapezium_dropout", (450, 350, 200), 0.5, "mlp"),
    "deep_trapezium": ModelSpec("deep_trapezium", (300, 250, 200, 150, 100), 0.0, "mlp"),
    "cnn": ModelSpec("cnn", (16, 32, 64), 0.0, "cnn"),
}


class TrapeziumMLP(nn.Module):
    """A multilayer perceptron ``flatten → (Linear → ReLU [→ Dropout])* → Linear``.

    Parameters
    ----------
    in_features : int
        Number of input features (inputs of any shape are flattened).
    hidden : sequence of int
        Hidden widths, e.g. ``(450, 350, 200)``.
    out_features : int
        Number of outputs (classes, or 1 for regression).
    dropout : float
        Dropout probability after each hidden ReLU; 0 for none.

    Notes
    -----
    Input ``(m, *input_shape)`` with ``prod(input_shape) == in_features``; output
    ``(m, out_features)``.
    """

    def __init__(
        self, in_features: int, hidden: tuple[int, ...], out_features: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
        width = in_features
        for i, h in enumerate(hidden, start=1):
            layers[f"fc{i}"] = nn.Linear(width, h)
            layers[f"relu{i}"] = nn.ReLU()
            if dropout > 0:
                layers[f"drop{i}"] = nn.Dropout(dropout)
            width = h
        layers["out"] = nn.Linear(width, out_features)
        self.net = nn.Sequential(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (or regression outputs), shape ``(m, out_features)``."""
        return self.net(x)


class SmallCNN(nn.Module):
    """A small CNN for image inputs: two 3 × 3 convolutions with max-pooling, then two dense layers.

    ``conv1 (c1) → ReLU → MaxPool 2 → conv2 (c2) → ReLU → AdaptiveAvgPool (2 × 2) → fc1 (width)
    → ReLU → out``.

    Parameters
    ----------
    in_shape : tuple of 3 int
        ``(channels, height, width)`` of one image; height and width at least 2.
    out_features : int
        Number of outputs.
    channels : tuple of 3 int
        ``(c1, c2, dense width)``.

    Notes
    -----
    Input ``(m, channels, height, width)``; output ``(m, out_features)``.
    """

    def __init__(
        self, in_shape: tuple[int, int, int], out_features: int, channels=(16, 32, 64)
    ) -> None:
        super().__init__()
        c = in_shape[0]
        c1, c2, width = channels
        self.net = nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(c, c1, 3, padding=1),
                relu1=nn.ReLU(),
                pool1=nn.MaxPool2d(2),
                conv2=nn.Conv2d(c1, c2, 3, padding=1),
                relu2=nn.ReLU(),
                pool2=nn.AdaptiveAvgPool2d(2),
                flatten=nn.Flatten(),
                fc1=nn.Linear(c2 * 4, width),
                relu3=nn.ReLU(),
                out=nn.Linear(width, out_features),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape ``(m, out_features)``."""
        return self.net(x)


def make_model(name: str, in_features: int | tuple[int, ...], out_features: int) -> nn.Module:
    """Build a registered network for an input and output size.

    Parameters
    ----------
    name : str
        One of :data:`MODELS`: ``"trapezium"``, ``"trapezium_dropout"``, ``"deep_trapezium"``,
        ``"cnn"``.
    in_features : int or tuple of int
        Input size: an int, or the shape of one example (flattened for the MLPs; the CNN needs
        ``(channels, height, width)``).
    out_features : int
        Number of outputs.

    Returns
    -------
    torch.nn.Module
        Freshly initialised (seed with ``torch.manual_seed`` before calling for reproducibility).

    Examples
    --------
    >>> from topo_neurons.experiments.models import make_model
    >>> m = make_model("trapezium", 64, 10)
    >>> [n for n, mod in m.named_modules() if hasattr(mod, "weight")]
    ['net.fc1', 'net.fc2', 'net.fc3', 'net.out']
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid models are {', '.join(MODELS)}")
    spec = MODELS[name]
    if not isinstance(out_features, (int, np.integer)) or out_features < 1:
        raise ValueError(f"out_features must be a positive int; got {out_features!r}")
    shape = (
        (int(in_features),)
        if isinstance(in_features, (int, np.integer))
        else tuple(int(s) for s in in_features)
    )
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"in_features must be positive; got {in_features!r}")
    if spec.kind == "cnn":
        if len(shape) != 3 or shape[1] < 2 or shape[2] < 2:
            raise ValueError(
                f"model 'cnn' needs image inputs: in_features=(channels, height, width) with "
                f"height, width ≥ 2; got {in_features!r} (use an MLP: "
                f"{', '.join(n for n, s in MODELS.items() if s.kind == 'mlp')})"
            )
        return SmallCNN(shape, int(out_features), spec.hidden)  # type: ignore[arg-type]
    return TrapeziumMLP(int(np.prod(shape)), spec.hidden, int(out_features), spec.dropout)


def neuron_layers(model: nn.Module) -> list[str]:
    """Names of the modules whose outputs are the paper's neurons, in forward order.

    Each hidden layer's output *after* its activation (the ``nn.ReLU`` modules: what the next
    layer sees, as in the authors' code) and the logits (the last ``Linear``). The harness
    passes these names to :class:`topo_neurons.ActivationRecorder` explicitly, so that the
    experiments do not depend on the recorder's default.

    Parameters
    ----------
    model : TrapeziumMLP or SmallCNN
        A model built by :func:`make_model`.

    Returns
    -------
    list of str
        E.g. ``['net.relu1', 'net.relu2', 'net.relu3', 'net.out']`` for ``trapezium``.

    Examples
    --------
    >>> from topo_neurons.experiments.models import make_model, neuron_layers
    >>> neuron_layers(make_model("deep_trapezium", 784, 10))
    ['net.relu1', 'net.relu2', 'net.relu3', 'net.relu4', 'net.relu5', 'net.out']
    """
    names = [n for n, m in model.named_modules() if isinstance(m, nn.ReLU)]
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names or not linears:
        raise ValueError(
            f"{type(model).__name__} has no nn.ReLU module or no nn.Linear output layer; "
            "neuron_layers() knows the models of make_model() only"
        )
    return [*names, linears[-1]]


@torch.no_grad()
def keras_init_(model: nn.Module) -> nn.Module:
    """Initialise like Keras' defaults (the authors' TensorFlow models), in place.

    ``Dense``/``Conv2D`` kernels Glorot-uniform (``U(±sqrt(6 / (fan_in + fan_out)))``),
    biases zero; torch's own default is Kaiming-uniform with ``a = √5`` and uniform biases.
    Draws from torch's global generator (seed it first).

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    torch.nn.Module
        ``model`` itself.
    """
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model
