"""Running the tiled engine's task list: in this thread, on local threads, or on Dask.

A plan is a list ``[(key, func, args)]`` in topological order; ``func is None`` marks data
(``args[0]`` is the value: the blocks of ``Z``). An argument that is a ``str`` is the key of an
earlier entry and stands for its result (no other argument is a string). The same plan runs

* ``"sync"``: one task after another in the calling thread;
* ``None``/``"threads"``: Dask's threaded scheduler when Dask is installed, else a
  ``ThreadPoolExecutor``; ``torch.get_num_threads()`` threads, each task's GEMMs on one MKL
  thread (the kernels release the GIL); torch's thread count is restored afterwards;
* a ``dask.distributed.Client``: the blocks are scattered (each lands on one worker; a task
  fetches only the blocks it reads), then every task is submitted with futures as arguments.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .._threads import one_blas_thread

__all__ = ["SCHEDULERS", "run_plan"]

#: Named schedulers; a ``dask.distributed.Client`` is accepted too.
SCHEDULERS: tuple[str, ...] = ("threads", "sync")
_TILE_PREFIXES = ("tree-", "pair-")


def _is_client(obj: object) -> bool:
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - the optional extra is installed in CI
        return False
    return isinstance(obj, Client)


class _Progress:
    """Counts finished tile tasks; drives a tqdm bar or a ``callback(done, total)``."""

    def __init__(self, progress: bool | Callable[[int, int], None], total: int) -> None:
        self.total = total
        self.done = 0
        self.lock = threading.Lock()
        self.bar = None
        self.callback = progress if callable(progress) else None
        if progress is True:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="tiles", unit="tile", leave=False)

    def tick(self, key: str) -> None:
        if not key.startswith(_TILE_PREFIXES):
            return
        with self.lock:
            self.done += 1
            if self.bar is not None:
                self.bar.update(1)
            if self.callback is not None:
                self.callback(self.done, self.total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _resolve(args: tuple, value: Callable[[str], Any]) -> list:
    return [value(a) if isinstance(a, str) else a for a in args]


def _run_sync(plan: list, final: str, prog: _Progress) -> Any:
    results: dict[str, Any] = {}
    uses: dict[str, int] = {}
    for _, _, args in plan:
        for a in args:
            if isinstance(a, str):
                uses[a] = uses.get(a, 0) + 1
    for key, func, args in plan:
        if func is None:
            results[key] = args[0]
            continue
        results[key] = func(*_resolve(args, results.__getitem__))
        for a in args:  # free what no later task reads
            if isinstance(a, str):
                uses[a] -= 1
                if uses[a] == 0 and a != final:
                    del results[a]
        prog.tick(key)
    return results[final]


def _run_pool(plan: list, final: str, prog: _Progress, workers: int) -> Any:
    """Thread pool without Dask: tasks are queued in topological order, so every task a
    running task waits for was queued before it (no deadlock)."""
    futures: dict[str, Any] = {}
    data: dict[str, Any] = {}

    def value(key: str) -> Any:
        return data[key] if key in data else futures[key].result()

    def call(key: str, func: Callable, args: tuple) -> Any:
        out = func(*_resolve(args, value))
        prog.tick(key)
        return out

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for key, func, args in plan:
            if func is None:
                data[key] = args[0]
            else:
                futures[key] = pool.submit(call, key, func, args)
        return value(final)


def _run_dask_threads(plan: list, final: str, prog: _Progress, workers: int) -> Any:
    import dask
    from dask.callbacks import Callback

    graph: dict[str, Any] = {}
    for key, func, args in plan:
        graph[key] = args[0] if func is None else (func, *args)

    def posttask(key, result, dsk, state, worker_id):  # Dask's callback signature
        prog.tick(key)

    with Callback(posttask=posttask):
        return dask.threaded.get(graph, final, num_workers=workers)


def _run_client(plan: list, final: str, prog: _Progress, client: Any) -> Any:
    token = uuid.uuid4().hex[:12]
    data_keys = [key for key, func, _ in plan if func is None]
    scattered = client.scatter([args[0] for _, func, args in plan if func is None])
    futures: dict[str, Any] = dict(zip(data_keys, scattered, strict=True))
    for key, func, args in plan:
        if func is None:
            continue
        fut = client.submit(
            func, *_resolve(args, futures.__getitem__), key=f"tn-{key}-{token}", pure=False
        )
        if key.startswith(_TILE_PREFIXES):
            fut.add_done_callback(lambda f, k=key: prog.tick(k))
        futures[key] = fut
    result = futures[final].result()
    del futures
    return result


def run_plan(
    plan: list,
    final: str,
    scheduler: Any,
    *,
    progress: bool | Callable[[int, int], None] = False,
    n_tiles: int = 0,
) -> Any:
    """Run ``plan`` on ``scheduler`` and return the result of ``final``.

    Raises
    ------
    ValueError
        ``scheduler`` is neither ``None``, one of :data:`SCHEDULERS`, nor a
        ``dask.distributed.Client``.
    """
    named = isinstance(scheduler, str) and scheduler in SCHEDULERS
    if not (scheduler is None or named or _is_client(scheduler)):
        raise ValueError(
            f"scheduler={scheduler!r} is not valid; use None, one of {SCHEDULERS} or a "
            "dask.distributed.Client"
        )
    prog = _Progress(progress, n_tiles)
    try:
        if _is_client(scheduler):
            return _run_client(plan, final, prog, scheduler)
        # Local: each task's GEMMs on one MKL thread, the tasks spread over the threads.
        with one_blas_thread() as workers:
            if scheduler == "sync":
                return _run_sync(plan, final, prog)
            try:
                import dask.threaded  # noqa: F401
            except ImportError:  # pragma: no cover - dask is installed in CI
                return _run_pool(plan, final, prog, workers)
            return _run_dask_threads(plan, final, prog, workers)
    finally:
        prog.close()
