"""The training protocol and the resumable sweep: loss composition, early stopping, divergence,
the atomic results file, resume after an interruption."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

import topo_neurons as tn
from topo_neurons.experiments import protocol as P
from topo_neurons.experiments.data import split_and_standardize
from topo_neurons.experiments.models import make_model


def _small_classification(seed=0, m=200, k=3):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), m // k + 1)[:m]
    X = rng.standard_normal((m, 6)) + 0.8 * y[:, None]
    return split_and_standardize(X, y, name="syn", task_type="classification", seed=0)


def _small_regression(seed=0, m=150):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, 5))
    y = X @ rng.standard_normal(5) + 0.3 * rng.standard_normal(m)
    return split_and_standardize(X, y, name="reg", task_type="regression", seed=0)


# ------------------------------------------------------------------ planning and config


def test_plan_runs_counts_and_order():
    specs = P.plan_runs(["digits"], ["trapezium", "deep_trapezium"], ["none", "l1", "t1"],
                        [1e-4, 1e-2], [0, 1])  # fmt: skip
    # per network: none once, every other regulariser once per weight
    assert len(specs) == 2 * 2 * (1 + 2 * 2)
    assert [s.seed for s in specs[:10]] == [0] * 10  # network by network
    assert specs[0] == P.RunSpec("digits", "trapezium", "none", 0.0, 0)
    assert sum(s.regularizer == "none" for s in specs) == 4
    assert len(set(specs)) == len(specs)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((["mnist2"], ["trapezium"], ["none"], [1e-3], [0]), r"unknown task 'mnist2'; valid"),
        ((["digits"], ["mlp"], ["none"], [1e-3], [0]), r"unknown model 'mlp'; valid models"),
        ((["digits"], ["trapezium"], ["dropout"], [1e-3], [0]),
         r"unknown regularizer 'dropout'; valid regularizers are none, l1, l2, correlation"),
        ((["digits"], ["trapezium"], ["t1"], [0.0, -1.0], [0]), r"positive and finite; got \[0"),
        ((["digits"], ["trapezium"], ["t1"], [], [0]), r"grid of weights is empty"),
        ((["digits"], ["trapezium"], ["t1"], [1e-3], []), r"no seeds given"),
        (([], ["trapezium"], ["t1"], [1e-3], [0]), r"no tasks given; valid tasks are mnist5k, "),
    ],
)  # fmt: skip
def test_plan_runs_errors(args, match):
    with pytest.raises(ValueError, match=match):
        P.plan_runs(*args)


def test_config_hash_identifies_the_configuration():
    a, b = P.TrainConfig(), P.TrainConfig()
    assert a.config_hash() == b.config_hash() and len(a.config_hash()) == 10
    changed = {
        P.TrainConfig(max_epochs=61).config_hash(),
        P.TrainConfig(lr=2e-3).config_hash(),
        P.TrainConfig(kind="sqrt").config_hash(),
        P.TrainConfig(t1_reduction="mean").config_hash(),
        P.TrainConfig(sampling_p=0.5).config_hash(),
        P.TrainConfig(split_seed=1).config_hash(),
        P.TrainConfig(protocol="adam").config_hash(),
    }
    assert len(changed) == 7 and a.config_hash() not in changed


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_epochs": 0}, r"max_epochs must be a positive int; got 0"),
        ({"patience": 1.5}, r"patience must be a positive int"),
        ({"lr": -1.0}, r"lr must be a positive number"),
        ({"kind": "cos"}, r"kind='cos' is not valid; valid kinds are 'abs', 'sqrt'"),
        ({"t1_reduction": "max"}, r"t1_reduction='max' is not valid"),
        ({"sampling_p": 0.0}, r"sampling_p must lie in \(0, 1\]"),
        ({"t2_alpha": 2.0}, r"t2_alpha must lie in \[0, 1\]"),
        ({"protocol": "sgd"}, r"protocol='sgd' is not valid; valid protocols are 'paper', 'adam'"),
        ({"lr_decay": 0.0}, r"lr_decay must lie in \(0, 1\]"),
        ({"momentum": 1.0}, r"momentum must lie in \[0, 1\)"),
    ],
)
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        P.TrainConfig(**kwargs)


def test_build_regularizer_maps_names_to_the_losses():
    cfg = P.TrainConfig(kind="sqrt", t1_reduction="mean", t2_alpha=0.3)
    t1 = P.build_regularizer("t1", cfg)
    assert isinstance(t1, tn.TopologicalRedundancy)
    assert (t1.kind, t1.reduction) == ("sqrt", "mean")
    t2 = P.build_regularizer("t2", cfg)
    assert isinstance(t2, tn.DeathSpread) and t2.alpha == 0.3
    assert isinstance(P.build_regularizer("correlation", cfg), tn.CorrelationPenalty)
    assert isinstance(P.build_regularizer("decov", cfg), tn.DeCov)
    assert isinstance(P.build_regularizer("l1", cfg), tn.L1Penalty)
    assert isinstance(P.build_regularizer("l2", cfg), tn.L2Penalty)
    assert P.build_regularizer("none", cfg) is None
    # the paper's L1/L2 cover every trainable parameter, biases included; "adam" weights only
    lin = nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -2.0]]))
        lin.bias.fill_(3.0)
    assert P.build_regularizer("l1", cfg)(lin).item() == 6.0
    assert P.build_regularizer("l2", cfg)(lin).item() == 14.0
    adam = P.TrainConfig.adam()
    assert P.build_regularizer("l1", adam)(lin).item() == 3.0
    assert P.build_regularizer("l2", adam)(lin).item() == 5.0


# ------------------------------------------------------------------ one run


def _hand_written_step(ds, reg, weight, seed, tree=None):
    """One Adam step on ``cross_entropy + λ·R`` over the whole (single-batch) training set.

    ``tree``: the loop's minimum spanning tree (see ``_record_trees``), used for T1 once checked
    to be one of this ``D`` to float32 rounding: where two edges are tied to rounding, which one
    a computation finds depends on the CPU's kernels (see ``_paper_reference``)."""
    torch.manual_seed(seed)
    ref = make_model("trapezium", ds.input_shape, ds.n_outputs)
    opt = torch.optim.Adam(ref.parameters(), lr=1e-3)
    perm = torch.randperm(len(ds.y_train), generator=torch.Generator().manual_seed(seed))
    x, y = torch.from_numpy(ds.X_train)[perm], torch.from_numpy(ds.y_train)[perm]
    linears = [m for m in ref.modules() if isinstance(m, nn.Linear)]
    neurons = [m for m in ref.modules() if isinstance(m, nn.ReLU)] + linears[-1:]
    acts = []
    hooks = [m.register_forward_hook(lambda m, i, o: acts.append(o)) for m in neurons]
    out = ref(x)
    for h in hooks:
        h.remove()
    loss = nn.functional.cross_entropy(out, y)
    if reg == "t1":
        # post-ReLU columns include dead neurons (constant): d = 1 for them, as the package's
        # default policy (torch.corrcoef would give NaN)
        D = tn.correlation_dissimilarity(torch.cat(acts, 1), kind="abs")
        deaths = tn.differentiable_deaths(D)
        if tree is not None:
            i, j = tree.unbind(1)
            torch.testing.assert_close(
                D[i, j].detach().sort().values, deaths.detach().sort().values, atol=1e-6, rtol=0
            )
            deaths = D[i, j]
        loss = loss + weight * (1 - deaths).sum()
    elif reg == "l2":
        loss = loss + weight * sum((m.weight**2).sum() for m in linears)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return ref


def _mismatch(a, b):
    """Fraction of parameters that differ by more than 1e-5, and the largest difference."""
    diff = torch.cat([(p - q).abs().ravel() for p, q in zip(a.parameters(), b.parameters())])
    return (diff > 1e-5).double().mean().item(), diff.max().item()


@pytest.mark.parametrize(("reg", "weight"), [("none", 0.0), ("t1", 0.05), ("l2", 1e-2)])
def test_one_step_matches_a_hand_written_training_step(reg, weight, monkeypatch):
    """One epoch of one batch (m_train ≤ 256): the protocol's update equals Adam on
    ``cross_entropy + λ·R`` written out by hand with the same seed (and differs from the
    unregularised step). Adam's first step is ``lr · g / (|g| + ε)``, so parameters whose
    gradient is ~ε may differ by a fraction of ``lr`` between two float32 computations of the
    same gradient: a few such elements are allowed, a sign flip (2·lr) is not."""
    ds = _small_classification()
    assert len(ds.y_train) <= 256
    cfg = P.TrainConfig.adam(max_epochs=1, patience=1)
    trees = _record_trees(monkeypatch)
    model, row = P.train_network(P.RunSpec("syn", "trapezium", reg, weight, 3), cfg, ds)
    assert row["status"] == "ok" and row["best_epoch"] == 1
    assert len(trees) == (reg == "t1")  # one step, one tree
    frac, worst = _mismatch(model, _hand_written_step(ds, reg, weight, 3, *trees))
    assert frac < 1e-3 and worst < 1.5e-3
    if reg != "none":
        frac0, worst0 = _mismatch(model, _hand_written_step(ds, "none", 0.0, 3))
        assert frac0 > 0.05 and worst0 > 1.5e-3


def test_early_stopping_restores_the_best_epoch():
    ds = _small_classification(1)
    history = []
    cfg = P.TrainConfig.adam(max_epochs=40, patience=3, lr=3e-3)
    model, row = P.train_network(
        P.RunSpec("syn", "trapezium", "none", 0.0, 0),
        cfg,
        ds,
        on_epoch=lambda e, m, loss: history.append((e, m, loss)),
    )
    scores = [(m, -loss) for _, m, loss in history]
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))  # first of the maxima
    assert row["best_epoch"] == history[best][0]
    assert row["epochs"] == len(history)
    assert row["epochs"] == min(cfg.max_epochs, row["best_epoch"] + cfg.patience)
    # the returned model is the best epoch's: its validation metric and loss are reproduced
    with torch.no_grad():
        out = model(torch.from_numpy(ds.X_val))
    acc = (out.argmax(1).numpy() == ds.y_val).mean()
    assert float(row["val_metric"]) == pytest.approx(acc) == pytest.approx(history[best][1])
    assert float(row["val_loss"]) == pytest.approx(history[best][2], rel=1e-5)
    with torch.no_grad():
        test_acc = (model(torch.from_numpy(ds.X_test)).argmax(1).numpy() == ds.y_test).mean()
    assert float(row["test_metric"]) == pytest.approx(test_acc)
    assert not model.training


def test_runs_are_deterministic():
    ds = _small_classification(2)
    cfg = P.TrainConfig(max_epochs=3)
    spec = P.RunSpec("syn", "deep_trapezium", "t2", 1e-2, 7)
    _, a = P.train_network(spec, cfg, ds)
    _, b = P.train_network(spec, cfg, ds)
    a.pop("seconds"), b.pop("seconds")
    assert a == b


def test_regression_reports_r2():
    from sklearn.metrics import r2_score

    ds = _small_regression()
    model, row = P.train_network(
        P.RunSpec("reg", "trapezium", "correlation", 1e-2, 0), P.TrainConfig(max_epochs=5), ds
    )
    assert row["metric"] == "r2" and row["status"] == "ok"
    with torch.no_grad():
        pred = model(torch.from_numpy(ds.X_test)).numpy().ravel()
    assert float(row["test_metric"]) == pytest.approx(r2_score(ds.y_test, pred), rel=1e-5)


class _NaNLoss(nn.Module):
    def forward(self, A):
        return A.sum() * float("nan")


def test_nan_regulariser_is_recorded_as_diverged(monkeypatch):
    monkeypatch.setattr(P._training, "build_regularizer", lambda name, cfg: _NaNLoss())
    _, row = P.train_network(
        P.RunSpec("syn", "trapezium", "t1", 1.0, 0), P.TrainConfig(), _small_classification()
    )
    assert row["status"] == "diverged"
    assert row["message"] == "loss nan at epoch 1"
    assert row["test_metric"] == row["val_metric"] == row["best_epoch"] == ""


def test_non_finite_activations_are_recorded_as_diverged(monkeypatch):
    def broken(name, in_features, out_features):
        model = make_model(name, in_features, out_features)
        with torch.no_grad():
            model.net.fc2.weight[0, 0] = float("inf")
        return model

    monkeypatch.setattr(P._training, "make_model", broken)
    _, row = P.train_network(  # "adam" keeps torch's initialisation, so the Inf stays
        P.RunSpec("syn", "trapezium", "t2", 1e-3, 0), P.TrainConfig.adam(), _small_classification()
    )
    assert row["status"] == "diverged"
    assert row["message"].startswith("non-finite outputs at epoch 1") or "NaN/Inf" in row["message"]


@pytest.mark.parametrize(
    ("error", "diverged"),
    [
        (tn.NonFiniteActivationsError("layer 'fc1' output a bad value"), True),
        (ValueError("layers disagree on the examples; see the info below"), False),
    ],
)
def test_divergence_is_told_by_the_error_type_not_its_message(monkeypatch, error, diverged):
    def fail(self):
        raise error

    monkeypatch.setattr(tn.ActivationRecorder, "activations", fail)
    spec = P.RunSpec("syn", "trapezium", "t1", 1.0, 0)
    if diverged:  # no "nan"/"inf" in the message: the type says it
        _, row = P.train_network(spec, P.TrainConfig(), _small_classification())
        assert row["status"] == "diverged"
        assert row["message"] == f"epoch 1: {error}"
    else:  # "info" holds "inf": not a divergence, the error propagates
        with pytest.raises(ValueError, match="see the info below"):
            P.train_network(spec, P.TrainConfig(), _small_classification())


def test_positive_weight_required():
    with pytest.raises(ValueError, match=r"regulariser 't1' needs a positive weight; got 0.0"):
        P.train_network(
            P.RunSpec("syn", "trapezium", "t1", 0.0, 0), P.TrainConfig(), _small_classification()
        )


# ------------------------------------------------------------------ results file and sweep


def _row(i=0, **kw):
    row = {
        "task": "digits", "model": "trapezium", "regularizer": "l2", "weight": "0.001",
        "seed": str(i), "stage": "select", "config_hash": "0123456789", "status": "ok",
        "metric": "accuracy", "val_metric": "0.9", "test_metric": "0.875", "val_loss": "0.31",
        "best_epoch": "3", "epochs": "7", "seconds": "1.5", "message": 'a,"b"\nc',
    }  # fmt: skip
    return row | kw


def test_results_file_roundtrip_and_validation(tmp_path):
    rows = [_row(i) for i in range(3)]
    path = P.write_results(tmp_path / "r.csv", rows)
    assert P.read_results(path) == rows
    assert P.read_results(tmp_path / "missing.csv") == []
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"not a results file: missing column\(s\) task"):
        P.read_results(tmp_path / "other.csv")
    assert list(tmp_path.glob(".r.csv*")) == []  # no temporary left behind
    # a file written before the stage column existed reads as the sweep's rows
    legacy = tmp_path / "legacy.csv"
    legacy.write_text(path.read_text().replace(",stage", "").replace(",select", ""))
    assert P.read_results(legacy) == rows


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        # the message field holds a newline: each row spans two lines, the third starts at 6
        (lambda t: t[: t.rindex("accuracy") + 7], r"line 6: only 9 of 17 fields \(the row was"),
        (lambda t: t[: t.rindex("0.875") + 3], r"line 6: only 11 of 17 fields"),
        (lambda t: t.replace("accuracy", "accurac", 1), r"line 2: metric 'accurac' is not one"),
        (lambda t: t.replace("0.875", "nan", 1), r"line 2: test_metric 'nan' is not a finite"),
        (lambda t: t.replace(",7,1.5,", ",7,-1,", 1), r"line 2: seconds '-1' is not a non-neg"),
        (lambda t: t.replace(",0.9,", ",1.7,", 1), r"line 2: val_metric '1.7' is not an accur"),
        (lambda t: t.replace(",3,7,", ",9,7,", 1), r"line 2: best_epoch '9' is not in 1 … epo"),
        (lambda t: t.replace("trapezium", "trapez", 1), r"line 2: model 'trapez' is not one of"),
        (lambda t: t.replace(",0.001,0,", ",,0,", 1), r"line 2: weight '' is not valid"),
    ],
)
def test_damaged_results_csv_rows_are_reported_by_line_and_never_tabulated(
    tmp_path, damage, reason
):
    """Issue 11: a row cut by a crash mid-write (or otherwise damaged) was read as a finished run
    ("93 already finished", nan and a metric named "accurac" in results.md) or stopped the
    resume with a float() error. Now each row is checked on read; a damaged one is named by its
    line and left out."""
    path = P.write_results(tmp_path / "r.csv", [_row(i) for i in range(3)])
    path.write_text(damage(path.read_text()))
    with pytest.warns(P.DamagedResultsWarning, match=reason):
        rows = P.read_results(path)
    assert len(rows) == 2 and all(P._check_row(r) is None for r in rows)
    with pytest.raises(ValueError, match=reason):
        P.read_results(path, damaged="raise")


def test_damaged_results_row_is_rerun_by_the_sweep(tmp_path):
    path = tmp_path / "results.csv"
    specs = P.plan_runs(["breast_cancer"], ["trapezium"], ["none", "l2"], [1e-3], [0])
    P.run_sweep(specs, SWEEP_CFG, path, progress=False)
    text = path.read_text()
    path.write_text(text[: text.rindex("accuracy") + 7])  # the last row cut mid-write
    with pytest.warns(P.DamagedResultsWarning, match=r"line 3: only 9 of 17 fields"):
        again = P.run_sweep(specs, SWEEP_CFG, path, progress=False)
    assert (again.ran, again.skipped) == (1, 1)
    rows = P.read_results(path)
    assert [r["regularizer"] for r in rows] == ["none", "l2"]
    assert "line 3: only 9 of 17 fields" in (tmp_path / "results.csv.damaged").read_text()


SWEEP_CFG = P.TrainConfig(max_epochs=1)


def _specs():
    return P.plan_runs(["breast_cancer"], ["trapezium"], ["none", "l2", "t1"], [1e-3], [0, 1])


def test_sweep_records_every_run_and_resumes(tmp_path):
    path = tmp_path / "results.csv"
    first = P.run_sweep(_specs(), SWEEP_CFG, path, progress=False)
    assert (first.ran, first.skipped, len(first.rows)) == (6, 0, 6)
    rows = P.read_results(path)
    keys = {tuple(r[f] for f in ("regularizer", "weight", "seed")) for r in rows}
    assert keys == {(r, w, s) for r, w in (("none", "0"), ("l2", "0.001"), ("t1", "0.001"))
                    for s in ("0", "1")}  # fmt: skip
    assert all(r["status"] == "ok" and 0 <= float(r["test_metric"]) <= 1 for r in rows)
    text = path.read_text()
    again = P.run_sweep(_specs(), SWEEP_CFG, path, progress=False)
    assert (again.ran, again.skipped) == (0, 6)
    assert path.read_text() == text
    # a different configuration is a different set of runs; old rows are kept in the file
    other = P.run_sweep(_specs()[:1], P.TrainConfig(max_epochs=2), path, progress=False)
    assert (other.ran, len(other.rows)) == (1, 1)
    assert len(P.read_results(path)) == 7


def test_a_failing_run_is_named_and_the_finished_ones_are_kept(tmp_path, monkeypatch):
    """An error that is not a divergence stops the sweep with the run's name (it used to end
    `reproduce` with the bare message, e.g. "distance matrix contains nan", and no run named)."""
    path = tmp_path / "results.csv"
    real = P.train_network
    calls = []

    def failing(spec, config, dataset=None, **kw):
        calls.append(spec)
        if len(calls) == 3:
            raise ValueError("distance matrix contains nan at [0, 7]")
        return real(spec, config, dataset, **kw)

    monkeypatch.setattr(P._training, "train_network", failing)
    specs = _specs()
    with pytest.raises(P.RunFailedError) as info:
        P.run_sweep(specs, SWEEP_CFG, path, progress=False)
    s = specs[2]
    assert str(info.value) == (
        f"run {s.task}/{s.model} {s.regularizer} λ={P.format_weight(s.weight)} seed {s.seed} "
        f"({s.stage}) failed: ValueError: distance matrix contains nan at [0, 7]"
    )
    assert isinstance(info.value.__cause__, ValueError)
    assert not isinstance(info.value, ValueError)  # the command shows its traceback
    assert len(P.read_results(path)) == 2


def test_interrupted_sweep_loses_nothing(tmp_path, monkeypatch):
    path = tmp_path / "results.csv"
    calls = []
    real = P.run_one

    def flaky(spec, config):
        calls.append(spec)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(spec, config)

    monkeypatch.setattr(P._sweep, "run_one", flaky)
    with pytest.raises(KeyboardInterrupt):
        P.run_sweep(_specs(), SWEEP_CFG, path, progress=False)
    saved = P.read_results(path)
    assert len(saved) == 2
    monkeypatch.setattr(P._sweep, "run_one", real)
    resumed = P.run_sweep(_specs(), SWEEP_CFG, path, progress=False)
    assert (resumed.ran, resumed.skipped) == (4, 2)
    final = P.read_results(path)
    assert final[:2] == saved  # finished runs are kept as they were
    assert len({tuple(r[f] for f in P.RESULT_FIELDS[:7]) for r in final}) == 6


def test_sweep_jobs_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match=r"jobs must be a positive int; got 0"):
        P.run_sweep(_specs(), SWEEP_CFG, tmp_path / "r.csv", jobs=0)


def test_format_weight_is_canonical():
    assert P.format_weight(1e-6) == "1e-06" == P.format_weight(float("1e-6"))
    assert P.format_weight(100) == "100"
    key = P.RunSpec("a", "b", "t1", 0.001, 2).key("h")
    assert key == ("a", "b", "t1", "0.001", "2", "select", "h")
    assert math.isclose(float(P.format_weight(1 / 3)), 1 / 3, rel_tol=1e-5)


class _Shapes(nn.Module):
    """A zero loss that remembers the shapes of the activations it sees."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, A):
        self.seen.append(tuple(A.shape))
        return 0.0 * A.sum()


def test_cnn_with_importance_sampling_sees_the_sampled_neurons(monkeypatch):
    from topo_neurons.experiments.data import load_task

    loss = _Shapes()
    monkeypatch.setattr(P._training, "build_regularizer", lambda name, cfg: loss)
    ds = load_task("digits")
    cfg = P.TrainConfig(max_epochs=1, sampling_p=0.05)
    _, row = P.train_network(P.RunSpec("digits", "cnn", "t1", 1e-3, 0), cfg, ds)
    assert row["status"] == "ok"
    # ⌊0.05·n⌋ of conv1 (16·8·8), conv2 (32·4·4), fc1 (64); the output layer (10) whole
    n = 1024 * 5 // 100 + 512 * 5 // 100 + 64 * 5 // 100 + 10
    assert {s[1] for s in loss.seen} == {n}
    # the paper's batches: four of 256 examples and the remaining 53 (1077 in all), one epoch
    assert sorted(s[0] for s in loss.seen) == [53, 256, 256, 256, 256]


def test_sweep_on_mnist_files_from_data_dir(tmp_path):
    """The data directory travels in the configuration (and its hash) to every run."""
    import struct

    rng = np.random.default_rng(0)

    def idx(arr):
        dims = struct.pack(">" + "I" * arr.ndim, *arr.shape)
        return struct.pack(">HBB", 0, 0x08, arr.ndim) + dims + arr.tobytes()

    for prefix, m in (("train", 40), ("t10k", 10)):
        y = np.tile(np.arange(2, dtype=np.uint8), m // 2)
        X = rng.integers(0, 40, (m, 28, 28)).astype(np.uint8)
        X[y == 1, :14] = 255  # class 1 bright on top, class 0 at the bottom
        X[y == 0, 14:] = 255
        (tmp_path / f"{prefix}-images-idx3-ubyte").write_bytes(idx(X))
        (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(idx(y))
    cfg = P.TrainConfig(max_epochs=10, data_dir=str(tmp_path))
    assert cfg.config_hash() != P.TrainConfig(max_epochs=10).config_hash()
    specs = P.plan_runs(["mnist"], ["trapezium"], ["none", "t2"], [1e-2], [0])
    out = P.run_sweep(specs, cfg, tmp_path / "results.csv", progress=False)
    assert [r["status"] for r in out.rows] == ["ok", "ok"]
    assert all(r["metric"] == "accuracy" for r in out.rows)
    # two well-separated classes: the test split (the 10 t10k images) is learnt
    assert all(float(r["test_metric"]) >= 0.9 for r in out.rows)


# ------------------------------------------------------------------ the paper's recipe


def _neuron_hooks(model, acts):
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    neurons = [m for m in model.modules() if isinstance(m, nn.ReLU)] + linears[-1:]
    return [m.register_forward_hook(lambda m, i, o: acts.append(o)) for m in neurons]


def _record_trees(monkeypatch):
    """Record each minimum spanning tree the training loop's T1 searches (edges as columns of
    the concatenated neurons, one tree per step)."""
    from topo_neurons.regularizers import _deaths

    trees, search, cpu_search = [], _deaths.mst_edges, _deaths.tree_correlations

    def recording(D, **kwargs):
        edges = search(D, **kwargs)
        trees.append(edges.clone())
        return edges

    def recording_cpu(Zt, *args):  # the native backend's CPU path (topo_neurons/_edges.py)
        edges, rho = cpu_search(Zt, *args)
        trees.append(torch.from_numpy(edges.copy()))
        return edges, rho

    monkeypatch.setattr(_deaths, "mst_edges", recording)
    monkeypatch.setattr(_deaths, "tree_correlations", recording_cpu)
    return trees


def _train_recording_steps(spec, cfg, ds):
    """``train_network`` recording, for every optimiser step, the weights before and after it,
    the gradients and the learning rate it used."""
    from torch.optim.optimizer import (
        register_optimizer_step_post_hook,
        register_optimizer_step_pre_hook,
    )

    def weights(opt):
        return [p.detach().clone() for g in opt.param_groups for p in g["params"]]

    steps = []
    pre = register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: steps.append(
            {
                "before": weights(opt),
                "grad": [p.grad.clone() for g in opt.param_groups for p in g["params"]],
                "lr": [g["lr"] for g in opt.param_groups],
            }
        )
    )
    post = register_optimizer_step_post_hook(
        lambda opt, args, kwargs: steps[-1].update(after=weights(opt))
    )
    try:
        model, row = P.train_network(spec, cfg, ds)
    finally:
        pre.remove()
        post.remove()
    return model, row, steps


#: Relative tolerance (float64) of the gradients of one step computed by the loop and by hand
#: (measured: 2e-12 of the largest gradient of the tensor, from a near-dead neuron's edges).
_GRAD_RTOL = 1e-9


@pytest.fixture
def float64_default():
    """Models built in float64 (``torch.set_default_dtype``), the default restored after."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def _paper_reference(ds, reg, weight, seed, epochs, cfg, steps=None, trees=None):
    """The authors' recipe written out by hand: Keras initialisation, SGD with Nesterov
    momentum, a staircase learning-rate decay counted in steps, shuffled batches of
    ``batch_size`` with a smaller last one, T1 on the post-ReLU neurons and the logits, L2 over
    every parameter (biases included).

    T1 is ``Σ (1 − d)`` over the edges of a minimum spanning tree of the correlation
    dissimilarity ``D`` computed here by hand (``correlation_dissimilarity``), while the loop
    ranks the edges by other calls. Two things then depend on the CPU's kernels, not on the
    recipe, and are taken from the loop:

    * ``trees``: with 32 examples and 1002 neurons ``D`` has edges tied to rounding, and which
      of two such trees is found can flip from one CPU to another, yet their gradients differ.
      Each step uses the loop's tree after checking that it is a minimum spanning tree of this
      ``D``: its sorted weights in ``D`` equal the deaths of ``D`` (the same for every minimum
      spanning tree) to rounding.
    * ``steps`` (see ``_train_recording_steps``): every step starts from the loop's weights
      before it, and its learning rate, gradients and resulting weights are checked against the
      loop's. Rounding that differs between the two computations cannot compound over the
      steps: T1's gradient is ill-conditioned (a neuron active on one example of the batch has
      its edges' terms scaled by the inverse of its spread).
    """
    from topo_neurons.experiments.models import keras_init_

    torch.manual_seed(seed)
    ref = keras_init_(make_model("trapezium", ds.input_shape, ds.n_outputs))
    opt = torch.optim.SGD(ref.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True)
    gen = torch.Generator().manual_seed(seed)
    X, Y = torch.from_numpy(ds.X_train), torch.from_numpy(ds.y_train)
    step = 0
    for _ in range(epochs):
        for idx in torch.randperm(len(Y), generator=gen).split(cfg.batch_size):
            for group in opt.param_groups:
                group["lr"] = cfg.lr * cfg.lr_decay ** (step // cfg.lr_decay_steps)
            if steps is not None:
                assert [g["lr"] for g in opt.param_groups] == pytest.approx(steps[step]["lr"])
                with torch.no_grad():
                    for p, w in zip(ref.parameters(), steps[step]["before"], strict=True):
                        p.copy_(w)
            acts = []
            hooks = _neuron_hooks(ref, acts)
            out = ref(X[idx])
            for h in hooks:
                h.remove()
            loss = nn.functional.cross_entropy(out, Y[idx])
            if reg == "t1":
                D = tn.correlation_dissimilarity(torch.cat(acts, 1), kind="abs")
                deaths = tn.differentiable_deaths(D)
                if trees is not None:
                    i, j = trees[step].unbind(1)
                    torch.testing.assert_close(
                        D[i, j].detach().sort().values, deaths.detach().sort().values,
                        atol=1e-12, rtol=0,
                    )  # fmt: skip
                    deaths = D[i, j]
                loss = loss + weight * (1 - deaths).sum()
            elif reg == "l2":
                loss = loss + weight * sum((p**2).sum() for p in ref.parameters())
            opt.zero_grad()
            loss.backward()
            if steps is not None:  # to rounding, scaled to each tensor's largest gradient
                for p, g in zip(ref.parameters(), steps[step]["grad"], strict=True):
                    torch.testing.assert_close(
                        p.grad, g, atol=_GRAD_RTOL * g.abs().max().item(), rtol=_GRAD_RTOL,
                        msg=lambda m, s=step: f"gradient, step {s}: {m}",
                    )  # fmt: skip
            opt.step()
            if steps is not None:
                for p, w in zip(ref.parameters(), steps[step]["after"], strict=True):
                    torch.testing.assert_close(
                        p, w, atol=1e-12, rtol=1e-12, msg=lambda m, s=step: f"step {s}: {m}"
                    )
            step += 1
    assert steps is None or len(steps) == step  # every step of the loop compared
    assert trees is None or len(trees) == step  # one tree per step, each one used
    return ref


@pytest.mark.parametrize(("reg", "weight"), [("none", 0.0), ("t1", 0.02), ("l2", 1e-2)])
def test_paper_protocol_matches_the_authors_recipe_written_by_hand(
    reg, weight, monkeypatch, float64_default
):
    """Each of the 12 steps (3 epochs of 4 batches, the learning rate halved every 2 steps)
    equals the recipe to rounding on any CPU: each step of the reference starts from the loop's
    weights and T1 uses the loop's tree among trees tied to rounding (see ``_paper_reference``);
    everything else is computed by other calls."""
    ds = _small_classification()
    assert len(ds.y_train) == 120  # batches of 32, 32, 32, 24
    # In float64: the gradient of a neuron active on one example of the batch is ill-conditioned
    # (its edges' terms are scaled by the inverse of its spread), which in float32 leaves the
    # two computations' gradients 0.4 % apart on some CPUs.
    ds = dataclasses.replace(
        ds, **{k: getattr(ds, k).astype(np.float64) for k in ("X_train", "X_val", "X_test")}
    )
    epochs = 3
    cfg = P.TrainConfig(
        max_epochs=epochs, patience=50, batch_size=32, lr_decay_steps=2, lr_decay=0.5
    )
    spec = P.RunSpec("syn", "trapezium", reg, weight, 3)
    trees = _record_trees(monkeypatch)
    model, row, steps = _train_recording_steps(spec, cfg, ds)
    assert row["status"] == "ok" and len(steps) == 4 * epochs
    assert len(trees) == (len(steps) if reg == "t1" else 0)
    _paper_reference(ds, reg, weight, 3, epochs, cfg, steps, trees if reg == "t1" else None)
    # the trained model holds the weights after the last step of its best epoch (the same
    # tensors copied: exact)
    best = steps[4 * int(row["best_epoch"]) - 1]["after"]
    assert len(best) == len(list(model.parameters())) == 8  # 4 layers
    assert all(torch.equal(p, w) for p, w in zip(model.parameters(), best))
    if reg != "none":  # the term changes the weights
        plain = _paper_reference(ds, "none", 0.0, 3, epochs, cfg)
        diff = max(
            (p - q).abs().max().item() for p, q in zip(steps[-1]["after"], plain.parameters())
        )
        assert diff > 1e-4
    # the learning rate decays: without the decay the same run ends elsewhere
    flat = P.TrainConfig(max_epochs=epochs, patience=50, batch_size=32, lr_decay_steps=10**6)
    other, _ = P.train_network(spec, flat, ds)
    assert any(not torch.allclose(p, q) for p, q in zip(model.parameters(), other.parameters()))


def test_paper_early_stopping_on_validation_loss_restores_the_best_weights():
    """Stops once ``patience + 1`` epochs in a row did not lower the validation loss (the
    authors' ``count > patience``) and restores the epoch of the lowest validation loss, even
    where another epoch had a higher validation accuracy."""
    ds = _small_classification(1)
    history = []
    cfg = P.TrainConfig(max_epochs=300, patience=3, lr=0.05)
    model, row = P.train_network(
        P.RunSpec("syn", "trapezium", "none", 0.0, 0),
        cfg,
        ds,
        on_epoch=lambda e, m, loss: history.append((e, m, loss)),
    )
    losses = [loss for _, _, loss in history]
    best = int(np.argmin(losses))  # the first of the minima
    assert row["best_epoch"] == history[best][0]
    assert row["epochs"] == len(history) == row["best_epoch"] + cfg.patience + 1 < cfg.max_epochs
    assert float(row["val_loss"]) == pytest.approx(losses[best], rel=1e-6)
    with torch.no_grad():
        out = model(torch.from_numpy(ds.X_val))
    assert nn.functional.cross_entropy(out, torch.from_numpy(ds.y_val)).item() == pytest.approx(
        losses[best], rel=1e-5
    )
    assert float(row["val_metric"]) == pytest.approx(history[best][1])


class _Spy(nn.Module):
    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, A):
        self.seen.append(A.detach().clone())
        return 0.0 * A.sum()


def test_dropout_network_term_is_computed_on_a_dropout_off_pass(monkeypatch):
    """The paper computes the term of the dropout network on a second forward pass of the batch
    with dropout off (Keras layers called outside ``fit``); the activations the term sees are
    the eval-mode ReLU outputs and logits of the batch, not the dropout-masked ones."""
    from topo_neurons.experiments.models import keras_init_

    spy = _Spy()
    monkeypatch.setattr(P._training, "build_regularizer", lambda name, cfg: spy)
    ds = _small_classification()
    cfg = P.TrainConfig(max_epochs=1, batch_size=64)
    P.train_network(P.RunSpec("syn", "trapezium_dropout", "t1", 1.0, 5), cfg, ds)
    torch.manual_seed(5)
    ref = keras_init_(make_model("trapezium_dropout", ds.input_shape, ds.n_outputs))
    idx = torch.randperm(len(ds.y_train), generator=torch.Generator().manual_seed(5))[:64]
    x = torch.from_numpy(ds.X_train)[idx]
    acts = []
    hooks = _neuron_hooks(ref.eval(), acts)
    with torch.no_grad():
        ref(x)
    torch.testing.assert_close(spy.seen[0], torch.cat(acts, 1))
    acts.clear()
    with torch.no_grad():
        ref.train()(x)  # with dropout the deeper layers' activations differ
    for h in hooks:
        h.remove()
    assert not torch.allclose(spy.seen[0], torch.cat(acts, 1))
