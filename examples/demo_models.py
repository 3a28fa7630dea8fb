"""A small documented model factory for the ``topo-neurons analyse`` examples and tests.

``digits_mlp`` builds an MLP for scikit-learn's digits (64 inputs, 10 classes) with layers named
``fc1``, ``fc2``, ``out``. Give it to the command as a file path::

    python examples/demo_models.py digits_mlp.pt          # trains for a few seconds, saves weights
    topo-neurons analyse --model examples/demo_models.py:digits_mlp --weights digits_mlp.pt \\
        --data digits --standardize --out report/

``train_digits_mlp`` is the training used for those weights (standardised inputs, Adam);
``--activations DIR`` also saves the activations of ``fc1`` and ``fc2`` on the digits (for
``topo-neurons barcode``).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn


def digits_mlp(hidden: tuple[int, int] = (48, 32)) -> nn.Sequential:
    """MLP 64 → hidden[0] → hidden[1] → 10 with ReLU; layers ``fc1``, ``fc2``, ``out``."""
    return nn.Sequential(
        OrderedDict(
            [
                ("fc1", nn.Linear(64, hidden[0])),
                ("relu1", nn.ReLU()),
                ("fc2", nn.Linear(hidden[0], hidden[1])),
                ("relu2", nn.ReLU()),
                ("out", nn.Linear(hidden[1], 10)),
            ]
        )
    )


def digits_standardized() -> tuple[np.ndarray, np.ndarray]:
    """Digits features z-scored per feature (constant features divided by 1), float32; labels."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    std = X.std(axis=0)
    X = (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return X.astype(np.float32), y.astype(np.int64)


def train_digits_mlp(epochs: int = 15, seed: int = 0, regularizer=None, weight: float = 0.0):
    """Train :func:`digits_mlp` on standardised digits (Adam, batches of 128, the short last
    batch of each epoch dropped); with a ``regularizer`` and ``weight > 0`` the loss adds
    ``weight · regularizer(A)`` on the post-activation outputs of every layer, through
    :class:`topo_neurons.Regularized`. Returns the model (in eval mode)."""
    import topo_neurons as tn

    torch.manual_seed(seed)
    X, y = digits_standardized()
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
    model = digits_mlp()
    regularized = (
        tn.Regularized(model, regularizer, weight) if regularizer is not None and weight else None
    )
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    batch = 128
    for _ in range(epochs):
        perm = torch.randperm(X_t.shape[0], generator=gen)
        for start in range(0, X_t.shape[0] - batch + 1, batch):  # drop_last
            idx = perm[start : start + batch]
            if regularized is None:
                loss = nn.functional.cross_entropy(model(X_t[idx]), y_t[idx])
            else:
                out, penalty = regularized(X_t[idx])
                loss = nn.functional.cross_entropy(out, y_t[idx]) + penalty
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def save_activations(model: nn.Module, directory: str) -> list[str]:
    """Save the activations of ``fc1`` and ``fc2`` on the standardised digits (1797 examples ×
    neurons, float32, as the recorder takes them: after the ReLU) as ``DIRECTORY/fc1.npy`` and
    ``DIRECTORY/fc2.npy``; returns the paths."""
    from pathlib import Path

    import topo_neurons as tn

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    X, _ = digits_standardized()
    paths = []
    for layer in ("fc1", "fc2"):
        with torch.no_grad(), tn.ActivationRecorder(model, layers=[layer]) as rec:
            model(torch.from_numpy(X))
        path = out / f"{layer}.npy"
        np.save(path, rec.activations().numpy())
        paths.append(str(path))
    return paths


if __name__ == "__main__":  # pragma: no cover - documentation helper
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(description="Train the demo digits MLP and save it.")
    parser.add_argument("weights", nargs="?", default="digits_mlp.pt", help="state dict to write")
    parser.add_argument("--activations", metavar="DIR", help="also save fc1.npy, fc2.npy there")
    cli = parser.parse_args()
    trained = train_digits_mlp()
    Path(cli.weights).parent.mkdir(parents=True, exist_ok=True)
    torch.save(trained.state_dict(), cli.weights)
    written = [cli.weights]
    if cli.activations:
        written += save_activations(trained, cli.activations)
    print(f"wrote {', '.join(written)}")
