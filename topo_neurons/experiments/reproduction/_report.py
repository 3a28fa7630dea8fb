"""The Markdown report of a results file (what ``results.md`` holds)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from ..protocol import REGULARIZER_LABELS, TrainConfig, _weight_label, format_weight
from ._summary import CONVERGENCE_RULE, Summary, _f, summarize

__all__ = ["markdown_report"]


def markdown_report(rows: Sequence[dict], summary: Summary | None = None) -> str:
    """The Markdown report of a results file (what ``results.md`` holds).

    Parameters
    ----------
    rows : sequence of dict
        Rows of one configuration.
    summary : Summary, optional
        Precomputed :func:`summarize` of ``rows``.

    Returns
    -------
    str
    """
    s = summary if summary is not None else summarize(rows)
    all_rows = rows
    rows = [r for r in rows if r.get("stage", "select") == "select"]
    labels = [REGULARIZER_LABELS[r] for r in s.regularizers]
    metrics = sorted({str(r["metric"]) for r in rows})
    metric = metrics[0] if len(metrics) == 1 else "metric (" + " / ".join(metrics) + " by task)"
    groups = sorted({(t, m) for t, m, _ in s.networks})
    lines = [
        f"Test {metric} at the weight chosen per network by validation {metric} "
        "(mean ± std over seeds, population std; n = number of seeds; `k missing`: on k "
        "networks every run of that regulariser diverged or is not finished yet).",
        "",
        "| task / model | n | " + " | ".join(labels) + " |",
        "|---|---|" + "---|" * len(labels),
    ]
    for t, m in groups:
        nets = [n for n in s.networks if n[:2] == (t, m)]
        cells = []
        for r in s.regularizers:
            vals = np.array([_f(s.best[n][r]["test_metric"]) for n in nets if r in s.best[n]])
            if len(vals) == 0:
                cells.append("diverged")
                continue
            cell = f"{vals.mean():.4f} ± {vals.std():.4f}"
            if len(vals) < len(nets):
                cell += f" ({len(nets) - len(vals)} missing)"
            cells.append(cell)
        lines.append(f"| {t} / {m} | {len(nets)} | " + " | ".join(cells) + " |")
    if s.average_ranks is not None:
        best_col = int(np.argmin(s.average_ranks))
        ranks = [
            (f"**{v:.2f}**" if i == best_col else f"{v:.2f}") for i, v in enumerate(s.average_ranks)
        ]
        lines.append(f"| average rank (1 = best) | {len(s.complete)} | " + " | ".join(ranks) + " |")
    lines += ["", "Chosen weight λ per network (count of seeds):", ""]
    lines += ["| task / model | " + " | ".join(labels[1:] if labels[0] == "none" else labels)]
    regs_w = [r for r in s.regularizers if r != "none"]
    lines[-1] += " |"
    lines.append("|---|" + "---|" * len(regs_w))
    for t, m in groups:
        nets = [n for n in s.networks if n[:2] == (t, m)]
        cells = []
        for r in regs_w:
            c = Counter(format_weight(_f(s.best[n][r]["weight"])) for n in nets if r in s.best[n])
            top = s.grid_top.get(r)
            cells.append(
                ", ".join(
                    f"{_weight_label(w)}{' ⚠ edge' if _f(w) == top else ''} ({k})"
                    for w, k in sorted(c.items(), key=lambda x: _f(x[0]))
                )
                or "–"
            )
        lines.append(f"| {t} / {m} | " + " | ".join(cells) + " |")
    lines += _edge_and_rule_lines(s)

    if s.friedman is not None:
        fr = s.friedman
        k, n = fr.n_methods, fr.n_datasets
        lines += [
            "",
            f"Friedman test over N = {n} networks and k = {k} regularisers: "
            f"χ²_F = {fr.chi2:.3f} (p = {fr.chi2_pvalue:.3g}); Iman–Davenport "
            f"F_F = {fr.f:.3f} (p = {fr.f_pvalue:.3g}, df = {k - 1}, {(k - 1) * (n - 1)}). "
            f"Nemenyi critical difference at α = 0.05: CD = {s.cd:.3f}.",
        ]
    elif s.average_ranks is not None:
        lines += ["", "One network only: no Friedman test (it needs at least two)."]
    lines += _refit_section(s, metric)
    incomplete = [n for n in s.networks if n not in s.complete]
    if incomplete:
        lines += [
            "",
            "Networks left out of the ranking because some regulariser has no finished, "
            "non-diverged run on them: "
            + ", ".join(f"{t}/{m}/seed {sd}" for t, m, sd in incomplete)
            + ".",
        ]

    # every weight: mean test metric over seeds (diverged runs counted separately)
    weights = sorted(
        {format_weight(_f(r["weight"])) for r in rows if r["regularizer"] != "none"}, key=float
    )
    if weights:
        lines += [
            "",
            f"Mean test {metric} of every weight (all networks; `div k/n`: k of n runs diverged):",
            "",
            "| regulariser | " + " | ".join(_weight_label(w) for w in weights) + " |",
            "|---|" + "---|" * len(weights),
        ]
        by = defaultdict(list)
        for r in rows:
            by[(r["regularizer"], format_weight(_f(r["weight"])))].append(r)
        for r in regs_w:
            cells = []
            for w in weights:
                rs = by.get((r, w), [])
                ok = [_f(x["test_metric"]) for x in rs if x["status"] == "ok"]
                cell = f"{np.mean(ok):.3f}" if ok else ""
                nd = len(rs) - len(ok)
                if nd:
                    cell = (cell + " " if cell else "") + f"div {nd}/{len(rs)}"
                cells.append(cell or "–")
            lines.append(f"| {REGULARIZER_LABELS[r]} | " + " | ".join(cells) + " |")
    n_div = sum(s.diverged.values())
    n_refit = len(all_rows) - len(rows)
    lines += ["", f"Runs: {len(rows)} in the sweep ({n_div} diverged), {n_refit} refit(s)."]
    return "\n".join(lines) + "\n"


def _edge_and_rule_lines(s: Summary) -> list[str]:
    """Choices at the largest weight of the grid; the authors' convergence rule and its effect."""
    out = []
    edge = sorted(
        {
            REGULARIZER_LABELS[r]
            for n in s.networks
            for r, row in s.best[n].items()
            if r in s.grid_top and _f(row["weight"]) == s.grid_top[r]
        }
    )
    if edge:
        k = sum(
            1
            for n in s.networks
            for r, row in s.best[n].items()
            if r in s.grid_top and _f(row["weight"]) == s.grid_top[r]
        )
        out += [
            "",
            f"⚠ edge: {k} choice(s) ({', '.join(edge)}) are the largest weight that could be "
            "chosen; the grid may be too narrow (a larger weight might do better on validation).",
        ]
    rule = "; ".join(
        f"{fam.upper()}: " + ", ".join(f"{REGULARIZER_LABELS[r]} ≤ {w:g}" for r, w in caps.items())
        for fam, caps in CONVERGENCE_RULE.items()
    )
    n_choices = sum(r != "none" for v in s.best.values() for r in v)
    changed = len(s.rule_changes)
    if s.convergence_rule:
        what = f"applied (weights above are never chosen): it changes {changed} of {n_choices}"
        what += " choices against choosing among every weight"
    else:
        what = f"not applied (protocol other than paper); applying it would change {changed}"
        what += f" of {n_choices} choices"
    out += [
        "",
        f"The authors' convergence rule ({rule}; `extract_statistics.py`) is {what}"
        + (
            ": "
            + ", ".join(
                f"{t}/{m}/seed {sd} {REGULARIZER_LABELS[r]} {_weight_label(format_weight(a))}"
                f" → {_weight_label(format_weight(b))}"
                for (t, m, sd), r, a, b in s.rule_changes
            )
            if s.rule_changes
            else ""
        )
        + ".",
    ]
    return out


def _refit_section(s: Summary, metric: str) -> list[str]:
    """The unbiased estimate beside the paper's selection, and whether the two agree."""
    if not s.refit_complete:
        return []
    nets = s.refit_complete
    regs = s.regularizers
    sel = np.array([[_f(s.best[n][r]["test_metric"]) for r in regs] for n in nets])
    fresh = s.refit_scores
    lines = [
        "",
        f"Selection-free estimate: the weight chosen on each network retrained from fresh "
        f"seed(s), `none` retrained as often; test {metric} (mean ± std over the {len(nets)} "
        "networks with every refit finished) beside the paper's selected value on the same "
        "networks, and each regulariser's difference to `none`:",
        "",
        "| estimate | " + " | ".join(REGULARIZER_LABELS[r] for r in regs) + " |",
        "|---|" + "---|" * len(regs),
        "| paper's selection (best of the grid by validation) | "
        + " | ".join(f"{c.mean():.4f} ± {c.std():.4f}" for c in sel.T)
        + " |",
        "| chosen weight, fresh seed(s) | "
        + " | ".join(f"{c.mean():.4f} ± {c.std():.4f}" for c in fresh.T)
        + " |",
    ]
    if "none" in regs:
        i0 = regs.index("none")
        d_sel = sel - sel[:, [i0]]
        d_fresh = fresh - fresh[:, [i0]]
        lines.append(
            "| difference to none, selection | "
            + " | ".join(f"{d.mean():+.4f}" for d in d_sel.T)
            + " |"
        )
        lines.append(
            "| difference to none, fresh seed(s) | "
            + " | ".join(f"{d.mean():+.4f}" for d in d_fresh.T)
            + " |"
        )
        verdicts = []
        for j, r in enumerate(regs):
            if j == i0:
                continue
            a, b = d_sel[:, j].mean(), d_fresh[:, j].mean()
            same = np.sign(a) == np.sign(b)
            verdicts.append(
                f"{REGULARIZER_LABELS[r]} {'agree' if same else 'DISAGREE'} ({a:+.4f} vs {b:+.4f})"
            )
        lines += [
            "",
            "Do the two estimates agree on the sign of the difference to none? "
            + "; ".join(verdicts)
            + ". Mean inflation of the selected value over the fresh one (selection − fresh, "
            "regularisers other than none): "
            + f"{np.mean(np.delete(sel - fresh, i0, axis=1)):+.4f}.",
        ]
    if s.refit_ranks is not None:
        lines += [
            "",
            "Average ranks of the fresh-seed estimate (1 = best): "
            + ", ".join(f"{REGULARIZER_LABELS[r]} {v:.2f}" for r, v in zip(regs, s.refit_ranks))
            + ".",
        ]
    return lines


def _protocol_text(config: TrainConfig) -> str:
    if config.protocol == "paper":
        return (
            f"Protocol **paper** (the authors' code): SGD, Nesterov momentum {config.momentum:g}, "
            f"lr {config.lr:g} × {config.lr_decay:g} every {config.lr_decay_steps} steps, batch "
            f"{config.batch_size}, at most {config.max_epochs} epochs, early stopping on the "
            f"validation loss (patience {config.patience}, best weights restored), Keras "
            "initialisation, L1/L2 over all parameters (biases included), the dropout "
            "network's term on a dropout-off pass; weights chosen per network by validation "
            "accuracy (ties: smaller weight)"
        )
    return (
        f"Protocol **adam** (this package's earlier recipe, not the paper's): Adam lr "
        f"{config.lr:g}, batch ≤ {config.batch_size}, at most {config.max_epochs} epochs, "
        f"early stopping on the validation metric (patience {config.patience}), L1/L2 on "
        "weights only; weights chosen per network by validation metric (ties: smaller weight)"
    )
