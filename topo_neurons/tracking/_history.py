"""The barcodes of several layers at several training steps, and their ``.npz`` file."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io import atomic_path, open_npz
from ..persistence import Barcode
from ..persistence._barcode import BARCODE_FIELDS

__all__ = ["BarcodeHistory"]

#: The ``format`` entry of a history file.
_FORMAT = "topo_neurons.BarcodeHistory"


def _key(field_name: str, layer: int, step: int) -> str:
    """Name of one barcode field in a history file: ``deaths_0_3`` (layer 0, 4th record)."""
    return f"{field_name}_{layer}_{step}"


@dataclass(eq=False)
class BarcodeHistory:
    """Barcodes of several layers at several training steps.

    Attributes
    ----------
    steps : list of int
        The recorded training steps, in recording order.
    barcodes : dict of str to list of Barcode
        For each layer name (and ``"network"`` if tracked), one barcode per step.

    Examples
    --------
    >>> import numpy as np
    >>> from topo_neurons import Barcode, BarcodeHistory
    >>> h = BarcodeHistory()
    >>> h.append(0, {"fc": Barcode(np.array([0.1, 0.4]), np.array([[0, 1], [1, 2]]), 3)})
    >>> h.append(10, {"fc": Barcode(np.array([0.3, 0.5]), np.array([[0, 2], [1, 2]]), 3)})
    >>> h.quantiles("fc", [0.5])
    array([[0.25],
           [0.4 ]])
    """

    steps: list[int] = field(default_factory=list)
    barcodes: dict[str, list[Barcode]] = field(default_factory=dict)

    @property
    def layers(self) -> tuple[str, ...]:
        """Recorded layer names, in order."""
        return tuple(self.barcodes)

    def __len__(self) -> int:
        return len(self.steps)

    def __repr__(self) -> str:
        return f"BarcodeHistory({len(self.steps)} steps, layers={list(self.layers)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BarcodeHistory):
            return NotImplemented
        return self.steps == other.steps and self.barcodes == other.barcodes

    __hash__ = None  # type: ignore[assignment]

    def append(self, step: int, barcodes: Mapping[str, Barcode]) -> None:
        """Add the barcodes of one step; every step must give the same layers."""
        if self.steps and set(barcodes) != set(self.barcodes):
            raise ValueError(
                f"step {step} gives layers {list(barcodes)}; earlier steps gave {list(self.layers)}"
            )
        for name, bc in barcodes.items():
            if not isinstance(bc, Barcode):
                raise TypeError(f"barcode of layer {name!r} is a {type(bc).__name__}, not Barcode")
        self.steps.append(int(step))
        for name in barcodes if not self.barcodes else self.barcodes:
            self.barcodes.setdefault(name, []).append(barcodes[name])

    def _layer(self, layer: str | None) -> str:
        if not self.barcodes:
            raise ValueError("the history is empty: nothing was recorded yet")
        name = self.layers[0] if layer is None else layer
        if name not in self.barcodes:
            raise ValueError(f"layer {name!r} was not tracked; tracked layers are {self.layers}")
        return name

    def deaths(self, layer: str | None = None) -> list[np.ndarray]:
        """The deaths of ``layer`` (default: the first) at each step, float64 arrays."""
        return [np.asarray(bc.deaths, np.float64) for bc in self.barcodes[self._layer(layer)]]

    def quantiles(
        self, layer: str | None = None, q: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95)
    ) -> np.ndarray:
        """Death quantiles of ``layer`` at each step.

        Parameters
        ----------
        layer : str, optional
            Tracked layer (default: the first).
        q : sequence of float in [0, 1]

        Returns
        -------
        numpy.ndarray of float64, shape (n_steps, len(q))
            ``np.quantile(deaths, q)`` (linear interpolation); NaN rows for one-neuron layers.
        """
        qs = np.asarray(q, dtype=np.float64).reshape(-1)
        rows = [
            np.quantile(d, qs) if d.size else np.full(qs.size, np.nan) for d in self.deaths(layer)
        ]
        return np.array(rows, dtype=np.float64).reshape(len(rows), qs.size)

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the history to one ``.npz`` file atomically (no pickles); returns the path.

        Besides ``format``, ``steps`` and ``layers``, the file holds each barcode's arrays
        (:meth:`Barcode.to_arrays <topo_neurons.Barcode.to_arrays>`, every field) as
        ``{field}_{layer}_{record}``, e.g. ``deaths_0_3``.
        """
        target = Path(path)
        if target.suffix != ".npz":
            raise ValueError(f"history files end in .npz; got {str(target)!r}")
        arrays: dict[str, np.ndarray] = {
            "format": np.str_(_FORMAT),
            "steps": np.asarray(self.steps, dtype=np.int64),
            "layers": np.asarray(self.layers, dtype=np.str_),
        }
        for i, name in enumerate(self.layers):
            for k, bc in enumerate(self.barcodes[name]):
                arrays.update({_key(f, i, k): a for f, a in bc.to_arrays().items()})
        with atomic_path(target) as tmp:
            np.savez(tmp, **arrays)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BarcodeHistory:
        """Read a history written by :meth:`save`.

        Barcodes saved without ``backend`` (files written before it was stored) read as
        ``"native"``, the backend the tracker uses.

        Raises
        ------
        FileNotFoundError
            No file at ``path``.
        ValueError
            The file is not a history file: not a readable ``.npz`` (corrupt or truncated), a
            single array, missing or damaged arrays. The message names the file.
        """
        target = Path(path)
        if not target.is_file():
            raise FileNotFoundError(f"no history file at {str(target)!r}")
        loaded = open_npz(
            target,
            "a BarcodeHistory file",
            "(a .npy file), not the .npz written by BarcodeHistory.save",
        )
        with loaded as f:
            if "format" not in f.files or str(f["format"]) != _FORMAT:
                raise ValueError(f"{str(target)!r} is not a BarcodeHistory file")
            try:
                steps = [int(s) for s in f["steps"]]
                layers = [str(x) for x in f["layers"]]
                barcodes = {
                    name: [
                        Barcode.from_dict(
                            {
                                field_name: f[key]
                                for field_name in BARCODE_FIELDS
                                if (key := _key(field_name, i, k)) in f.files
                            }
                        )
                        for k in range(len(steps))
                    ]
                    for i, name in enumerate(layers)
                }
            except (OSError, EOFError, KeyError, TypeError, ValueError, zipfile.BadZipFile) as exc:
                raise ValueError(
                    f"{str(target)!r} is not a valid BarcodeHistory file: an array is missing "
                    f"or damaged ({type(exc).__name__}: {exc})"
                ) from None
        return cls(steps=steps, barcodes=barcodes)
