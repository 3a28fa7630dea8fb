"""The training protocol of Ballester et al. and the resumable sweep over its grid.

One *run* trains one network (task × model × seed) with one regulariser at one weight:

* loss ``task_loss + λ · R``: cross-entropy (classification) or mean squared error
  (regression), with ``R`` one of :data:`REGULARIZERS`:

  ================ ===================================================================
  ``none``         no regulariser (one run per network, ``λ = 0``)
  ``l1``, ``l2``   :class:`topo_neurons.L1Penalty`, :class:`topo_neurons.L2Penalty` (over
                   all trainable parameters, biases included, under the paper protocol;
                   weights only under ``adam``)
  ``correlation``  :class:`topo_neurons.CorrelationPenalty`, "minimise all correlations"
  ``t1``           :class:`topo_neurons.TopologicalRedundancy` (``reduction="sum"`` as in
                   the paper, so its size grows with the number of neurons)
  ``t2``           :class:`topo_neurons.DeathSpread` (``α = 0.5``)
  ``decov``        :class:`topo_neurons.DeCov` (an extra column, not in the paper)
  ================ ===================================================================

  The activation-based terms see the paper's neurons of the training batch: each hidden
  layer's output *after* its ReLU and the logits (:func:`~topo_neurons.experiments.models.
  neuron_layers`, passed to the recorder by name), all of them (``p = 1``, as the paper did
  for its MNIST MLPs) unless :attr:`TrainConfig.sampling_p` asks for importance sampling.

Two training recipes (:attr:`TrainConfig.protocol`):

``"paper"`` (the default; the authors' ``model/mnist_experiments.py`` and ``model/train.py``)
    SGD with Nesterov momentum 0.9, learning rate ``0.01 · 0.95^⌊step / 3520⌋`` (staircase,
    counted in optimiser steps); Keras' initialisation (Glorot-uniform kernels, zero biases);
    each epoch a fresh shuffle cut into batches of 256 (the last one smaller); at most 1200
    epochs; early stopping on the validation **loss** (an epoch improves when its loss is
    strictly lower than the best so far; training stops when 21 epochs in a row did not, i.e.
    the authors' ``count > patience`` with patience 20) with the best weights restored; for a
    network with dropout the activation term is computed on a second forward pass of the same
    batch with dropout off (the authors call the layers outside ``fit``, where Keras' dropout is
    inactive).
``"adam"`` (this package's earlier recipe, kept for comparison)
    Adam (learning rate ``1e-3``), batches of at most 256 examples (each epoch's shuffled
    training set is cut into ``ceil(m / 256)`` batches of equal size ± 1), torch's default
    initialisation, early stopping on the validation metric (ties broken by the lower validation
    loss) after ``patience`` epochs without improvement; the term on the training forward (with
    dropout); L1/L2 on weights only.

Either way the test metric of the restored network is reported.

A run whose loss or activations become NaN or infinite is recorded with status ``diverged``
(this happens for large weights, e.g. T1 with ``reduction="sum"`` over about a thousand
deaths), never as a crash; non-finite activations are told by the type of the recorder's error
(:class:`~topo_neurons.NonFiniteActivationsError`), not by its message.

:func:`run_sweep` executes many runs, in parallel processes with ``jobs > 1``, and rewrites
the results file atomically after each one, so that an interrupted sweep loses nothing and a
rerun skips the runs already recorded (same task, model, regulariser, weight, seed and
configuration hash). Each row carries a checksum of its fields (:func:`row_checksum`);
:func:`read_results` leaves out, reports and never returns damaged rows: cut, invalid,
self-contradicting (``diverged`` with finite metrics) or edited ones, and every copy of a run
whose copies disagree.
"""

from ._config import (
    ACTIVATION_REGULARIZERS as ACTIVATION_REGULARIZERS,
)
from ._config import (
    PAPER_GRID,
    PROTOCOLS,
    REFIT_SEED_OFFSET,
    REGULARIZER_LABELS,
    REGULARIZERS,
    STAGES,
    RunSpec,
    TrainConfig,
    build_regularizer,
    format_weight,
    plan_runs,
)
from ._config import _weight_label as _weight_label
from ._results import (
    CHECKSUM_FIELD,
    RESULT_FIELDS,
    DamagedResultsWarning,
    ResultsFileWarning,
    read_results,
    row_checksum,
    write_results,
)
from ._results import (
    _check_row as _check_row,
)
from ._sweep import SweepOutcome as SweepOutcome
from ._sweep import run_sweep
from ._training import _DATA_CACHE as _DATA_CACHE
from ._training import RunFailedError, run_one, train_network
from ._training import _dataset_for as _dataset_for

__all__ = [
    "CHECKSUM_FIELD",
    "PAPER_GRID",
    "PROTOCOLS",
    "REFIT_SEED_OFFSET",
    "REGULARIZERS",
    "REGULARIZER_LABELS",
    "RESULT_FIELDS",
    "STAGES",
    "DamagedResultsWarning",
    "ResultsFileWarning",
    "RunFailedError",
    "RunSpec",
    "TrainConfig",
    "build_regularizer",
    "format_weight",
    "plan_runs",
    "read_results",
    "row_checksum",
    "run_one",
    "run_sweep",
    "train_network",
    "write_results",
]
