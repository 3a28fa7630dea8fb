"""Subcommands ``analyse``, ``barcode`` and ``compare`` of ``topo-neurons``.

Every output is written atomically into the directory ``--out`` (the same meaning for every
subcommand). User errors raise :class:`UserError`, which ``topo-neurons`` prints as one line with
exit status 2; the library's own input errors (``ValueError``, and ``MemoryError`` from the
``n × n`` guard) are turned into it where the commands call the library. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import re
import sys
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .cli import UserError as _CliUserError

__all__ = ["DATASETS", "load_data", "load_model", "register"]

#: scikit-learn data sets accepted by ``--data`` (bundled with scikit-learn, no download).
DATASETS: tuple[str, ...] = ("digits", "breast_cancer", "diabetes", "iris", "wine")
FIGURE_FORMATS: tuple[str, ...] = ("png", "pdf", "svg")
SAMPLINGS: tuple[str, ...] = ("all", "importance", "random")

_ANALYSE_EPILOG = """\
examples:
  # a model factory (package.module:function or path/to/file.py:function) + a state dict
  topo-neurons analyse --model mypkg.models:make_mlp --weights mlp.pt --data digits \\
      --standardize --out report/
  # a TorchScript nn.Sequential, data from a .npy file, two layers, 10% importance sampling
  topo-neurons analyse --torchscript model.pt --data inputs.npy --layers 0,2 \\
      --sampling importance --p 0.1 --out report/

writes into --out: report.json, report.md, barcode.png, diagram.png, dendrogram.png, mst.png
(and .pdf/.svg copies with --formats png,pdf,svg). Without --weights the model's random
initialisation is analysed (with a warning).
"""

_BARCODE_EPILOG = """\
examples:
  topo-neurons barcode acts.npy --out results/          # results/acts.npz, results/acts.png
  topo-neurons barcode dist.npz --key D --input-kind distance --out results/ --name bc \
      --formats png,pdf

writes into --out the barcode NAME.npz (read it with topo_neurons.Barcode.load) and its figure
NAME.png (NAME: --name, default the input's file name). The old form --out FILE.npz still works.
"""

_COMPARE_EPILOG = """\
examples:
  topo-neurons compare none.npz t1.npz t2.npz --labels none T1 T2 --out results/ --formats pdf
  topo-neurons compare a.npz b.npz --style hist --out results/ --name hist

writes the figure NAME.png (NAME: --name, default compare) into --out. The old form
--out FIGURE.pdf still works.
"""


class UserError(_CliUserError, ValueError):
    """A user error of these commands: one line on stderr, exit status 2.

    Also a ``ValueError``: under ``python -m topo_neurons.cli`` the running ``cli`` module is
    ``__main__``, whose ``UserError`` is a different class from ``topo_neurons.cli.UserError``;
    its handler still catches ``ValueError``.
    """


# ----------------------------------------------------------------------------- helpers
def _progress_enabled(args: argparse.Namespace) -> bool:
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


@contextlib.contextmanager
def _library_user_errors() -> Iterator[None]:
    """Turn the library's input errors into :class:`UserError` (one line, exit status 2).

    ``ValueError`` is how the library reports bad input (a layer name, NaN activations, a
    matrix that is not a distance); ``MemoryError`` is the ``n × n`` guard's refusal. Other
    exceptions are bugs and pass through with their traceback.
    """
    try:
        yield
    except UserError:
        raise
    except (ValueError, MemoryError) as exc:
        raise UserError(" ".join(str(exc).split()) or type(exc).__name__) from exc


def _note(command: str, text: str) -> None:
    print(f"topo-neurons {command}: {text}", file=sys.stderr)


#: Suffixes that make ``--out`` look like a file name (a directory ``run_1.5`` is still fine).
_FILE_SUFFIXES = frozenset(
    ".npz .npy .png .pdf .svg .eps .ps .jpg .jpeg .gif .tif .tiff .txt .json .md .csv .pt .pth "
    ".pkl .zip".split()
)


def _output_dir(text: str, command: str, old_suffixes: Sequence[str] = ()) -> tuple[Path, bool]:
    """Check ``--out`` before any work: ``(directory, False)`` or ``(file, True)`` (old form).

    ``--out`` is the output directory of every subcommand. A path ending in one of
    ``old_suffixes`` that is not an existing directory is the old form (a file), still accepted
    with a note on stderr; any other file-like path is refused.
    """
    out = Path(text)
    suffix = out.suffix.lower()
    if suffix in _FILE_SUFFIXES and not out.is_dir():
        if suffix in old_suffixes:
            _note(
                command,
                f"note: --out {text} names a file, the old form (still written); --out is now "
                f"the output directory of every command: --out {out.parent} --name {out.stem}",
            )
            _check_writable(out.parent, text)
            return out, True
        if not out.exists():
            valid = ", ".join(old_suffixes) if old_suffixes else "none"
            raise UserError(
                f"--out {text!r} looks like a file name (suffix {out.suffix!r}); --out is the "
                f"output directory (file suffixes still accepted for the old form: {valid})"
            )
    if out.exists() and not out.is_dir():
        raise UserError(
            f"--out {text!r} exists and is not a directory; --out is the output directory"
        )
    _check_writable(out, text)
    return out, False


def _check_writable(directory: Path, text: str) -> None:
    probe = directory
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UserError(f"--out {text!r}: {str(probe)!r} is a file, not a directory")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"--out {text!r}: no permission to write in {str(probe)!r}")


def _existing_file(path: str, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise UserError(f"{what} {path!r} does not exist")
    if not p.is_file():
        raise UserError(f"{what} {path!r} is not a file")
    return p


def _csv(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    return items or None


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise UserError(f"{what} must be comma-separated numbers; got {text!r}") from None
    if not values:
        raise UserError(f"{what} is empty")
    return values


def load_array(path: str, key: str | None = None, what: str = "input") -> np.ndarray:
    """Read an array from ``.npy`` or ``.npz`` (no pickles); ``key`` picks an ``.npz`` entry."""
    p = _existing_file(path, what)
    suffix = p.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise UserError(f"{what} {path!r} must be a .npy or .npz file; got suffix {p.suffix!r}")
    try:
        loaded = np.load(p, allow_pickle=False)
    except ValueError as exc:  # object arrays need pickles: refused
        raise UserError(f"{what} {path!r} cannot be read without pickles: {exc}") from None
    except (OSError, EOFError) as exc:
        raise UserError(f"{what} {path!r} is not a valid {suffix} file: {exc}") from None
    if suffix == ".npy":
        if key is not None:
            raise UserError(f"--key applies to .npz files; {path!r} is a .npy file")
        return loaded
    with loaded as f:
        names = list(f.files)
        if key is None:
            if len(names) == 1:
                key = names[0]
            else:
                raise UserError(
                    f"{what} {path!r} holds several arrays {names}; choose one with --key"
                )
        if key not in names:
            raise UserError(f"{what} {path!r} has no array {key!r}; arrays in it: {names}")
        try:
            return f[key]
        except ValueError as exc:
            raise UserError(f"array {key!r} of {path!r} cannot be read without pickles") from exc


def load_data(
    spec: str, key: str | None = None, standardize: bool = False, limit: int | None = None
) -> np.ndarray:
    """Inputs for ``analyse``: a scikit-learn data set name or a ``.npy``/``.npz`` path.

    Parameters
    ----------
    spec : str
        One of :data:`DATASETS` (features only, float32), or a path.
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
        import sklearn.datasets

        X = getattr(sklearn.datasets, f"load_{spec}")(return_X_y=True)[0]
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
        mean = X.mean(axis=0, keepdims=True)
        std = X.std(axis=0, keepdims=True)
        X = (X - mean) / np.where(std > 0, std, 1.0)
    return X.astype(np.float32)


def _import_factory(spec: str) -> Any:
    if ":" not in spec:
        raise UserError(
            f"--model must be 'package.module:factory' or 'path/to/file.py:factory'; got {spec!r}"
        )
    where, _, attr = spec.rpartition(":")
    if not where or not attr:
        raise UserError(f"--model {spec!r} needs both a module and a factory name")
    if where.endswith(".py"):
        path = _existing_file(where, "model file")
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


def _state_dict(path: str) -> dict[str, Any]:
    import pickle

    import torch

    p = _existing_file(path, "weights file")
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


def _eager_from_script(script: Any) -> Any:
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
        def __init__(self, child: Any) -> None:
            super().__init__()
            object.__setattr__(self, "_child", child)  # not registered as a submodule
            for pname, param in child.named_parameters():
                # Script tensors are not Parameter instances; this wraps (shares) the storage.
                shared = nn.Parameter(param, requires_grad=param.requires_grad)
                self.register_parameter(pname.replace(".", "_"), shared)
            self.kind = str(getattr(child, "original_name", "module"))
            self.original_name = self.kind  # lets the recorder see a scripted ReLU's kind

        def forward(self, x: Any) -> Any:
            return self._child(x)

        def extra_repr(self) -> str:
            return self.kind

    return nn.Sequential(
        OrderedDict((name, ScriptLayer(child)) for name, child in script.named_children())
    )


def load_model(
    model: str | None = None, weights: str | None = None, torchscript: str | None = None
) -> Any:
    """Build the model of ``analyse`` from a factory (+ state dict) or a TorchScript file."""
    import torch

    if (model is None) == (torchscript is None):
        raise UserError("give exactly one of --model FACTORY or --torchscript FILE")
    if torchscript is not None:
        if weights is not None:
            raise UserError("--weights applies to --model; a TorchScript file holds its weights")
        p = _existing_file(torchscript, "TorchScript file")
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


def _sampling(name: str, p: float | None, seed: int) -> Any:
    from .capture import AllNeurons, ImportanceSampling, RandomSampling

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


@contextlib.contextmanager
def _figure_style() -> Iterator[None]:
    import matplotlib

    matplotlib.use("Agg")
    from .plotting import paper_style

    with paper_style(columns=1):
        yield


def _save_figure(fig: Any, targets: Sequence[Path]) -> list[Path]:
    """Save ``fig`` to each target atomically, in the format of its suffix (TrueType fonts)."""
    from .plotting import save_figure

    return [save_figure(fig, target) for target in targets]


def _formats(text: str) -> list[str]:
    items = _csv(text) or []
    bad = [f for f in items if f not in FIGURE_FORMATS]
    if bad or not items:
        raise UserError(
            f"--formats {text!r}: unknown format(s) {bad}; valid formats are {FIGURE_FORMATS}"
        )
    return items


# ----------------------------------------------------------------------------- commands
def _model_label(args: argparse.Namespace) -> str:
    if args.torchscript is not None:
        return Path(args.torchscript).name
    name = str(args.model).rpartition(":")[2]
    return name if args.weights is not None else f"{name} (untrained)"


def _analyse_title(args: argparse.Namespace, report: Any, what: str) -> str:
    """What a figure shows: the kind of figure, model, layers, data (two short lines)."""
    layers = list(report.layers)
    shown = ", ".join(layers) if len(layers) <= 4 else f"{len(layers)} layers"
    data = Path(args.data).name if args.data not in DATASETS else args.data
    return (
        f"{what} of {_model_label(args)} ({shown})\n"
        f"{report.network.n_neurons} neurons · {data}, {report.n_examples} examples"
    )


def _run_analyse(
    net: Any, X: np.ndarray, args: argparse.Namespace, sampling: Any, thresholds: Any
) -> Any:
    from .analysis import analyse

    with _dask_client(getattr(args, "scheduler", None)) as client, _library_user_errors():
        return analyse(
            net,
            X,
            layers=_csv(args.layers),
            sampling=sampling,
            kind=args.kind,
            batch_size=args.batch_size,
            thresholds=thresholds,
            top_k=args.top_k,
            progress=_progress_enabled(args),
            backend=args.backend,
            point=args.point,
            positions=args.positions,
            device=args.device,
            path=getattr(args, "path", "auto"),
            scheduler=client,
        )


@contextlib.contextmanager
def _dask_client(address: str | None) -> Iterator[Any]:
    """A ``distributed.Client`` connected to ``address`` (closed on exit), or ``None``."""
    if not address:
        yield None
        return
    try:
        from distributed import Client
    except ImportError:
        raise UserError(
            "--scheduler needs Dask's distributed scheduler: pip install 'topo_neurons[dask]'"
        ) from None
    try:
        client = Client(address, timeout=30)
    except (OSError, TimeoutError, ValueError) as exc:
        msg = f"--scheduler {address!r}: cannot connect to a Dask scheduler ({exc})"
        raise UserError(msg) from exc
    try:
        yield client
    finally:
        client.close()


def _cmd_analyse(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import plot_barcode, plot_dendrogram, plot_diagram, plot_mst

    formats = _formats(args.formats)
    thresholds = _floats(args.thresholds, "--thresholds")
    if args.limit is not None and args.limit < 2:
        raise UserError(f"--limit must be ≥ 2; got {args.limit}")
    # Outputs are checked before the analysis runs (not after minutes of work).
    out, _ = _output_dir(args.out, "analyse")
    names = ["report.json", "report.md"] + [
        f"{fig}.{f}" for fig in ("barcode", "diagram", "dendrogram", "mst") for f in formats
    ]
    blocked = [n for n in names if (out / n).exists() and not (out / n).is_file()]
    if blocked:
        raise UserError(f"--out {args.out!r}: {blocked[0]!r} exists and is not a file")
    net = load_model(args.model, args.weights, args.torchscript)
    if args.model is not None and args.weights is None:
        _note(
            "analyse",
            f"warning: no --weights given: analysing the random initialisation of "
            f"{args.model}(), not a trained network",
        )
    X = load_data(args.data, args.key, args.standardize, args.limit)
    sampling = _sampling(args.sampling, args.p, args.seed)
    report = _run_analyse(net, X, args, sampling, thresholds)
    report.meta.update(
        {
            "model": args.model or args.torchscript,
            "weights": args.weights,
            "data": args.data,
            "standardize": bool(args.standardize),
        }
    )
    written = [report.to_json(out / "report.json")]
    from ._io import atomic_write_text

    written.append(atomic_write_text(out / "report.md", report.to_markdown()))

    def title(what: str) -> str:
        return _analyse_title(args, report, what)

    figures = {
        "barcode": lambda ax: plot_barcode(report, ax=ax, title=title("Barcode")),
        "diagram": lambda ax: plot_diagram(report, ax=ax, title=title("H0 diagram")),
        # Highlight merges below the middle threshold (0.2 by default).
        "dendrogram": lambda ax: plot_dendrogram(
            report,
            ax=ax,
            threshold=sorted(thresholds)[len(thresholds) // 2],
            title=title("Dendrogram"),
        ),
        "mst": lambda ax: plot_mst(report, ax=ax, title=title("MST")),
    }
    with _figure_style():
        for name, draw in figures.items():
            fig, ax = plt.subplots()
            try:
                draw(ax)
                written += _save_figure(fig, [out / f"{name}.{f}" for f in formats])
            finally:
                plt.close(fig)
    if not args.quiet:
        print(report.to_markdown().split("\n## ")[0].rstrip())
        print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


def _cmd_barcode(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .correlation import correlation_dissimilarity
    from .persistence import zero_persistence
    from .plotting import plot_barcode

    out, old_form = _output_dir(args.out, "barcode", (".npz",))
    name = args.name or Path(args.input).stem
    if old_form:
        if args.name:
            raise UserError("--name applies when --out is a directory; got --out FILE.npz")
        target = out
        default_figures = [out.with_suffix(".png")]
    else:
        target = out / f"{name}.npz"
        default_figures = [out / f"{name}.{f}" for f in _formats(args.formats)]
    figures = [Path(args.figure)] if args.figure else default_figures
    for figure in figures:
        fmt = figure.suffix.lstrip(".").lower()
        if fmt not in FIGURE_FORMATS:
            raise UserError(
                f"--figure {str(figure)!r}: unknown format {fmt!r}; valid formats are "
                f"{FIGURE_FORMATS}"
            )
    X = load_array(args.input, args.key)
    if X.dtype.kind not in "fiub":
        raise UserError(f"{args.input!r} must hold numbers; got dtype {X.dtype}")
    if args.input_kind == "activations":
        if X.ndim != 2:
            raise UserError(
                f"activations must have shape (m examples, n neurons); {args.input!r} has "
                f"shape {X.shape} (use --input-kind distance for a distance matrix)"
            )
        if X.shape[0] <= X.shape[1]:
            _note(
                "barcode",
                f"warning: m = {X.shape[0]} examples for n = {X.shape[1]} neurons (m ≤ n): the "
                f"correlations span at most m − 1 dimensions and the deaths are biased towards 0",
            )
        with _library_user_errors():
            D = correlation_dissimilarity(np.asarray(X, dtype=np.float64), kind=args.kind)
        what = f"{X.shape[1]} neurons, {X.shape[0]} examples, d = {_KIND_TEXT[args.kind]}"
    else:
        if X.ndim != 2 or X.shape[0] != X.shape[1]:
            raise UserError(
                f"a distance matrix must be square (n, n); {args.input!r} has shape {X.shape}"
            )
        D = np.asarray(X, dtype=np.float64)
        what = f"{X.shape[0]} points, distance matrix"
    with _library_user_errors():
        bc = zero_persistence(D, backend=args.backend)
    bc.save(target)
    title = args.title or f"Barcode of {Path(args.input).name}\n({what})"
    with _figure_style():
        fig, ax = plt.subplots()
        try:
            plot_barcode(bc, ax=ax, title=title)
            _save_figure(fig, figures)
        finally:
            plt.close(fig)
    if not args.quiet:
        print(f"{bc!r}")
        print(f"wrote {', '.join(str(p) for p in [target, *figures])}")
    return 0


_KIND_TEXT = {"abs": "1 − |ρ|", "sqrt": "√(1 − ρ²)"}


def _load_barcode(path: str) -> Any:
    from .persistence import Barcode

    _existing_file(path, "barcode file")
    try:
        return Barcode.load(path)
    except ValueError as exc:  # names the file and what is wrong with it
        raise UserError(" ".join(str(exc).split())) from None


def _cmd_compare(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import plot_death_distribution

    out, old_form = _output_dir(args.out, "compare", tuple(f".{f}" for f in FIGURE_FORMATS))
    if old_form:
        if args.name:
            raise UserError("--name applies when --out is a directory; got --out FIGURE")
        targets = [out]
    else:
        targets = [out / f"{args.name or 'compare'}.{f}" for f in _formats(args.formats)]
    labels = args.labels if args.labels else [Path(p).stem for p in args.barcodes]
    if len(labels) != len(args.barcodes):
        raise UserError(f"got {len(args.barcodes)} barcode files but {len(labels)} --labels")
    if len(set(labels)) != len(labels):
        raise UserError(f"--labels must be distinct; got {labels}")
    barcodes = {label: _load_barcode(path) for label, path in zip(labels, args.barcodes)}
    kind = "ECDF" if args.style == "ecdf" else "histogram"
    title = args.title or f"Deaths of {', '.join(labels)} ({kind})"
    with _figure_style():
        fig, ax = plt.subplots()
        try:
            plot_death_distribution(barcodes, style=args.style, ax=ax, title=title)
            _save_figure(fig, targets)
        finally:
            plt.close(fig)
    if not args.quiet:
        for label, bc in barcodes.items():
            d = bc.deaths
            med = f"median death {np.median(d):.4g}" if d.size else "no finite bars"
            print(f"{label}: {bc.n_points} points, {med}")
        print(f"wrote {', '.join(str(t) for t in targets)}")
    return 0


# ----------------------------------------------------------------------------- parser
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """Add the analysis subcommands to ``sub``."""
    from .correlation import KINDS
    from .persistence import BACKENDS

    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser(
        "analyse",
        help="redundancy report + figures of a trained model",
        description="Run a model over a data set, accumulate the correlations of its neurons, "
        "and write a redundancy report (JSON + Markdown) and figures.",
        epilog=_ANALYSE_EPILOG,
        formatter_class=fmt,
    )
    src = p.add_argument_group("model (one of)")
    src.add_argument(
        "--model", metavar="FACTORY", help="package.module:function or file.py:function"
    )
    src.add_argument(
        "--torchscript", metavar="FILE", help="TorchScript nn.Sequential (torch.jit.save)"
    )
    p.add_argument(
        "--weights", metavar="FILE", help="state dict for --model (torch.load weights_only)"
    )
    p.add_argument(
        "--data", required=True, metavar="DATA", help=f"{', '.join(DATASETS)} or a .npy/.npz path"
    )
    p.add_argument("--key", help="array name inside an .npz data file")
    p.add_argument("--standardize", action="store_true", help="z-score each input feature")
    p.add_argument("--limit", type=int, metavar="M", help="use only the first M examples")
    p.add_argument("--layers", metavar="A,B", help="comma-separated layer names (default: all)")
    p.add_argument(
        "--point",
        choices=("post", "pre"),
        default="post",
        help="a layer's neurons after its activation (default) or before it",
    )
    p.add_argument(
        "--positions",
        choices=("auto", "neurons", "examples"),
        default="auto",
        help="conv pixels / sequence tokens as examples or as parts of neurons (default auto)",
    )
    p.add_argument("--kind", choices=KINDS, default="abs", help="dissimilarity (default abs)")
    p.add_argument("--sampling", choices=SAMPLINGS, default="all", help="neuron sampling")
    p.add_argument("--p", type=float, help="fraction of each hidden layer for --sampling")
    p.add_argument("--seed", type=int, default=0, help="seed of --sampling random")
    p.add_argument("--batch-size", type=_positive_int, default=256, help="default 256")
    p.add_argument("--thresholds", default="0.1,0.2,0.5", help="scales for effective neurons")
    p.add_argument("--top-k", type=int, default=20, help="redundant pairs listed (default 20)")
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="persistence backend")
    p.add_argument(
        "--device", metavar="DEV", help="where the model runs: cpu, cuda, cuda:1, … (default cpu)"
    )
    p.add_argument(
        "--path",
        choices=("auto", "dense", "tiled"),
        default="auto",
        help="n×n accumulator (dense) or kept activations + tiled engine (default auto: tiled "
        "when the matrices would exceed 2 GiB)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the tiled engine's tasks on a running Dask scheduler, e.g. tcp://host:8786",
    )
    p.add_argument("--formats", default="png", help="figure formats, e.g. png,pdf,svg")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    p.set_defaults(func=_cmd_analyse)

    b = sub.add_parser(
        "barcode",
        help="barcode of activations or of a distance matrix",
        description="Compute the 0-dim barcode of activations (m examples × n neurons, "
        "through the correlation dissimilarity) or of a distance matrix; save it and its figure.",
        epilog=_BARCODE_EPILOG,
        formatter_class=fmt,
    )
    b.add_argument("input", help=".npy or .npz file")
    b.add_argument("--key", help="array name inside an .npz file")
    b.add_argument(
        "--input-kind",
        choices=("activations", "distance"),
        default="activations",
        help="what the array holds (default activations)",
    )
    b.add_argument("--kind", choices=KINDS, default="abs", help="dissimilarity for activations")
    b.add_argument("--backend", choices=BACKENDS, default="auto", help="persistence backend")
    b.add_argument(
        "--out", required=True, metavar="DIR", help="output directory (created; old form: FILE.npz)"
    )
    b.add_argument("--name", help="file name stem of the outputs (default: the input's)")
    b.add_argument("--formats", default="png", help="figure formats, e.g. png,pdf (default png)")
    b.add_argument("--figure", metavar="FILE", help="figure path instead (.png/.pdf/.svg)")
    b.add_argument("--title", help="figure title")
    b.add_argument("--quiet", action="store_true", help="print nothing")
    b.set_defaults(func=_cmd_barcode)

    c = sub.add_parser(
        "compare",
        help="overlay the death distributions of several barcodes",
        description="Draw the death distributions of several barcode files in one figure.",
        epilog=_COMPARE_EPILOG,
        formatter_class=fmt,
    )
    c.add_argument("barcodes", nargs="+", help="barcode .npz files (topo-neurons barcode)")
    c.add_argument("--labels", nargs="+", help="one label per file (default: file names)")
    c.add_argument("--style", choices=("ecdf", "hist"), default="ecdf", help="default ecdf")
    c.add_argument(
        "--out", required=True, metavar="DIR", help="output directory (created; old form: FIGURE)"
    )
    c.add_argument("--name", help="file name stem of the figure (default compare)")
    c.add_argument("--formats", default="png", help="figure formats, e.g. png,pdf (default png)")
    c.add_argument("--title", help="figure title")
    c.add_argument("--quiet", action="store_true", help="print nothing")
    c.set_defaults(func=_cmd_compare)
