"""The protocol of "Decorrelating neurons using persistence": data, models, sweep, statistics.

* :mod:`~topo_neurons.experiments.data`: tasks (digits, breast cancer, diabetes from
  scikit-learn; MNIST and CIFAR-10 from files the user has), fixed splits, standardisation;
* :mod:`~topo_neurons.experiments.models`: the paper's MLPs and a small CNN;
* :mod:`~topo_neurons.experiments.protocol`: one training run, the resumable parallel sweep;
* :mod:`~topo_neurons.experiments.stats`: Friedman, Iman–Davenport, Nemenyi, CD diagram;
* :mod:`~topo_neurons.experiments.reproduction`: weight selection, report, figures (the
  ``topo-neurons reproduce`` command).
"""

from .data import TASKS, Dataset, load_task
from .models import MODELS, make_model
from .protocol import (
    PAPER_GRID,
    REGULARIZERS,
    RunSpec,
    TrainConfig,
    plan_runs,
    read_results,
    run_sweep,
    train_network,
)
from .reproduction import FULL, QUICK, markdown_report, reproduce, select_best, summarize
from .stats import (
    FriedmanResult,
    average_ranks,
    critical_difference,
    friedman_test,
    nemenyi_q,
    plot_cd_diagram,
)

__all__ = [
    "FULL",
    "MODELS",
    "PAPER_GRID",
    "QUICK",
    "REGULARIZERS",
    "TASKS",
    "Dataset",
    "FriedmanResult",
    "RunSpec",
    "TrainConfig",
    "average_ranks",
    "critical_difference",
    "friedman_test",
    "load_task",
    "make_model",
    "markdown_report",
    "nemenyi_q",
    "plan_runs",
    "plot_cd_diagram",
    "read_results",
    "reproduce",
    "run_sweep",
    "select_best",
    "summarize",
    "train_network",
]
