"""What ``analyse`` runs: the model (factory + weights, or TorchScript), the data, the sampling."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..experiments.data import BUNDLED, load_bundled, standardize_features
from ._errors import UserError
from ._io import existing_file, load_array

if TYPE_CHECKING:
    import torch

    from ..capture import SamplingStrategy

__all__ = ["DATASETS", "SAMPLINGS", "load_data", "load_model", "sampling_strategy"]

#: Bundled data sets accepted by ``--data`` (no download): the names of the one registry,
#: :data:`topo_neurons.experiments.data.BUNDLED`.
DATASETS: tuple[str, ...] = tuple(BUNDLED)
SAMPLINGS: tuple[str, ...] = ("all", "importance", "random")


def load_data(
    spec: str, key: str | None = None, standardize: bool = False, limit: int | None = None
) -> np.ndarray:
    """Inputs for ``analyse``: a scikit-learn data set name or a ``.npy``/``.npz`` path.

    Parameters
    ----------
    spec : str
        One of :data:`DATASETS` (features only, flat, float32), or a path.
    key : str, optional
        Array of an ``.npz`` file.
    standardize : bool
        Centre each feature and divide by its standard deviation (constant features by 1).
    limit : int, optional
        Keep the first ``limit`` examples.

    Returns
    -------
    numpy.ndarray of float32, shape (m, ...)
    """
    if spec in DATASETS:
        X = load_bundled(spec)[0]
    elif spec.lower().endswith((".npy", ".npz")):
        X = load_array(spec, key, what="data file")
    else:
        raise UserError(
            f"unknown data set {spec!r}; give one of {', '.join(DATASETS)} or a .npy/.npz path"
        )
    if X.dtype.kind not in "fiub":
        raise UserError(f"data must be numeric; {spec!r} has dtype {X.dtype}")
    if X.ndim < 2:
        raise UserError(
            f"data must have shape (examples, features...); {spec!r} has shape {X.shape}"
        )
    X = np.asarray(X, dtype=np.float64)
    if limit is not None:
        X = X[:limit]
    if X.shape[0] < 2:
        raise UserError(f"data {spec!r} holds {X.shape[0]} example(s); at least 2 are needed")
    if not np.isfinite(X).all():
        bad = np.argwhere(~np.isfinite(X))[0]
        raise UserError(f"data {spec!r} holds a NaN/Inf at index {tuple(int(i) for i in bad)}")
    if standardize:  # in float64, then rounded once to float32
        return standardize_features(X)[0]
    return X.astype(np.float32)


def _import_factory(spec: str) -> Callable[[], object]:
    """The callable ``spec`` names: ``package.module:name`` or ``path/to/file.py:name``."""
    if ":" not in spec:
        raise UserError(
            f"--model must be 'package.module:factory' or 'path/to/file.py:factory'; got {spec!r}"
        )
    where, _, attr = spec.rpartition(":")
    if not where or not attr:
        raise UserError(f"--model {spec!r} needs both a module and a factory name")
    if where.endswith(".py"):
        path = existing_file(where, "model file")
        mod_name = f"_topo_neurons_user_model_{abs(hash(str(path.resolve())))}"
        spec_obj = importlib.util.spec_from_file_location(mod_name, path)
        if spec_obj is None or spec_obj.loader is None:  # pragma: no cover - .py always loads
            raise UserError(f"cannot import model file {where!r}")
        module = importlib.util.module_from_spec(spec_obj)
        sys.modules[mod_name] = module
        try:
            spec_obj.loader.exec_module(module)
        except Exception as exc:
            raise UserError(f"importing {where!r} failed: {type(exc).__name__}: {exc}") from None
    else:
        # As ``python -m`` does: modules of the working directory are importable
        # (``--model mymodels:cnn`` with mymodels.py here), also from the installed script.
        cwd = os.getcwd()
        added = cwd not in sys.path and "" not in sys.path
        if added:
            sys.path.insert(0, cwd)
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise UserError(
                f"cannot import module {where!r} (searched the working directory {cwd!r} and "
                f"the installed packages): {exc}"
            ) from None
        except Exception as exc:
            raise UserError(f"importing {where!r} failed: {type(exc).__name__}: {exc}") from None
        finally:
            if added:
                sys.path.remove(cwd)
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        shown = ", ".join(found[:20]) + (" …" if len(found) > 20 else "")
        raise UserError(f"{where!r} has no callable {attr!r}; callables in it: {shown}")
    return factory


def _state_dict(path: str) -> dict[str, torch.Tensor]:
    import pickle

    import torch

    p = existing_file(path, "weights file")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found is None:
            raise UserError(
                f"weights file {path!r} is not a torch state-dict file (it cannot be unpickled "
                "as tensors)"
            ) from None
        raise UserError(
            f"weights file {path!r} was refused by torch.load(weights_only=True): it holds a "
            f"{found.group(1)} object, not only tensors (unsafe pickle; loading it could run "
            "arbitrary code)"
        ) from None
    except Exception as exc:
        raise UserError(
            f"weights file {path!r} is not a torch state-dict file: {type(exc).__name__}: {exc}"
        ) from None
    if isinstance(obj, dict):
        for nested in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(nested), dict):
                obj = obj[nested]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(
            f"weights file {path!r} holds a {type(obj).__name__}, not a state dict "
            "(a mapping of parameter names to tensors, as saved by torch.save(model.state_dict()))"
        )
    return obj


def _eager_from_script(script: torch.jit.ScriptModule) -> torch.nn.Sequential:
    """An eager ``nn.Sequential`` running a TorchScript ``Sequential``'s children in order.

    Forward hooks cannot be attached to TorchScript submodules, so each child is wrapped in an
    eager leaf module that owns the child's parameters (shared, not copied) and calls it.
    """
    from torch import nn

    if getattr(script, "original_name", None) != "Sequential":
        raise UserError(
            "TorchScript models can be analysed only when they are an nn.Sequential (forward "
            "hooks cannot be attached inside TorchScript); this one is "
            f"{getattr(script, 'original_name', type(script).__name__)!r}. Give --model "
            "package.module:factory with --weights instead"
        )

    class ScriptLayer(nn.Module):
        def __init__(self, child: torch.jit.ScriptModule) -> None:
            super().__init__()
            object.__setattr__(self, "_child", child)  # not registered as a submodule
            for pname, param in child.named_parameters():
                # Script tensors are not Parameter instances; this wraps (shares) the storage.
                shared = nn.Parameter(param, requires_grad=param.requires_grad)
                self.register_parameter(pname.replace(".", "_"), shared)
            self.kind = str(getattr(child, "original_name", "module"))
            self.original_name = self.kind  # lets the recorder see a scripted ReLU's kind

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self._child(x)

        def extra_repr(self) -> str:
            return self.kind

    return nn.Sequential(
        OrderedDict((name, ScriptLayer(child)) for name, child in script.named_children())
    )


def load_model(
    model: str | None = None, weights: str | None = None, torchscript: str | None = None
) -> torch.nn.Module:
    """Build the model of ``analyse`` from a factory (+ state dict) or a TorchScript file."""
    import torch

    if (model is None) == (torchscript is None):
        raise UserError("give exactly one of --model FACTORY or --torchscript FILE")
    if torchscript is not None:
        if weights is not None:
            raise UserError("--weights applies to --model; a TorchScript file holds its weights")
        p = existing_file(torchscript, "TorchScript file")
        try:
            script = torch.jit.load(str(p), map_location="cpu")
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"{torchscript!r} is not a TorchScript file: {first}") from None
        return _eager_from_script(script)
    factory = _import_factory(model)
    try:
        net = factory()
    except Exception as exc:
        raise UserError(f"calling {model}() failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(net, torch.nn.Module):
        raise UserError(f"{model}() returned {type(net).__name__}, not a torch.nn.Module")
    if weights is not None:
        state = _state_dict(weights)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            detail = " ".join(str(exc).split())
            raise UserError(f"weights {weights!r} do not fit {model}(): {detail}") from None
    return net


def sampling_strategy(name: str, p: float | None, seed: int) -> SamplingStrategy:
    from ..capture import AllNeurons, ImportanceSampling, RandomSampling

    if name == "all":
        if p is not None:
            raise UserError("--p applies to --sampling importance or random")
        return AllNeurons()
    frac = 1.0 if p is None else p
    if name == "importance":
        return ImportanceSampling(frac)
    if p is None:
        raise UserError("--sampling random needs --p (fraction of each hidden layer)")
    return RandomSampling(frac, seed=seed)
