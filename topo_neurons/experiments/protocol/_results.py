"""The results file: its columns, atomic writes and a check of every row on read."""

from __future__ import annotations

import csv
import io
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

from ...io import atomic_write_text
from ..data import TASKS
from ..models import MODELS
from ._config import REGULARIZERS, STAGES, format_weight

__all__ = ["RESULT_FIELDS", "DamagedResultsWarning", "read_results", "write_results"]

#: The fields that identify a run (:meth:`RunSpec.key`): a rerun skips the runs they match.
_KEY_FIELDS = ("task", "model", "regularizer", "weight", "seed", "stage", "config_hash")
#: Columns of the results file, in order: the run's key, then what the run gave.
RESULT_FIELDS: tuple[str, ...] = (
    *_KEY_FIELDS,
    *("status", "metric", "val_metric", "test_metric", "val_loss", "best_epoch", "epochs"),
    *("seconds", "message"),
)


class DamagedResultsWarning(UserWarning):
    """Rows of a results file that fail the schema or value checks (they are re-run)."""


_METRICS = ("accuracy", "r2")


def _check_row(row: dict) -> str | None:
    """Why ``row`` (a :class:`csv.DictReader` row) is damaged, or ``None`` when it is sound."""
    if None in row:
        return f"{len(RESULT_FIELDS) + len(row[None])} fields, more than the header's"
    short = [f for f in RESULT_FIELDS if row.get(f) is None]
    if short:
        return (
            f"only {len(RESULT_FIELDS) - len(short)} of {len(RESULT_FIELDS)} fields "
            f"(the row was cut before {short[0]!r})"
        )
    for name, valid in (
        ("task", TASKS),
        ("model", tuple(MODELS)),
        ("regularizer", REGULARIZERS),
        ("stage", STAGES),
        ("status", ("ok", "diverged")),
        ("metric", _METRICS),
    ):
        if row[name] not in valid:
            return f"{name} {row[name]!r} is not one of {', '.join(valid)}"
    if len(row["config_hash"]) != 10 or any(
        c not in "0123456789abcdef" for c in row["config_hash"]
    ):
        return f"config_hash {row['config_hash']!r} is not 10 hexadecimal digits"

    def number(name: str, kind: type = float) -> float | None:
        try:
            v = kind(row[name])
        except ValueError:
            return None
        return v if math.isfinite(v) else None

    weight = number("weight")
    if weight is None or weight < 0 or (weight == 0) != (row["regularizer"] == "none"):
        return f"weight {row['weight']!r} is not valid for regulariser {row['regularizer']!r}"
    for name in ("seed", "epochs"):
        v = number(name, int)
        if v is None or v < 0:
            return f"{name} {row[name]!r} is not a non-negative integer"
    sec = number("seconds")
    if sec is None or sec < 0:
        return f"seconds {row['seconds']!r} is not a non-negative number"
    if row["status"] == "ok":
        for name in ("val_metric", "test_metric", "val_loss"):
            v = number(name)
            if v is None:
                return f"{name} {row[name]!r} is not a finite number in a finished run"
            if row["metric"] == "accuracy" and name != "val_loss" and not 0 <= v <= 1:
                return f"{name} {row[name]!r} is not an accuracy in [0, 1]"
        be = number("best_epoch", int)
        if be is None or not 0 < be <= int(row["epochs"]):
            return f"best_epoch {row['best_epoch']!r} is not in 1 … epochs ({row['epochs']})"
    return None


def read_results(path: str | os.PathLike[str], *, damaged: str = "warn") -> list[dict[str, str]]:
    """Rows of a results file (empty when it does not exist), each checked on read.

    Every row is checked against the schema (:data:`RESULT_FIELDS`, no field missing or extra)
    and its values (known task, model, regulariser, stage, status and metric; numbers where
    numbers belong, finite, accuracies in [0, 1], ``best_epoch ≤ epochs``). A row that fails
    (e.g. cut by a crash mid-write, or edited by hand) is *damaged*: it is never returned, so a
    sweep re-runs it and a report never tabulates it. Files written before the ``stage`` column
    existed are read as ``stage = "select"``.

    Parameters
    ----------
    path : path-like
        A CSV written by :func:`write_results`.
    damaged : {"warn", "raise", "ignore"}
        What to do with damaged rows: a :class:`DamagedResultsWarning` naming each by its line
        in the file and the reason (the default), a :class:`ValueError` at the first one, or
        nothing.

    Returns
    -------
    list of dict
        One dict per sound row, values as text.
    """
    return _read_results(path, damaged=damaged)[0]


def _read_results(
    path: str | os.PathLike[str], *, damaged: str = "warn"
) -> tuple[list[dict[str, str]], list[tuple[int, str, str]]]:
    """``(sound rows, [(line, reason, raw text)] of damaged rows)``."""
    if damaged not in ("warn", "raise", "ignore"):
        raise ValueError(f"damaged={damaged!r} is not valid; valid are 'warn', 'raise', 'ignore'")
    path = Path(path)
    if not path.exists():
        return [], []
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    reader = csv.DictReader(io.StringIO(text, newline=""))
    fields = list(reader.fieldnames or [])
    required = [f for f in RESULT_FIELDS if f != "stage"]
    missing = [f for f in required if f not in fields]
    if missing:
        raise ValueError(
            f"{path} is not a results file: missing column(s) {', '.join(missing)} "
            f"(expected {', '.join(RESULT_FIELDS)})"
        )
    legacy = "stage" not in fields
    rows: list[dict[str, str]] = []
    bad: list[tuple[int, str, str]] = []
    first = 2
    try:
        for raw in reader:
            last = reader.line_num
            if legacy:
                raw = {**raw, "stage": "select"}
            reason = _check_row(raw)
            if reason is None:
                rows.append({f: raw[f] for f in RESULT_FIELDS})
            else:
                bad.append((first, reason, "\n".join(lines[first - 1 : last])))
            first = last + 1
    except csv.Error as exc:
        bad.append((first, f"not CSV ({exc})", "\n".join(lines[first - 1 :])))
    if bad and damaged != "ignore":
        listing = "; ".join(f"line {ln}: {why}" for ln, why, _ in bad)
        msg = (
            f"{path}: {len(bad)} damaged row(s) left out (never tabulated; a sweep re-runs "
            f"them): {listing}"
        )
        if damaged == "raise":
            raise ValueError(msg)
        warnings.warn(msg, DamagedResultsWarning, stacklevel=3)
    return rows, bad


def write_results(path: str | os.PathLike[str], rows: Sequence[dict[str, object]]) -> Path:
    """Write ``rows`` as CSV with :data:`RESULT_FIELDS`, atomically.

    Parameters
    ----------
    path : path-like
    rows : sequence of dict

    Returns
    -------
    pathlib.Path
    """
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(RESULT_FIELDS), extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow(r)
    return atomic_write_text(path, buf.getvalue())


def _row_key(row: dict[str, object]) -> tuple[str, ...]:
    return tuple(
        format_weight(float(row[f])) if f == "weight" else str(row[f]) for f in _KEY_FIELDS
    )
