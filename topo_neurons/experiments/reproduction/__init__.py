"""``topo-neurons reproduce``: sweep, weight selection, table, statistics and figures.

:func:`reproduce` runs (or resumes) the sweep of :mod:`~topo_neurons.experiments.protocol`
and writes into one directory:

* ``results.csv``: every run (see :data:`~topo_neurons.experiments.protocol.RESULT_FIELDS`);
* ``results.md``: the protocol, the test metric (mean ± std over seeds) of each regulariser at
  the weight chosen per network by validation accuracy (the paper's selection; under the
  paper's protocol among the weights the authors' convergence rule keeps,
  ``CONVERGENCE_RULE``, with the choices it changes), the chosen weights (``⚠ edge`` where a
  choice is the largest weight of the grid), the same weights retrained from fresh seeds (an
  estimate the selection does not inflate, beside "none" retrained as often), the test metric
  of every weight, the diverged runs, the average ranks with the Friedman / Iman–Davenport
  tests and the Nemenyi critical difference;
* ``cd_diagram.pdf`` / ``.png``: the critical-difference diagram of the regularisers;
* ``barcodes.pdf`` / ``.png``: the 0-dimensional barcodes of one network trained with no
  regulariser, T1 and T2 (each at its chosen weight) on the training set, drawn by
  :func:`~topo_neurons.plot_barcode` in :func:`~topo_neurons.paper_style` (Okabe–Ito colours):
  above 300 bars as sorted-death profiles on a shared axis with a strip of the layers' shares,
  the infinite bar, bars at ``d = 1`` (dead neurons) marked; then their death distributions.

PDFs embed TrueType (Type 42) fonts. The directory is proven writable before any training
and locked while :func:`reproduce` runs (``reproduce.lock``, which stays; a second call on the
same directory is refused at once, naming the process that holds it).

The analysis half (:func:`select_best`, :func:`summarize`, :func:`markdown_report`) works on
any results file, so a notebook can rebuild the table and figures from a committed CSV.
"""

from .._figures import layer_display_names, plot_barcode_networks, plot_barcode_profiles
from ._presets import ADAM_FULL, ADAM_QUICK, FULL, PRESETS, QUICK, Preset
from ._report import markdown_report
from ._reproduce import (
    ReproduceResult,
    plot_barcode_comparison,
    reproduce,
    train_barcode_networks,
)
from ._summary import Summary, refit_specs, select_best, summarize

__all__ = [
    "ADAM_FULL",
    "ADAM_QUICK",
    "FULL",
    "PRESETS",
    "QUICK",
    "Preset",
    "ReproduceResult",
    "Summary",
    "layer_display_names",
    "markdown_report",
    "plot_barcode_comparison",
    "plot_barcode_networks",
    "plot_barcode_profiles",
    "refit_specs",
    "reproduce",
    "select_best",
    "summarize",
    "train_barcode_networks",
]
