"""Two gloo processes on CPU: losses and gradients equal the single-process run on the full batch.

One spawn of two ranks runs every check (starting processes costs seconds); each rank sends its
results back through a queue and the parent compares them with a single-process reference.
"""

from __future__ import annotations

import multiprocessing as mp
import socket
import traceback

import numpy as np
import pytest
import torch
from torch import nn

import topo_neurons as tn
from topo_neurons.distributed import gather_activations, use_distributed, world_size

WORLD = 2
M_PER_RANK = 12
N_NEURONS = 9
TIMEOUT_S = 120


def full_activations() -> torch.Tensor:
    rng = np.random.default_rng(42)
    base = rng.standard_normal((WORLD * M_PER_RANK, 3))
    A = base @ rng.standard_normal((3, N_NEURONS)) + 0.6 * rng.standard_normal(
        (WORLD * M_PER_RANK, N_NEURONS)
    )
    A[:, 4] = 1.5  # a dead neuron, constant over the global batch
    return torch.from_numpy(A)


def losses(distributed: bool) -> dict[str, nn.Module]:
    """The losses under test; on the ranks with distributed=True or "auto"."""
    on, auto = (True, "auto") if distributed else (False, False)
    return {
        "t1-abs": tn.TopologicalRedundancy(distributed=on),
        "t1-sqrt-mean": tn.TopologicalRedundancy("sqrt", "mean", distributed=on),
        "t2-abs": tn.DeathSpread(0.5, distributed=on),
        "t2-sqrt": tn.DeathSpread(0.3, "sqrt", distributed=auto),
        "corr": tn.CorrelationPenalty(distributed=on),
        "decov": tn.DeCov(distributed=auto),
    }


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 3))


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    x = torch.randn(WORLD * M_PER_RANK, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (WORLD * M_PER_RANK,), generator=g)
    return x, y


def objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Task loss + 0.1 · T1 over the activations of every layer (single process)."""
    with tn.ActivationRecorder(model) as rec:
        out = model(x)
    return nn.functional.cross_entropy(out, y) + 0.1 * tn.TopologicalRedundancy()(rec.activations())


def _worker(rank: int, port: int, queue: mp.Queue) -> None:
    import torch.distributed as dist

    try:
        torch.set_num_threads(1)
        dist.init_process_group(
            "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
        )
        res: dict[str, object] = {"world": world_size(), "auto": use_distributed("auto")}
        sl = slice(rank * M_PER_RANK, (rank + 1) * M_PER_RANK)
        A_local = full_activations()[sl].clone()
        for name, loss in losses(True).items():
            a = A_local.clone().requires_grad_()
            value = loss(a)
            (g,) = torch.autograd.grad(value, a)
            res[name] = (value.item(), g.numpy())
        # gradient="exact": the exact partial derivative of the global loss.
        a = A_local.clone().requires_grad_()
        G = gather_activations(a, gradient="exact")
        value = tn.TopologicalRedundancy()(G)
        (g,) = torch.autograd.grad(value, a)
        res["exact"] = (value.item(), g.numpy(), G.detach().numpy())
        # End to end: DistributedDataParallel averages the parameter gradients.
        model = mlp().double()
        ddp = nn.parallel.DistributedDataParallel(model)
        x, y = batch()
        # DDP hooks its reducer on the wrapper's forward: run the forward through the wrapper.
        with tn.ActivationRecorder(ddp.module) as rec:
            out = ddp(x[sl])
        obj = nn.functional.cross_entropy(out, y[sl]) + 0.1 * tn.TopologicalRedundancy(
            distributed=True
        )(rec.activations())
        obj.backward()
        res["ddp"] = (obj.item(), {k: p.grad.numpy().copy() for k, p in model.named_parameters()})
        # Importance sampling ranks neurons on the global batch: every rank keeps the same.
        acts = {"h": A_local.abs() * (1 + rank), "out": torch.zeros(M_PER_RANK, 2)}
        sel = tn.ImportanceSampling(0.4, distributed=True).select(acts, "out")
        res["importance"] = sel["h"].tolist()
        # A NaN on rank 1 only: every rank raises (none is left waiting), naming the rank.
        bad = A_local.clone()
        if rank == 1:
            bad[3, 5] = float("nan")
        try:
            tn.TopologicalRedundancy(distributed=True)(bad)
        except ValueError as exc:
            res["nan"] = str(exc)
        # Unequal shapes across ranks: a clear error on every rank.
        try:
            gather_activations(torch.zeros(3 + rank, 2))
        except ValueError as exc:
            res["uneven"] = str(exc)
        queue.put((rank, res))
        dist.destroy_process_group()
    except BaseException:
        queue.put((rank, {"error": traceback.format_exc()}))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def rank_results() -> dict[int, dict]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, port, queue)) for r in range(WORLD)]
    for p in procs:
        p.start()
    results = {}
    try:
        for _ in range(WORLD):
            rank, res = queue.get(timeout=TIMEOUT_S)
            results[rank] = res
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
                p.join()
    assert sorted(results) == list(range(WORLD))  # every rank answered: no loop below is empty
    for rank, res in results.items():
        assert "error" not in res, f"rank {rank} failed:\n{res['error']}"
    return results


def test_ranks_see_the_process_group(rank_results):
    for res in rank_results.values():
        assert res["world"] == WORLD and res["auto"] is True


def test_losses_equal_the_single_process_run(rank_results):
    A = full_activations()
    assert len(losses(False)) == 6
    for name, loss in losses(False).items():
        ref = loss(A).item()
        for rank, res in rank_results.items():
            value, _ = res[name]
            np.testing.assert_allclose(value, ref, rtol=1e-12, err_msg=f"{name} rank {rank}")


def test_losses_single_process_without_group_raises_only_for_true():
    with pytest.raises(ValueError, match="needs an initialised"):
        tn.DeCov(distributed=True)(full_activations())


def test_gradients_ddp_convention_are_world_size_times_the_exact_slice(rank_results):
    """gradient="ddp" (default): rank r receives W · ∂L/∂A_r, undone by DDP's averaging."""
    assert len(losses(False)) == 6
    for name, loss in losses(False).items():
        A = full_activations().requires_grad_()
        (g_ref,) = torch.autograd.grad(loss(A), A)
        for rank, res in rank_results.items():
            _, g = res[name]
            sl = slice(rank * M_PER_RANK, (rank + 1) * M_PER_RANK)
            np.testing.assert_allclose(
                g, WORLD * g_ref[sl].numpy(), rtol=1e-9, atol=1e-12, err_msg=name
            )
        assert float(g_ref.abs().sum()) > 0


def test_gradient_exact_mode_equals_the_single_process_slice(rank_results):
    A = full_activations().requires_grad_()
    value = tn.TopologicalRedundancy()(A)
    (g_ref,) = torch.autograd.grad(value, A)
    for rank, res in rank_results.items():
        v, g, gathered = res["exact"]
        np.testing.assert_array_equal(gathered, A.detach().numpy())  # rank order
        np.testing.assert_allclose(v, value.item(), rtol=1e-12)
        sl = slice(rank * M_PER_RANK, (rank + 1) * M_PER_RANK)
        np.testing.assert_allclose(g, g_ref[sl].numpy(), rtol=1e-9, atol=1e-12)


def test_ddp_parameter_gradients_equal_the_single_process_run(rank_results):
    model = mlp().double()
    x, y = batch()
    obj = objective(model, x, y)
    obj.backward()
    assert len(list(model.named_parameters())) > 0
    for rank, res in rank_results.items():
        _, grads = res["ddp"]
        assert sorted(grads) == sorted(k for k, _ in model.named_parameters())
        for k, p in model.named_parameters():
            np.testing.assert_allclose(
                grads[k], p.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=f"{k} rank {rank}"
            )


def test_distributed_importance_sampling_uses_the_global_batch(rank_results):
    A = full_activations().abs()
    A[M_PER_RANK:] *= 2  # rank 1 scaled its slice by 1 + rank
    expected = tn.ImportanceSampling(0.4).select({"h": A, "out": torch.zeros(1, 2)}, "out")["h"]
    local0 = tn.ImportanceSampling(0.4).select({"h": A[:M_PER_RANK], "out": A[:1]}, "out")["h"]
    assert local0.tolist() != expected.tolist()  # the local ranking would differ
    for res in rank_results.values():
        assert res["importance"] == expected.tolist()


def test_nan_on_one_rank_raises_on_every_rank(rank_results):
    for res in rank_results.values():
        assert "nan at example 15 of the gathered batch (rank 1, example 3), neuron 5" in res["nan"]


def test_uneven_shapes_are_reported_with_every_rank(rank_results):
    for res in rank_results.values():
        assert "same activation shape" in res["uneven"]
        assert "{0: (3, 2), 1: (4, 2)}" in res["uneven"]


def test_gather_is_identity_in_one_process_and_checks_mode():
    A = torch.randn(3, 2)
    assert gather_activations(A) is A
    with pytest.raises(ValueError, match=r"gradient='sum'.*\('ddp', 'exact'\)"):
        gather_activations(A, gradient="sum")
    with pytest.raises(ValueError, match="True, False and 'auto'"):
        use_distributed("always")
