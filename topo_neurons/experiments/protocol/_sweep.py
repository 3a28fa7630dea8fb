"""The resumable sweep: many runs, in parallel processes, the results file rewritten after each."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...io import atomic_write_text
from ._config import RunSpec, TrainConfig
from ._results import _read_results, _row_key, write_results
from ._training import _dataset_for, run_one

__all__ = ["SweepOutcome", "run_sweep"]


@dataclass
class SweepOutcome:
    """What :func:`run_sweep` did.

    Attributes
    ----------
    rows : list of dict
        Every row of the results file for this configuration and these runs (old and new).
    skipped : int
        Runs found already finished in the results file.
    ran : int
        Runs trained now.
    seconds : float
        Wall time of this call.
    """

    rows: list[dict[str, object]] = field(default_factory=list)
    skipped: int = 0
    ran: int = 0
    seconds: float = 0.0


def run_sweep(
    specs: Sequence[RunSpec],
    config: TrainConfig,
    results_path: str | os.PathLike[str],
    *,
    jobs: int = 1,
    progress: bool = True,
    desc: str = "runs",
) -> SweepOutcome:
    """Run every spec not yet in ``results_path``; rewrite that file atomically after each run.

    Parameters
    ----------
    specs : sequence of RunSpec
        From :func:`plan_runs`.
    config : TrainConfig
    results_path : path-like
        The results CSV (created when missing). Rows of other configurations or runs are kept.
        Damaged rows (see :func:`read_results`) are reported by line, copied to
        ``<results_path>.damaged`` for the record, dropped from the file and re-run.
    jobs : int
        Parallel worker processes (each with one torch thread); 1 runs in this process.
    progress : bool
        Show a tqdm progress bar on stderr.
    desc : str, default "runs"
        The bar's name (``reproduce`` names the stage: ``"seed 0: sweep"``, ``"seed 0: refits"``).

    Returns
    -------
    SweepOutcome
    """
    from tqdm.auto import tqdm

    if not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise ValueError(f"jobs must be a positive int; got {jobs!r}")
    start = time.perf_counter()
    chash = config.config_hash()
    sound, bad = _read_results(results_path)
    all_rows: list[dict[str, object]] = list(sound)
    if bad:  # keep the damaged lines for the record; the rewritten file leaves them out
        keep = Path(f"{results_path}.damaged")
        old = keep.read_text(encoding="utf-8") if keep.exists() else ""
        atomic_write_text(
            keep, old + "".join(f"# line {ln}: {why}\n{raw}\n" for ln, why, raw in bad)
        )
        write_results(results_path, all_rows)
    done = {_row_key(r) for r in all_rows}
    todo = [s for s in specs if s.key(chash) not in done]
    wanted = {s.key(chash) for s in specs}
    outcome = SweepOutcome(skipped=len(specs) - len(todo))
    # Load the data once here so that errors (missing files) surface before any work starts.
    for task in dict.fromkeys(s.task for s in todo):
        _dataset_for(task, config)

    bar = tqdm(total=len(todo), desc=desc, unit="run", disable=not progress or not todo)

    def record(row: dict[str, object]) -> None:
        all_rows.append(row)
        write_results(results_path, all_rows)
        outcome.ran += 1
        bar.set_postfix_str(
            f"{row['task']}/{row['model']} {row['regularizer']} λ={row['weight']} "
            f"seed {row['seed']}: {row['status']}",
            refresh=False,
        )
        bar.update(1)

    try:
        if jobs == 1 or len(todo) <= 1:
            for spec in todo:
                record(run_one(spec, config))
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, as_completed

            ctx = mp.get_context("spawn")
            with ProcessPoolExecutor(max_workers=int(jobs), mp_context=ctx) as pool:
                futures = [pool.submit(run_one, spec, config) for spec in todo]
                try:
                    for fut in as_completed(futures):
                        record(fut.result())
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
    finally:
        bar.close()
    outcome.rows = [r for r in all_rows if _row_key(r) in wanted]
    outcome.seconds = time.perf_counter() - start
    write_results(results_path, all_rows)
    return outcome
