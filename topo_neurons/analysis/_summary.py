"""The summary of a report entry: death statistics and dead neurons, derived and checked.

Everything a :class:`~topo_neurons.LayerRedundancy` stores that its barcode determines is
derived from the barcode when a report is read back (:meth:`RedundancyReport.from_json`), and a
stored value that contradicts it is refused, so that a hand-edited or damaged file never prints
numbers its own barcode does not give.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..persistence import Barcode

__all__ = ["SUMMARY_KEYS", "checked_summary", "death_summary", "entry_fields", "need"]

#: Keys of :attr:`LayerRedundancy.summary`, in order: the death statistics, then the number of
#: dead (constant) neurons beside them.
SUMMARY_KEYS: tuple[str, ...] = (
    "min",
    "q05",
    "q25",
    "q50",
    "q75",
    "q95",
    "max",
    "mean",
    "std",
    "total_persistence",
    "dead_neurons",
)
_QUANTILES = {"q05": 0.05, "q25": 0.25, "q50": 0.5, "q75": 0.75, "q95": 0.95}


def death_summary(deaths: np.ndarray, dead_neurons: int = 0) -> dict[str, float]:
    """Statistics of a barcode's deaths and the number of dead neurons (keys :data:`SUMMARY_KEYS`).

    Parameters
    ----------
    deaths : numpy.ndarray, shape (n - 1,)
        The finite deaths of a barcode.
    dead_neurons : int, default 0
        Constant (dead) neurons among the barcode's points, stored as ``"dead_neurons"``.

    Returns
    -------
    dict of str to float
        ``min``, quantiles ``q05`` … ``q95``, ``max``, ``mean``, ``std`` (population, ddof 0)
        and ``total_persistence`` (sum of deaths), NaN when there are no deaths (sum 0);
        ``dead_neurons`` (an int).
    """
    d = np.asarray(deaths, dtype=np.float64)
    if d.size == 0:
        out = dict.fromkeys(SUMMARY_KEYS, float("nan"))
        out["total_persistence"] = 0.0
    else:
        out = {"min": float(d.min())}
        for key, q in _QUANTILES.items():
            out[key] = float(np.quantile(d, q))
        out["max"] = float(d.max())
        out["mean"] = float(d.mean())
        out["std"] = float(d.std())
        out["total_persistence"] = float(d.sum())
    out["dead_neurons"] = int(dead_neurons)
    return {k: out[k] for k in SUMMARY_KEYS}


def checked_summary(
    where: str,
    barcode: Barcode,
    stored_summary: Mapping[str, Any],
    *,
    labels: Sequence[str],
    point_layers: Sequence[str],
    constant_neurons: Sequence[str],
    n_neurons: int,
    n_clusters: Mapping[float, int],
    effective_neurons: Mapping[float, int],
    cross_layer_edges: int,
) -> dict[str, float]:
    """The summary derived from ``barcode``, after checking what a file stores against it.

    Parameters
    ----------
    where : str
        The entry, for the messages (``"entry 'fc1'"``).
    barcode : Barcode
        The entry's barcode (``n`` points).
    stored_summary : mapping of str to float or None
        The summary the file stores; keys it lacks are derived (an older file without
        ``dead_neurons``).
    labels, point_layers, constant_neurons, n_neurons
        The entry's other stored fields (see :class:`~topo_neurons.LayerRedundancy`) ...
    n_clusters, effective_neurons, cross_layer_edges
        ... each checked against the barcode.

    Returns
    -------
    dict of str to float
        :func:`death_summary` of the barcode's deaths and ``len(constant_neurons)``.

    Raises
    ------
    ValueError
        A stored value contradicts the barcode: the message names the entry, the field, the
        stored and the derived value. Also an unknown summary key, or a constant neuron that
        is not among the labels.
    """
    constant = tuple(constant_neurons)
    n = barcode.n_points
    _agree(where, "n_neurons", n_neurons, n)
    _agree(where, "number of labels", len(labels), n)
    _agree(where, "number of point_layers", len(point_layers), n)
    unknown = sorted(set(constant) - set(labels))
    if unknown:
        raise ValueError(f"{where}: constant_neurons {unknown} are not among its labels")
    summary = death_summary(barcode.deaths, len(constant))
    extra = sorted(set(stored_summary) - set(summary))
    if extra:
        raise ValueError(f"{where}: unknown summary key(s) {extra}; valid keys are {SUMMARY_KEYS}")
    for key, value in stored_summary.items():
        stored = float("nan") if value is None else _number(value, f"{where}: summary")
        _agree(where, f"summary[{key!r}]", stored, summary[key])
    for t in n_clusters.keys() | effective_neurons.keys():
        sizes = np.bincount(barcode.clusters(t))
        if t in effective_neurons:
            _agree(where, f"effective_neurons[{t!r}]", effective_neurons[t], int(sizes.size))
        if t in n_clusters:
            _agree(where, f"n_clusters[{t!r}]", n_clusters[t], int(np.sum(sizes >= 2)))
    lay = np.asarray(list(point_layers), dtype=object)
    e = barcode.edges
    _agree(
        where,
        "cross_layer_edges",
        cross_layer_edges,
        int(np.count_nonzero(lay[e[:, 0]] != lay[e[:, 1]])) if len(barcode) else 0,
    )
    return summary


def entry_fields(d: object, where: str = "entry") -> dict[str, Any]:
    """The fields of a report entry read from its JSON dictionary, checked against its barcode.

    Returns the keyword arguments of :class:`~topo_neurons.LayerRedundancy`, the summary
    derived by :func:`checked_summary`, ``redundant_pairs`` as ``(a, b, rho, death)`` tuples.

    Raises
    ------
    ValueError
        A missing key or a value of the wrong type (named, with the entry); a stored value that
        contradicts the barcode (see :func:`checked_summary`).
    """
    name = str(need(d, "name", where))
    where = f"entry {name!r}"
    try:
        out: dict[str, Any] = {
            "name": name,
            "n_neurons": int(need(d, "n_neurons", where)),
            "total_neurons": int(need(d, "total_neurons", where)),
            "labels": tuple(str(x) for x in need(d, "labels", where)),
            "point_layers": tuple(str(x) for x in need(d, "point_layers", where)),
            "constant_neurons": tuple(str(x) for x in need(d, "constant_neurons", where)),
            "barcode": Barcode.from_dict(need(d, "barcode", where)),
            "redundant_pairs": [
                (str(p["a"]), str(p["b"]), float(p["rho"]), float(p["death"]))
                for p in need(d, "redundant_pairs", where)
            ],
            "n_clusters": {float(t): int(c) for t, c in need(d, "n_clusters", where).items()},
            "effective_neurons": {
                float(t): int(c) for t, c in need(d, "effective_neurons", where).items()
            },
            "cross_layer_edges": int(need(d, "cross_layer_edges", where)),
        }
        stored_summary = dict(need(d, "summary", where))
    except KeyError as exc:  # a redundant pair without a, b, rho or death
        raise ValueError(f"{where}: a redundant pair has no {exc.args[0]!r} key") from None
    except (TypeError, AttributeError) as exc:
        raise ValueError(f"{where}: invalid value ({type(exc).__name__}: {exc})") from None
    except ValueError as exc:
        if "key (missing" in str(exc):
            raise
        raise ValueError(f"{where}: invalid value ({exc})") from None
    out["summary"] = checked_summary(
        where,
        out["barcode"],
        stored_summary,
        **{k: out[k] for k in _CHECKED},
    )
    return out


_CHECKED = (
    "labels",
    "point_layers",
    "constant_neurons",
    "n_neurons",
    "n_clusters",
    "effective_neurons",
    "cross_layer_edges",
)


def need(d: object, key: str, where: str) -> Any:
    """``d[key]``, or a ``ValueError`` naming the missing key and where it is missing."""
    if not isinstance(d, Mapping):
        raise ValueError(f"{where} must be a JSON object; got {type(d).__name__}")
    if key not in d:
        raise ValueError(f"{where} has no {key!r} key (missing from the report file)")
    return d[key]


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: expected a number; got {value!r}")
    return float(value)


def _agree(where: str, what: str, stored: float, derived: float) -> None:
    """Raise if a stored value contradicts the one derived from the barcode (rounding allowed)."""
    if np.isnan(stored) and np.isnan(derived):
        return
    if not np.isclose(stored, derived, rtol=1e-9, atol=1e-12):
        raise ValueError(
            f"{where}: {what} is {stored!r} in the file but its barcode gives {derived!r}; "
            f"the file was edited or damaged"
        )
