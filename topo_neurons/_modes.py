"""Putting a model in evaluation mode for a while and restoring its own mode afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

__all__ = ["eval_mode"]


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Switch ``model`` (dropout, batch norm) to evaluation mode inside the block.

    The model's previous mode (``model.training``) is restored on exit, also when the block
    raises. Submodules whose mode differed from the model's are set to the model's mode, as
    :meth:`torch.nn.Module.train` does.
    """
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
