"""Weight selection per network, the refits and the rank statistics of a results file."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..protocol import REFIT_SEED_OFFSET, REGULARIZERS, RunSpec, format_weight
from ..stats import average_ranks, critical_difference, friedman_test

__all__ = [
    "CONVERGENCE_RULE",
    "Summary",
    "converged_weight",
    "refit_specs",
    "select_best",
    "summarize",
]

#: The weights the authors' statistics keep, by task family and regulariser
#: (``extract_statistics.py`` of rballeba/DecorrelatingNeuronsUsingPersistence, commit 9769351:
#: ``regularisers_MNIST`` lists L1 (``l_one``) up to 5 and L2 (``l_two``) up to 10,
#: ``regularisers_PGDL`` T1 (``imp``) up to 0.1; larger weights did not converge). Under
#: ``--protocol paper`` a larger weight is never chosen.
CONVERGENCE_RULE: dict[str, dict[str, float]] = {
    "mnist": {"l1": 5.0, "l2": 10.0},
    "pgdl": {"t1": 0.1},
}


def converged_weight(task: str, regularizer: str, weight: float) -> bool:
    """Whether the authors' statistics keep ``weight`` (:data:`CONVERGENCE_RULE`)."""
    family = next((f for f in CONVERGENCE_RULE if str(task).startswith(f)), None)
    cap = CONVERGENCE_RULE.get(family, {}).get(str(regularizer)) if family else None
    return cap is None or float(weight) <= cap * (1 + 1e-9)


def _f(x: object) -> float:
    return float(x) if x not in ("", None) else math.nan


def select_best(
    rows: Sequence[dict], convergence_rule: bool = False
) -> dict[tuple[str, str, int], dict[str, dict]]:
    """Choose each regulariser's weight per network by validation metric (the paper's rule).

    Per network (task, model, seed) and regulariser, the finished (``status == "ok"``) row with
    the highest validation metric wins; ties go to the smaller weight. Diverged runs are never
    chosen; refit rows (``stage == "refit"``) are not candidates.

    Parameters
    ----------
    rows : sequence of dict
        Rows of a results file (one configuration).
    convergence_rule : bool, default False
        Keep only the weights the authors' statistics keep (:data:`CONVERGENCE_RULE`).

    Returns
    -------
    dict
        ``{(task, model, seed): {regularizer: row}}``; a regulariser all of whose runs on a
        network diverged is absent from that network's dict.
    """
    best: dict[tuple[str, str, int], dict[str, dict]] = defaultdict(dict)
    for r in rows:
        if r.get("stage", "select") != "select":
            continue
        net = (str(r["task"]), str(r["model"]), int(r["seed"]))
        best.setdefault(net, {})
        if r["status"] != "ok":
            continue
        if convergence_rule and not converged_weight(r["task"], r["regularizer"], _f(r["weight"])):
            continue
        key = (-_f(r["val_metric"]), _f(r["weight"]))
        cur = best[net].get(r["regularizer"])
        if cur is None or key < (-_f(cur["val_metric"]), _f(cur["weight"])):
            best[net][r["regularizer"]] = r
    return dict(best)


@dataclass
class Summary:
    """Everything the report says, computed from a results file.

    Attributes
    ----------
    regularizers : list of str
        Columns, in :data:`REGULARIZERS` order.
    networks : list of (task, model, seed)
        Every network in the results.
    complete : list of (task, model, seed)
        Networks where every regulariser has a chosen run (the Friedman blocks).
    scores : numpy.ndarray, shape (len(complete), len(regularizers))
        Test metric at the chosen weight.
    average_ranks : numpy.ndarray, shape (len(regularizers),) or None
    friedman : FriedmanResult or None
        ``None`` with fewer than 2 complete networks.
    cd : float or None
        Nemenyi critical difference at α = 0.05.
    best : dict
        Output of :func:`select_best`.
    diverged : Counter
        Diverged runs per (regularizer, weight).
    refit : dict
        ``{(task, model, seed): {regularizer: [test metric of each finished refit]}}``: the
        chosen weight (``λ = 0`` for ``none``) retrained from fresh seeds.
    refit_complete : list of (task, model, seed)
        Networks where every regulariser has at least one finished refit.
    refit_scores : numpy.ndarray, shape (len(refit_complete), len(regularizers))
        Mean refit test metric per network and regulariser.
    refit_ranks : numpy.ndarray or None
        Average ranks of ``refit_scores``.
    convergence_rule : bool
        Whether the authors' convergence rule (:data:`CONVERGENCE_RULE`) chose the weights.
    rule_changes : list of (network, regularizer, weight without the rule, weight with it)
        The choices the rule changes (measured whether or not it is applied).
    grid_top : dict
        ``{regularizer: largest weight that could be chosen}``: a choice equal to it lies at
        the edge of the grid.
    """

    regularizers: list[str]
    networks: list[tuple[str, str, int]]
    complete: list[tuple[str, str, int]]
    scores: np.ndarray
    average_ranks: np.ndarray | None
    friedman: object | None
    cd: float | None
    best: dict = field(repr=False)
    diverged: Counter = field(default_factory=Counter)
    refit: dict = field(default_factory=dict, repr=False)
    refit_complete: list = field(default_factory=list)
    refit_scores: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    refit_ranks: np.ndarray | None = None
    convergence_rule: bool = False
    rule_changes: list = field(default_factory=list)
    grid_top: dict = field(default_factory=dict)


def summarize(
    rows: Sequence[dict], alpha: float = 0.05, *, convergence_rule: bool = False
) -> Summary:
    """Weight selection, scores per network and the Friedman / Nemenyi statistics.

    Parameters
    ----------
    rows : sequence of dict
        Rows of one configuration (e.g. :func:`~topo_neurons.experiments.protocol.read_results`
        filtered by ``config_hash``).
    alpha : float
        Significance level of the critical difference.
    convergence_rule : bool, default False
        Choose among the weights the authors' statistics keep only (``reproduce`` does so
        under ``--protocol paper``); the choices it changes are measured either way.

    Returns
    -------
    Summary
    """
    if not rows:
        raise ValueError("no results to summarise (the results file has no rows)")
    hashes = sorted({str(r["config_hash"]) for r in rows})
    if len(hashes) > 1:
        raise ValueError(
            f"rows of {len(hashes)} configurations ({', '.join(hashes)}) cannot be summarised "
            "together; filter by config_hash first"
        )
    refit_rows = [r for r in rows if r.get("stage", "select") == "refit"]
    rows = [r for r in rows if r.get("stage", "select") == "select"]
    if not rows:
        raise ValueError("no sweep (stage 'select') rows to summarise; refits alone cannot be")
    present = {str(r["regularizer"]) for r in rows}
    regs = [r for r in REGULARIZERS if r in present]
    best = select_best(rows, convergence_rule)
    other = select_best(rows, not convergence_rule)
    rule_changes = []
    for net in sorted(best):
        for reg in regs:
            a, b = other.get(net, {}).get(reg), best[net].get(reg)
            wa = _f(a["weight"]) if a else math.nan
            wb = _f(b["weight"]) if b else math.nan
            if format_weight(wa) != format_weight(wb):
                rule_changes.append((net, reg, *((wa, wb) if convergence_rule else (wb, wa))))
    grid_top = {}
    for r in rows:
        w, reg = _f(r["weight"]), str(r["regularizer"])
        if reg != "none" and (not convergence_rule or converged_weight(r["task"], reg, w)):
            grid_top[reg] = max(grid_top.get(reg, w), w)
    networks = sorted(best)
    complete = [n for n in networks if all(r in best[n] for r in regs)]
    scores = np.array(
        [[_f(best[n][r]["test_metric"]) for r in regs] for n in complete], dtype=np.float64
    ).reshape(len(complete), len(regs))
    friedman = avg = cd = None
    if len(complete) >= 1 and len(regs) >= 2:
        avg = average_ranks(scores)
        if len(complete) >= 2:
            friedman = friedman_test(scores)
            cd = critical_difference(len(regs), len(complete), alpha)
    diverged = Counter(
        (str(r["regularizer"]), format_weight(_f(r["weight"])))
        for r in rows
        if r["status"] == "diverged"
    )
    refit: dict = defaultdict(lambda: defaultdict(list))
    for r in refit_rows:
        net = (str(r["task"]), str(r["model"]), int(r["seed"]) % REFIT_SEED_OFFSET)
        chosen = best.get(net, {}).get(str(r["regularizer"]))
        # only refits of the weight chosen now count (a rerun with more weights may choose anew)
        if chosen is None or format_weight(_f(chosen["weight"])) != format_weight(_f(r["weight"])):
            continue
        if r["status"] == "ok":
            refit[net][str(r["regularizer"])].append(_f(r["test_metric"]))
    refit = {n: dict(v) for n, v in refit.items()}
    refit_complete = [n for n in networks if all(refit.get(n, {}).get(r) for r in regs)]
    refit_scores = np.array(
        [[np.mean(refit[n][r]) for r in regs] for n in refit_complete], dtype=np.float64
    ).reshape(len(refit_complete), len(regs))
    refit_ranks = None
    if refit_complete and len(regs) >= 2:
        refit_ranks = average_ranks(refit_scores)
    return Summary(
        regs,
        networks,
        complete,
        scores,
        avg,
        friedman,
        cd,
        best,
        diverged,
        refit,
        refit_complete,
        refit_scores,
        refit_ranks,
        convergence_rule,
        rule_changes,
        grid_top,
    )


def refit_specs(
    rows: Sequence[dict], refits: int = 1, convergence_rule: bool = False
) -> list[RunSpec]:
    """Runs that retrain each chosen weight (and ``none``) from ``refits`` fresh seeds.

    The paper's selection reports, for each regulariser, the best validation accuracy of
    ten trained networks (one per weight) while ``none`` gets one, and the validation set
    also drives early stopping: the selected test accuracy may be inflated. Retraining the
    chosen weight from a seed that took no part in the choice (and ``none`` as often) gives an
    estimate the choice does not inflate. Refit ``k`` (``0 … refits − 1``) of network seed
    ``s`` trains from seed ``s + (k + 1) · REFIT_SEED_OFFSET``.

    Parameters
    ----------
    rows : sequence of dict
        Rows of one configuration (sweep rows choose the weights).
    refits : int
        Fresh seeds per chosen weight.
    convergence_rule : bool, default False
        Choose as :func:`select_best` with the authors' convergence rule.

    Returns
    -------
    list of RunSpec
        ``stage="refit"`` specs, network by network.
    """
    if not isinstance(refits, (int, np.integer)) or refits < 0:
        raise ValueError(f"refits must be a non-negative int; got {refits!r}")
    best = select_best(rows, convergence_rule)
    specs = []
    for (task, model, seed), chosen in sorted(best.items()):
        for reg in REGULARIZERS:
            if reg not in chosen:
                continue
            w = _f(chosen[reg]["weight"])
            for k in range(int(refits)):
                fresh = seed + (k + 1) * REFIT_SEED_OFFSET
                specs.append(RunSpec(task, model, reg, w, fresh, stage="refit"))
    return specs
