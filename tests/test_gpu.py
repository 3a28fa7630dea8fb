"""The device path of the regularisers: no host synchronisation in a training step.

A CPU has no synchronisation to catch, so the CPU tests here are a proxy for
``torch.cuda.set_sync_debug_mode("error")``: during a regularised step with
``backend="torch"`` every way a tensor's value reaches Python (``item``, ``tolist``,
``numpy``, ``cpu``, ``bool``, ``int``, ``float``) raises. The tests marked ``cuda`` run the
same on a GPU under the real sync debug mode, and mirror the torch-backend tests of
``tests/test_torch_mst.py`` on the device.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from torch import nn

import topo_neurons as tn
from topo_neurons.persistence._torch_mst import torch_mst_dense
from topo_neurons.regularizers import edge_deaths

_READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__int__", "__float__")

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@contextlib.contextmanager
def no_host_reads(monkeypatch):
    """Every read of a tensor's value into Python raises inside the block."""
    with monkeypatch.context() as m:
        for name in _READS:

            def refuse(self, *args, _name=name, **kwargs):
                raise AssertionError(f"host read Tensor.{_name} during a device step")

            m.setattr(torch.Tensor, name, refuse)
        yield


def _activations(seed: int, m: int = 64, n: int = 40, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(m, n, generator=g, dtype=dtype)
    A[:, 3] = A[:, 1] * 2.0 + 0.5  # a duplicated neuron: a zero death
    A[:, 7] = 1.0  # a constant (dead) neuron
    return A


def test_proxy_catches_a_host_read(monkeypatch):
    # The proxy is not vacuous: the host backend's step reads values.
    A = _activations(0).requires_grad_()
    with no_host_reads(monkeypatch), pytest.raises(AssertionError, match="host read"):
        tn.TopologicalRedundancy(backend="native")(A)


@pytest.mark.parametrize(
    "make",
    [
        lambda: tn.TopologicalRedundancy(backend="torch"),
        lambda: tn.TopologicalRedundancy(reduction="mean", backend="torch", refresh_every=3),
        lambda: tn.DeathSpread(backend="torch"),
        lambda: tn.DeathSpread(kind="sqrt", backend="torch", refresh_every=2),
    ],
    ids=["T1", "T1-refresh3", "T2", "T2-sqrt-refresh2"],
)
def test_regularised_steps_read_nothing_back_and_equal_the_host_backend(monkeypatch, make):
    loss_dev, loss_host = make(), make()
    loss_host.backend = "native"
    for step in range(5):
        A = _activations(step)
        A[:, 20 + step] = 0.0  # a neuron dying along the way (the hub guard's case)
        Ad = A.clone().requires_grad_()
        Ah = A.clone().requires_grad_()
        with no_host_reads(monkeypatch):
            val = loss_dev(Ad)
            val.backward()
        ref = loss_host(Ah)
        ref.backward()
        # Other summation orders (torch ops vs the host's fused kernel on cached edges); the
        # duplicated neuron's sqrt death is the square root of rounding noise.
        torch.testing.assert_close(val, ref, rtol=1e-6, atol=1e-7)
        scale = float(Ah.grad.abs().max())
        torch.testing.assert_close(Ad.grad, Ah.grad, rtol=1e-5, atol=1e-6 * scale)


def test_device_edges_equal_the_strict_order_tree_of_the_ranking(monkeypatch):
    A = _activations(4, dtype=torch.float32)
    with no_host_reads(monkeypatch):
        d, e = edge_deaths(A, backend="torch")
    # The same tree as the torch backend on the exact dissimilarity, to rounding of the ranking
    # (1 + slack − |ρ| orders as 1 − |ρ|); deaths in the order of the edges.
    ref = tn.zero_persistence(tn.correlation_dissimilarity(A.double()), backend="torch")
    np.testing.assert_allclose(np.sort(d.detach().numpy()), ref.deaths, rtol=0, atol=1e-6)
    assert e.shape == (A.shape[1] - 1, 2) and bool((e[:, 0] < e[:, 1]).all())


def test_device_step_nan_raises_the_named_error_on_the_cpu():
    A = _activations(1)
    A[5, 9] = float("nan")
    with pytest.raises(tn.NonFiniteActivationsError, match="example 5, neuron 9"):
        tn.TopologicalRedundancy(backend="torch")(A)


def test_changed_edges_is_read_on_request():
    loss = tn.TopologicalRedundancy(backend="torch", refresh_every=2)
    for step in range(3):
        loss(_activations(step))
    assert loss.changed_edges is not None and 0 <= loss.changed_edges <= 39
    loss.refresh()
    assert loss.changed_edges is None


def test_device_path_cache_searches_again_when_the_selection_changes(monkeypatch):
    # The selection is compared on the device (no host read): other neurons of the same
    # sizes make a new tree, as a dead hub does (on the CPU at once).
    loss = tn.TopologicalRedundancy(backend="torch", refresh_every=100)
    A = _activations(0)
    first = {"h": torch.arange(0, 40)}
    with no_host_reads(monkeypatch):
        loss(A, selection=first)
        loss(A, selection={"h": torch.arange(0, 40)})  # the same neurons: the cached tree
    assert loss._age == 2
    with no_host_reads(monkeypatch):
        loss(A, selection={"h": torch.arange(1, 41)})  # other neurons: a new search
    assert loss._age == 1


def test_dead_hub_guard_acts_on_the_device_path():
    # A hub of the cached tree dies: on the CPU the flag is ready at once and this very call
    # searches again (on a GPU, the first call after the flag is ready).
    A = _activations(0, n=30)
    base = A[:, 0].clone()
    for j in range(1, 30):
        A[:, j] = base + 0.3 * A[:, j]  # every neuron close to neuron 0: a star around it
    loss = tn.TopologicalRedundancy(backend="torch", refresh_every=100)
    loss(A)
    edges_before = loss._edges.clone()
    assert int((edges_before == 0).sum()) > 5  # neuron 0 is a hub
    A2 = A.clone()
    A2[:, 0] = 0.0
    loss(A2)
    assert int((loss._edges == 0).sum()) == 1  # a new tree: the dead neuron on one edge
    assert loss._age == 1


_STEPS = {
    "T1": lambda: tn.TopologicalRedundancy(backend="torch"),
    "T1-refresh20": lambda: tn.TopologicalRedundancy(backend="torch", refresh_every=20),
    "T2": lambda: tn.DeathSpread(backend="torch"),
    "DeCov": lambda: tn.DeCov(),
    "CorrelationPenalty": lambda: tn.CorrelationPenalty(),
}


def _treat_the_cpu_as_a_device(monkeypatch):
    """The baselines (and a recorder left to choose) take the device path where the
    activations are on a device: the proxy runs it on the CPU."""
    import topo_neurons._finite as finite

    monkeypatch.setattr(finite, "on_device", lambda A: True)


@pytest.mark.parametrize("sampling", [None, "importance"])
@pytest.mark.parametrize("term", list(_STEPS))
def test_regularized_wrapper_step_on_the_device_path(monkeypatch, term, sampling):
    # The whole Regularized step (recording, the recorder's checks, the sampling, the
    # regulariser) reads nothing back, and gives what the host path gives.
    def make(seed):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(12, 30), nn.ReLU(), nn.Linear(30, 5)).double()
        s = tn.ImportanceSampling(0.5) if sampling else None
        return model, tn.Regularized(model, _STEPS[term](), weight=0.1, sampling=s)

    (model, reg), (_, ref) = make(0), make(0)
    if hasattr(ref.regularizer, "backend"):
        ref.regularizer.backend = "native"
    g = torch.Generator().manual_seed(1)
    for _ in range(4):
        x = torch.randn(64, 12, dtype=torch.float64, generator=g)
        with monkeypatch.context() as m:
            if term in ("DeCov", "CorrelationPenalty"):
                _treat_the_cpu_as_a_device(m)
            with no_host_reads(m):
                out = reg(x)
                (out.output.sum() + out.penalty).backward()
        expected = ref(x)
        torch.testing.assert_close(out.penalty, expected.penalty, rtol=1e-9, atol=1e-12)
    assert all(p.grad is not None for p in model.parameters())


def test_regularized_recorder_checks_follow_the_regularisers_path():
    # The recorder reads nothing back where the regulariser does not, and keeps the named
    # error (a host read) where the regulariser reads anyway (backend="native").
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).double()
    x = torch.randn(20, 4, dtype=torch.float64)
    expected = {"torch": True, "native": False, "auto": None}
    for backend, sync_free in expected.items():
        reg = tn.Regularized(model, tn.TopologicalRedundancy(backend=backend))
        reg(x)
        assert reg.recorder._sync_free is sync_free
    reg = tn.Regularized(model, tn.DeCov())  # no backend: sync-free on a device
    reg(x)
    assert reg.recorder._sync_free is None


def test_recorder_nan_on_the_device_path_raises_the_named_error_on_the_cpu(monkeypatch):
    # sync_free on the CPU: the device-side check fails at once and the named error (layer,
    # example, neuron) is raised, as on the host path.
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).double()
    x = torch.randn(20, 4, dtype=torch.float64)
    x[7] = float("nan")
    for make in (lambda: tn.TopologicalRedundancy(backend="torch"), tn.DeCov):
        reg = tn.Regularized(model, make())
        with monkeypatch.context() as m:
            _treat_the_cpu_as_a_device(m)
            with pytest.raises(tn.NonFiniteActivationsError, match="example 7") as err:
                reg(x)
        assert err.value.layer == "0" and err.value.example == 7


def test_baselines_nan_on_the_device_path_raise_the_named_error_on_the_cpu(monkeypatch):
    A = _activations(2)
    A[4, 11] = float("inf")
    for loss in (tn.DeCov(), tn.CorrelationPenalty()):
        with monkeypatch.context() as m:
            _treat_the_cpu_as_a_device(m)
            with pytest.raises(tn.NonFiniteActivationsError, match="example 4, neuron 11"):
                loss(A)


def test_baselines_on_the_device_path_equal_the_host_path(monkeypatch):
    A = _activations(5)
    extreme = A.clone()
    extreme[:, 2] *= 1e160  # an extreme column: always rescaled on the device path
    cases = ((tn.DeCov(), A), (tn.CorrelationPenalty(), A), (tn.CorrelationPenalty(), extreme))
    for loss, X in cases:
        Xd, Xh = X.clone().requires_grad_(), X.clone().requires_grad_()
        with monkeypatch.context() as m:
            _treat_the_cpu_as_a_device(m)
            with no_host_reads(m):
                val = loss(Xd)
                val.backward()
        ref = loss(Xh)
        ref.backward()
        assert torch.equal(val, ref) and torch.equal(Xd.grad, Xh.grad)


def _importance_reference(a: torch.Tensor, k: int) -> np.ndarray:
    # Largest mean |activation| first, ties towards the smaller index (numpy's lexsort).
    score = a.abs().mean(dim=0).numpy()
    return np.sort(np.lexsort((np.arange(score.size), -score))[:k])


@pytest.mark.parametrize("seed", range(5))
def test_importance_sampling_device_selection_equals_the_host_selection(monkeypatch, seed):
    from topo_neurons.capture._checks import select_columns

    rng = np.random.default_rng(seed)
    h = rng.standard_normal((32, 41))
    h[:, 5] = h[:, 9]  # ties in mean |activation|: equal columns, a sign flip, constants
    h[:, 30] = -h[:, 9]
    h[:, [12, 13, 14]] = 0.5
    h[:, 20] = -0.5
    full = {"h": torch.from_numpy(h), "out": torch.from_numpy(rng.standard_normal((32, 3)))}
    for p in (0.5, 0.1, 0.97):
        s = tn.ImportanceSampling(p)
        host_sel, host_cols = select_columns(s, full, sync_free=False)
        with no_host_reads(monkeypatch):
            dev_sel, dev_cols = select_columns(s, full, sync_free=True)
        k = max(1, int(np.floor(p * 41 + 1e-9)))
        np.testing.assert_array_equal(dev_sel["h"].numpy(), _importance_reference(full["h"], k))
        for name in full:
            assert torch.equal(dev_sel[name], host_sel[name])
            assert torch.equal(dev_cols[name], host_cols[name])
        assert dev_cols["out"] is full["out"]  # the output layer kept whole, not gathered


def test_a_users_strategy_is_checked_on_the_device_path(monkeypatch):
    from topo_neurons.capture._checks import select_columns

    class Everything:
        def select(self, per_layer, output_layer):
            return {n: torch.arange(a.shape[1]) for n, a in per_layer.items()}

    class OutOfRange(Everything):
        def select(self, per_layer, output_layer):
            return {n: torch.tensor([0, a.shape[1]]) for n, a in per_layer.items()}

    full = {"h": torch.randn(8, 5), "out": torch.randn(8, 2)}
    with no_host_reads(monkeypatch):
        _, cols = select_columns(Everything(), full, sync_free=True)
    assert all(torch.equal(cols[n], full[n]) for n in full)  # gathered: the same values
    for sync_free in (False, True):
        with pytest.raises(ValueError, match=r"outside \[0, 5\) for layer 'h'"):
            select_columns(OutOfRange(), full, sync_free=sync_free)


@pytest.mark.parametrize("path", ["dense", "tiled"])
def test_analyse_device_cpu_gives_the_same_report(path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 40), nn.ReLU(), nn.Linear(40, 5)).double()
    X = torch.randn(200, 10, dtype=torch.float64)
    a = tn.analyse(model, X, path=path)
    b = tn.analyse(model, X, device="cpu", path=path)
    assert a.meta["path"] == b.meta["path"] == path
    np.testing.assert_array_equal(a.barcode.deaths, b.barcode.deaths)
    np.testing.assert_array_equal(a.barcode.edges, b.barcode.edges)
    for name in a.layers:
        np.testing.assert_array_equal(a.layers[name].barcode.deaths, b.layers[name].barcode.deaths)


def test_analyse_dense_path_on_the_torch_backend_equals_the_default_report(monkeypatch):
    # The dense path with the torch backend: correlation, dissimilarity and trees computed
    # where the streaming sums live (here the CPU), against the default host path.
    import topo_neurons.analysis._build as build
    from tests._compare import assert_same_tree

    calls = []
    real = build._correlation_on_device

    def spy(acc):
        C = real(acc)
        # The same elementwise operations as the host's correlation (numpy there, torch here):
        # equal to rounding (bit for bit where both libraries round alike, as on this project's
        # machines; not asserted, another CPU's vector kernels may differ in the last bit).
        np.testing.assert_allclose(C.numpy(), acc.correlation(), rtol=0, atol=1e-14)
        calls.append(1)
        return C

    monkeypatch.setattr(build, "_correlation_on_device", spy)

    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(10, 40), nn.ReLU(), nn.Linear(40, 6)).double()
    X = torch.randn(300, 10, dtype=torch.float64)
    X[:, 3] = 0.0
    a = tn.analyse(model, X, path="dense")
    b = tn.analyse(model, X, device="cpu", path="dense", backend="torch")
    assert a.meta["path"] == b.meta["path"] == "dense"
    assert calls == [1]  # the torch path's correlation, where the sums live; not the default's
    assert b.barcode.backend == "torch" and a.barcode.backend == "native"
    with tn.ActivationRecorder(model, detach=True) as rec:
        model(X)
    D = tn.correlation_dissimilarity(rec.activations()).numpy()  # the analysed neurons
    assert D.shape[0] == b.barcode.n_points
    np.testing.assert_allclose(b.barcode.deaths, a.barcode.deaths, rtol=0, atol=1e-12)
    assert_same_tree(a.barcode.edges, b.barcode.edges, D, atol=1e-12)
    for name in a.layers:
        np.testing.assert_allclose(
            b.layers[name].barcode.deaths, a.layers[name].barcode.deaths, rtol=0, atol=1e-12
        )
    assert a.network.redundant_pairs == b.network.redundant_pairs


# --------------------------------------------------------------------------- on a GPU
@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_dense_tree_equals_the_cpu_tree_of_the_same_matrix(dtype):
    rng = np.random.default_rng(0)
    for D in (
        rng.random((300, 300)),
        rng.integers(0, 3, (300, 300)).astype(np.float64),
        np.full((50, 50), 0.5),
    ):
        D = np.triu(D, 1)
        D = torch.tensor(D + D.T, dtype=dtype)
        e_cpu, d_cpu = torch_mst_dense(D)
        e_gpu, d_gpu = torch_mst_dense(D.cuda())
        assert e_gpu.device.type == "cuda" and d_gpu.dtype == dtype
        assert torch.equal(e_gpu.cpu(), e_cpu) and torch.equal(d_gpu.cpu(), d_cpu)
        bc = tn.zero_persistence(D.cuda())  # auto: the torch backend on a GPU
        assert bc.backend == "torch"
        np.testing.assert_array_equal(bc.edges, e_cpu.numpy())


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("kind", ["abs", "sqrt"])
def test_cuda_activations_tiles_match_the_cpu_engine_to_rounding(kind):
    rng = np.random.default_rng(1)
    A = rng.standard_normal((64, 1500)).astype(np.float32)
    A[:, 5] = 2.0
    A[:, 40] = A[:, 3]
    ref = tn.correlation_persistence(A, kind, block_size=512)
    for block in (None, 512):
        bc = tn.correlation_persistence(torch.from_numpy(A).cuda(), kind, block_size=block)
        assert bc.backend == "torch" and bc.n_points == 1500
        # Other GEMM shapes on the device: deaths to rounding (near-ties may swap edges).
        np.testing.assert_allclose(bc.deaths, ref.deaths, rtol=0, atol=2e-6)
        np.testing.assert_allclose(bc.deaths.sum(), ref.deaths.sum(), rtol=1e-5)


@pytest.mark.cuda
@cuda
def test_cuda_gradcheck_of_the_device_deaths():
    rng = np.random.default_rng(2)
    X = np.triu(rng.random((7, 7)), 1)
    iu = torch.triu_indices(7, 7, 1, device="cuda")
    w = torch.tensor(X + X.T, dtype=torch.float64, device="cuda")[iu[0], iu[1]]
    w.requires_grad_()

    def deaths(w):
        S = torch.zeros(7, 7, dtype=w.dtype, device=w.device).index_put((iu[0], iu[1]), w)
        return tn.differentiable_deaths(S + S.T, backend="torch")

    assert torch.autograd.gradcheck(deaths, (w,), eps=1e-7, atol=1e-6)


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("refresh_every", [1, 20])
@pytest.mark.parametrize("term", ["T1", "T2"])
def test_cuda_regularised_step_never_synchronises(term, refresh_every):
    torch.manual_seed(0)
    l1, l2 = nn.Linear(784, 450).cuda(), nn.Linear(450, 10).cuda()
    loss_t = (tn.TopologicalRedundancy if term == "T1" else tn.DeathSpread)(
        refresh_every=refresh_every
    )
    opt = torch.optim.SGD([*l1.parameters(), *l2.parameters()], lr=0.01)
    x = torch.randn(256, 784, device="cuda")
    y = torch.randint(0, 10, (256,), device="cuda")

    def step():
        h = torch.relu(l1(x))
        out = l2(h)
        penalty = 0.1 * loss_t(torch.cat([h, out], dim=1))
        (nn.functional.cross_entropy(out, y) + penalty).backward()
        opt.step()
        opt.zero_grad()
        return penalty

    for _ in range(2):  # warm-up: lazy initialisation may synchronise once
        step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            penalty = step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    assert torch.isfinite(penalty).item()


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("term", list(_STEPS))
@pytest.mark.parametrize("sampling", [None, "importance"])
def test_cuda_regularized_wrapper_step_never_synchronises(term, sampling):
    model = nn.Sequential(nn.Linear(784, 450), nn.ReLU(), nn.Linear(450, 10)).cuda()
    loss = _STEPS[term]()
    if hasattr(loss, "backend"):
        loss.backend = "auto"  # the torch backend on a GPU
    s = tn.ImportanceSampling(0.5) if sampling else None
    reg = tn.Regularized(model, loss, weight=0.1, sampling=s)
    x = torch.randn(256, 784, device="cuda")
    for _ in range(2):  # warm-up: lazy initialisation may synchronise once
        reg(x).penalty.backward()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = reg(x)
        (out.output.sum() + out.penalty).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.cuda
@cuda
def test_cuda_losses_equal_the_host_backend():
    A = _activations(3, m=128, n=200).cuda().requires_grad_()
    for make in (tn.TopologicalRedundancy, tn.DeathSpread):
        dev = make()(A)  # auto: torch on the GPU
        host = make(backend="native")(A)
        torch.testing.assert_close(dev, host, rtol=1e-9, atol=1e-12)


@pytest.mark.cuda
@cuda
def test_cuda_dead_hub_guard_acts_once_its_flag_is_ready():
    A = _activations(0, n=30)
    base = A[:, 0].clone()
    for j in range(1, 30):
        A[:, j] = base + 0.3 * A[:, j]
    A = A.cuda()
    loss = tn.TopologicalRedundancy(refresh_every=100)  # auto: torch on the GPU
    loss(A)
    A2 = A.clone()
    A2[:, 0] = 0.0
    loss(A2)
    torch.cuda.synchronize()  # the flag is ready now: the next call acts on it
    loss(A2)
    assert int((loss._edges == 0).sum()) == 1


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("path", ["dense", "tiled"])
def test_cuda_analyse_matches_the_cpu_report(monkeypatch, path):
    import topo_neurons.persistence._tiled as tiled

    devices = []
    real = tiled.torch_mst_activations

    def spy(A, *args, **kwargs):
        devices.append(A.device.type)
        return real(A, *args, **kwargs)

    monkeypatch.setattr(tiled, "torch_mst_activations", spy)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 300), nn.ReLU(), nn.Linear(300, 10)).double()
    X = torch.randn(600, 20, dtype=torch.float64)
    cpu = tn.analyse(model, X, path=path)
    gpu = tn.analyse(model, X, device="cuda", path=path)
    assert next(model.parameters()).device.type == "cpu"  # moved back
    np.testing.assert_allclose(gpu.barcode.deaths, cpu.barcode.deaths, rtol=0, atol=1e-9)
    if path == "tiled":  # the trees were searched on the device
        assert devices and set(devices) == {"cuda"}


# --------------------------------------------------------------------------- the benchmark
@pytest.mark.slow
def test_gpu_benchmark_smoke_run(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"
    spec = importlib.util.spec_from_file_location("bench_gpu", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.main(["--smoke", "--device", "cpu", "--out", str(tmp_path)])
    variants = {r["variant"] for r in result["training"]}
    assert {"plain", "T1 (device)", "T1 k=20 (device)", "T2 (device)", "DeCov"} <= variants
    assert {r["model"] for r in result["training"]} == {"paper MLP", "wide mixer"}
    assert all(r["step_ms"] > 0 for r in result["training"])
    assert all(r["syncs_per_step"] is None for r in result["training"])  # no count on a CPU
    h0 = result["h0"]
    assert len(h0) == 4 and h0[0]["seconds"] > 0
    # The device path's deaths equal the CPU engine's (the same calls on a CPU).
    assert h0[1]["max_death_difference_vs_device"] == 0.0
    saved = json.loads((tmp_path / "gpu.json").read_text())
    assert saved["meta"]["smoke"] is True
    assert "| wide mixer |" in (tmp_path / "gpu.md").read_text()
