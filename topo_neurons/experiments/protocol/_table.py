"""The rows of a results file as a list that also gives a pandas table: :class:`ResultRows`."""

from __future__ import annotations

from typing import Any

__all__ = ["FLOAT_FIELDS", "INT_FIELDS", "ResultRows"]

#: Columns of ``results.csv`` read as numbers by :meth:`ResultRows.to_frame` (empty: missing).
FLOAT_FIELDS: tuple[str, ...] = (
    "weight",
    "val_metric",
    "test_metric",
    "val_loss",
    "seconds",
)
#: Columns read as (nullable) integers.
INT_FIELDS: tuple[str, ...] = ("seed", "best_epoch", "epochs")


class ResultRows(list):
    """What :func:`~topo_neurons.experiments.read_results` returns: a ``list`` of row dicts
    (every value as text, as in the file) with :meth:`to_frame`."""

    def to_frame(self) -> Any:
        """The rows as a pandas ``DataFrame`` (``pip install topo_neurons[pandas]``).

        One row per run, the columns of the file in order; :data:`FLOAT_FIELDS` as float64
        and :data:`INT_FIELDS` as pandas' nullable ``Int64`` (an empty field, e.g. the metrics
        of a diverged run, is missing: NaN / ``<NA>``); the other columns stay text.
        """
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError(
                f"read_results(...).to_frame() needs pandas ({exc}); install it with: "
                "pip install topo_neurons[pandas]"
            ) from exc
        frame = pd.DataFrame(list(self))
        for name in FLOAT_FIELDS + INT_FIELDS:
            if name in frame.columns:
                values = pd.to_numeric(frame[name].replace("", None), errors="raise")
                frame[name] = values.astype("Int64" if name in INT_FIELDS else "float64")
        return frame
