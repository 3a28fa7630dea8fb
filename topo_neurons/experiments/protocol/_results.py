"""The results file: its columns, a checksum per row, atomic writes and a check on read."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

from ...io import atomic_write_text
from ..data import TASKS
from ..models import MODELS
from ._config import REGULARIZERS, STAGES, format_weight
from ._table import ResultRows

__all__ = [
    "CHECKSUM_FIELD",
    "RESULT_FIELDS",
    "DamagedResultsWarning",
    "ResultsFileWarning",
    "read_results",
    "row_checksum",
    "write_results",
]

#: The fields that identify a run (:meth:`RunSpec.key`): a rerun skips the runs they match.
_KEY_FIELDS = ("task", "model", "regularizer", "weight", "seed", "stage", "config_hash")
#: Columns of the results file, in order: the run's key, then what the run gave.
RESULT_FIELDS: tuple[str, ...] = (
    *_KEY_FIELDS,
    *("status", "metric", "val_metric", "test_metric", "val_loss", "best_epoch", "epochs"),
    *("seconds", "message"),
)
#: The last column of the file: :func:`row_checksum` of the row's :data:`RESULT_FIELDS`.
CHECKSUM_FIELD = "checksum"


class DamagedResultsWarning(UserWarning):
    """Rows of a results file that fail the schema, value, consistency or checksum checks, or
    copies of one run that disagree (they are left out, never tabulated, and re-run)."""


class ResultsFileWarning(UserWarning):
    """A results file read in full but not as written: rows with no checksum to verify (a file
    written before the checksum column), or exact copies of a row collapsed to one."""


def _text(value: object) -> str:
    """A field as the file holds it (``None`` empty, line ends as read back: ``\\n``)."""
    text = "" if value is None else str(value)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def row_checksum(row: dict[str, object]) -> str:
    """The checksum of a row: the first 16 hex digits of the SHA-256 of its fields.

    The fields are :data:`RESULT_FIELDS` as text, in order, encoded as a JSON list (so no two
    rows share an encoding). It tells a row changed after it was written (a hand edit, a bad
    merge) from one written by :func:`write_results`; it is not a signature: anyone can
    recompute it.

    Parameters
    ----------
    row : dict
        A row with every field of :data:`RESULT_FIELDS` (values as text or as numbers).

    Returns
    -------
    str
        16 lowercase hexadecimal digits.
    """
    fields = json.dumps([_text(row.get(f)) for f in RESULT_FIELDS], ensure_ascii=False)
    return hashlib.sha256(fields.encode("utf-8")).hexdigest()[:16]


_METRICS = ("accuracy", "r2")


def _check_row(row: dict) -> str | None:
    """Why ``row`` (a :class:`csv.DictReader` row) is damaged, or ``None`` when it is sound.

    A row with a :data:`CHECKSUM_FIELD` key is also checked against its checksum; one without
    (a file written before that column, or a row as :func:`read_results` returns it) is not.
    """
    fields = (*RESULT_FIELDS, CHECKSUM_FIELD) if CHECKSUM_FIELD in row else RESULT_FIELDS
    if None in row:
        return f"{len(fields) + len(row[None])} fields, more than the header's {len(fields)}"
    short = [f for f in fields if row.get(f) is None]
    if short:
        return (
            f"only {len(fields) - len(short)} of {len(fields)} fields "
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
    else:  # a diverged run has no metrics: a finite one contradicts the status
        for name in ("val_metric", "test_metric", "val_loss", "best_epoch"):
            if number(name) is not None:
                return (
                    f"status 'diverged' but {name} {row[name]!r} is a finite number: the row "
                    "contradicts itself"
                )
    if CHECKSUM_FIELD in row:
        if not row[CHECKSUM_FIELD]:
            return "no checksum (the row was not written by write_results)"
        if row[CHECKSUM_FIELD] != row_checksum(row):
            return (
                f"edited: its fields do not match its checksum {row[CHECKSUM_FIELD]!r} (changed "
                "after it was written)"
            )
    return None


def read_results(path: str | os.PathLike[str], *, damaged: str = "warn") -> list[dict[str, str]]:
    """Rows of a results file (empty when it does not exist), each checked on read.

    Every row is checked against the schema (:data:`RESULT_FIELDS` and the
    :data:`CHECKSUM_FIELD`, no field missing or extra), its values (known task, model,
    regulariser, stage, status and metric; numbers where numbers belong, finite, accuracies in
    [0, 1], ``best_epoch ≤ epochs``), its consistency (a ``diverged`` run has no finite
    metric) and its checksum (:func:`row_checksum`: a row changed after it was written is
    reported as *edited*). Then the rows are matched by run key (task, model, regulariser,
    weight, seed, stage, configuration hash): copies of one run that differ in any field are
    all damaged — nothing tells which one is right, and a sweep re-runs the run; exact copies
    (every field equal) carry no conflict and are collapsed to the first, with a
    :class:`ResultsFileWarning`. A damaged row is never returned, so a sweep re-runs it and a
    report never tabulates it.

    Files written before the ``stage`` column existed are read as ``stage = "select"``; files
    written before the checksum column existed are read with a :class:`ResultsFileWarning`
    that their rows cannot be verified (the other checks still apply; the next sweep that
    rewrites the file gives each row its checksum).

    Parameters
    ----------
    path : path-like
        A CSV written by :func:`write_results`.
    damaged : {"warn", "raise", "ignore"}
        What to do with damaged rows: a :class:`DamagedResultsWarning` naming each by its line
        in the file and the reason (the default), a :class:`ValueError` listing them, or
        nothing (``"ignore"`` also silences the :class:`ResultsFileWarning`).

    Returns
    -------
    ResultRows (a list of dict)
        One dict per sound run, with the keys of :data:`RESULT_FIELDS` (not the checksum),
        values as text; ``.to_frame()`` gives them as a pandas table with numeric columns.
    """
    return ResultRows(_read_results(path, damaged=damaged)[0])


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
            f"(expected {', '.join((*RESULT_FIELDS, CHECKSUM_FIELD))})"
        )
    legacy = "stage" not in fields
    unverified = CHECKSUM_FIELD not in fields
    sound: list[tuple[int, str, dict[str, str]]] = []  # (line, raw text, row)
    bad: list[tuple[int, str, str]] = []
    first = 2
    try:
        for raw in reader:
            last = reader.line_num
            if legacy:
                raw = {**raw, "stage": "select"}
            reason = _check_row(raw)
            lines_of_row = "\n".join(lines[first - 1 : last])
            if reason is None:
                sound.append((first, lines_of_row, {f: raw[f] for f in RESULT_FIELDS}))
            else:
                bad.append((first, reason, lines_of_row))
            first = last + 1
    except csv.Error as exc:
        bad.append((first, f"not CSV ({exc})", "\n".join(lines[first - 1 :])))
    rows, conflicts, copies = _match_copies(sound)
    bad = sorted(bad + conflicts)
    notes = []
    if unverified and rows:
        notes.append(
            f"no {CHECKSUM_FIELD!r} column (written before rows had checksums): its "
            f"{len(rows)} row(s) are checked but cannot be verified against edits"
        )
    if copies:
        notes.append(
            f"{len(copies)} exact copy(ies) of other rows collapsed to one (lines "
            f"{', '.join(map(str, copies))}): identical in every field, so nothing conflicts"
        )
    if bad and damaged != "ignore":
        listing = "; ".join(f"line {ln}: {why}" for ln, why, _ in bad)
        msg = (
            f"{path}: {len(bad)} damaged row(s) left out (never tabulated; a sweep re-runs "
            f"them): {listing}"
        )
        if damaged == "raise":
            raise ValueError(msg)
        warnings.warn(msg, DamagedResultsWarning, stacklevel=3)
    if notes and damaged != "ignore":
        warnings.warn(f"{path}: {'; '.join(notes)}", ResultsFileWarning, stacklevel=3)
    return rows, bad


def _match_copies(
    sound: list[tuple[int, str, dict[str, str]]],
) -> tuple[list[dict[str, str]], list[tuple[int, str, str]], list[int]]:
    """Rows of one run key: ``(rows kept, damaged conflicting copies, lines collapsed)``."""
    by_key: dict[tuple[str, ...], list[tuple[int, str, dict[str, str]]]] = {}
    for entry in sound:
        by_key.setdefault(_row_key(entry[2]), []).append(entry)
    rows: list[dict[str, str]] = []
    conflicts: list[tuple[int, str, str]] = []
    copies: list[int] = []
    for line, _, row in sound:
        group = by_key[_row_key(row)]
        if len(group) == 1:
            rows.append(row)
            continue
        differ = [f for f in RESULT_FIELDS if len({g[2][f] for g in group}) > 1]
        if not differ:  # exact copies: keep the first
            if line == group[0][0]:
                rows.append(row)
            else:
                copies.append(line)
            continue
        where = ", ".join(str(g[0]) for g in group)
        name = differ[0]
        values = " / ".join(repr(g[2][name]) for g in group)
        conflicts.append(
            (
                line,
                f"{len(group)} rows of one run (lines {where}) disagree on {', '.join(differ)} "
                f"({name} {values}): every copy is left out",
                next(raw for ln, raw, _ in group if ln == line),
            )
        )
    return rows, conflicts, copies


def write_results(path: str | os.PathLike[str], rows: Sequence[dict[str, object]]) -> Path:
    """Write ``rows`` as CSV with :data:`RESULT_FIELDS` and their checksums, atomically.

    Each row's fields are written as text (``None`` as empty) followed by
    :func:`row_checksum` of that text; :func:`read_results` verifies it. The file is replaced
    in one step (:func:`topo_neurons.io.atomic_write_text`): a failed write (a full disk)
    leaves the previous file as it was.

    Parameters
    ----------
    path : path-like
    rows : sequence of dict
        Each with every key of :data:`RESULT_FIELDS` (others are ignored, a given checksum
        too: it is recomputed).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    OSError
        The file cannot be written (its ``filename`` names ``path`` when the system did not).
    """
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([*RESULT_FIELDS, CHECKSUM_FIELD])
    for r in rows:
        text = {f: _text(r.get(f)) for f in RESULT_FIELDS}
        writer.writerow([*text.values(), row_checksum(text)])
    try:
        return atomic_write_text(path, buf.getvalue())
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def _row_key(row: dict[str, object]) -> tuple[str, ...]:
    return tuple(
        format_weight(float(row[f])) if f == "weight" else str(row[f]) for f in _KEY_FIELDS
    )
