"""Running the tiled engine's task list: in this thread, on local threads, or on Dask.

A plan is a list ``[(key, func, args)]`` in topological order; ``func is None`` marks data
(``args[0]`` is the value: the blocks of ``Z``). An argument that is a ``str`` is the key of an
earlier entry and stands for its result (no other argument is a string). The same plan runs

* ``"sync"``: one task after another in the calling thread;
* ``None``/``"threads"``: a ``ThreadPoolExecutor`` of ``torch.get_num_threads()`` threads
  running the earliest ready task of the plan first and freeing each result after its last
  reader (so a depth-first plan keeps a few results per merge level in memory), each task's
  GEMMs on one MKL thread (the kernels release the GIL); torch's thread count is restored
  afterwards;
* a ``dask.distributed.Client``: the blocks are scattered (each lands on one worker; a task
  fetches only the blocks it reads), then every task is submitted with futures as arguments.
  When the cluster loses its workers (and with them the scattered blocks and the results they
  held), the run stops with :class:`ClusterLostError`, saying what was done and what was lost;
  the progress stops counting.

:func:`connect_scheduler` connects to a running scheduler by address, within a ``timeout``.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .._threads import one_blas_thread, one_blas_thread_here

__all__ = ["SCHEDULERS", "ClusterLostError", "connect_scheduler", "run_plan"]

#: Named schedulers; a ``dask.distributed.Client`` is accepted too.
SCHEDULERS: tuple[str, ...] = ("threads", "sync")
_TILE_PREFIXES = ("tree-",)
#: Seconds :func:`connect_scheduler` waits for a scheduler by default.
DEFAULT_CONNECT_TIMEOUT = 10.0


class ClusterLostError(RuntimeError):
    """A Dask cluster lost the workers of a run (and the data they held) before it finished.

    Attributes
    ----------
    address : str
        The scheduler's address.
    done, total : int
        Tasks of the run that had finished, and all its tasks.
    workers : int or None
        Workers connected when the loss was seen (``None``: the scheduler did not answer).
    """

    def __init__(self, message: str, *, address: str, done: int, total: int, workers: int | None):
        super().__init__(message)
        self.address = address
        self.done = done
        self.total = total
        self.workers = workers

    def __reduce__(self):  # keyword attributes survive pickling (process pools)
        fields = {k: getattr(self, k) for k in ("address", "done", "total", "workers")}
        return (_rebuild_lost, (self.args, fields))


def _rebuild_lost(args: tuple, fields: dict) -> ClusterLostError:
    return ClusterLostError(*args, **fields)


def connect_scheduler(address: str, *, timeout: float = DEFAULT_CONNECT_TIMEOUT) -> Any:
    """A ``dask.distributed.Client`` of the running scheduler at ``address``.

    Parameters
    ----------
    address : str
        The scheduler's address, e.g. ``"tcp://host:8786"``.
    timeout : float, default 10
        Seconds to wait for the scheduler to answer (Dask's own default is 30).

    Returns
    -------
    distributed.Client
        Connected; close it (or use it as a context manager) when done.

    Raises
    ------
    ImportError
        Dask's distributed scheduler is not installed (``pip install 'topo_neurons[dask]'``).
    ValueError
        ``timeout`` is not a positive number; ``address`` is not a valid address.
    ConnectionError
        No scheduler answered at ``address`` within ``timeout`` seconds (the address, the
        timeout and the cause in the message).
    """
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds; got {timeout!r}")
    try:
        from distributed import Client
    except ImportError:
        raise ImportError(
            "a Dask scheduler needs Dask's distributed package: pip install 'topo_neurons[dask]'"
        ) from None
    try:
        return Client(address, timeout=float(timeout))
    except ValueError as exc:  # an unknown scheme, a malformed address
        raise ValueError(
            f"cannot connect to a Dask scheduler at {address!r}: not a valid address ({exc}); "
            f"e.g. tcp://host:8786"
        ) from None
    except (OSError, TimeoutError) as exc:
        cause = " ".join(str(exc).split()) or type(exc).__name__
        raise ConnectionError(
            f"cannot connect to a Dask scheduler: none answered at {address!r} within "
            f"{float(timeout):g} s ({cause}); is it running and reachable?"
        ) from None


def _is_client(obj: object) -> bool:
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - the optional extra is installed in CI
        return False
    return isinstance(obj, Client)


def tile_count(key: str) -> int:
    """Tiles a task computes: 1 for ``tree-i`` (a block), ``j1 − j0`` for
    ``pairs-i-j0-j1`` (the pairs of block ``i`` with blocks ``j0 … j1 − 1``), else 0."""
    if key.startswith("pairs-"):
        _, _, j0, j1 = key.split("-")
        return int(j1) - int(j0)
    return 1 if key.startswith(_TILE_PREFIXES) else 0


class _Progress:
    """Counts finished tile tasks; drives a tqdm bar or a ``callback(done, total)``."""

    def __init__(self, progress: bool | Callable[[int, int], None], total: int) -> None:
        self.total = total
        self.done = 0
        self.lock = threading.Lock()
        self.bar = None
        self.callback = progress if callable(progress) else None
        self.stopped = False
        if progress is True:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="tiles", unit="tile", leave=False)

    def tick(self, key: str) -> None:
        count = tile_count(key)
        if not count:
            return
        with self.lock:
            if self.stopped:
                return
            self.done += count
            if self.bar is not None:
                self.bar.update(count)
            if self.callback is not None:
                self.callback(self.done, self.total)

    def stop(self) -> None:
        """Count nothing more (the run failed); the bar closes."""
        with self.lock:
            self.stopped = True
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


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
    """Local threads: at most ``workers`` tasks at once, the earliest ready task of the plan
    first, every result freed as soon as its last reader has run.

    With a depth-first plan (each merge right after its inputs, as the tiled engine's), memory
    stays at a few results per merge level whatever the number of tasks: a merge outranks the
    tiles after it as soon as its inputs are done.
    """
    import heapq
    from concurrent.futures import FIRST_COMPLETED, wait

    index = {key: t for t, (key, _, _) in enumerate(plan)}
    results: dict[str, Any] = {}
    uses: dict[str, int] = {}
    waiting = [0] * len(plan)
    readers: list[list[int]] = [[] for _ in plan]
    ready: list[int] = []
    for t, (key, func, args) in enumerate(plan):
        if func is None:
            results[key] = args[0]
            continue
        deps = {a for a in args if isinstance(a, str)}
        for a in deps:
            uses[a] = uses.get(a, 0) + 1
            if plan[index[a]][1] is not None:
                waiting[t] += 1
                readers[index[a]].append(t)
        if waiting[t] == 0:
            heapq.heappush(ready, t)

    def call(t: int) -> Any:
        _, func, args = plan[t]
        return func(*_resolve(args, results.__getitem__))

    running: dict[Any, int] = {}
    with ThreadPoolExecutor(max_workers=workers, initializer=one_blas_thread_here) as pool:
        try:
            while ready or running:
                while ready and len(running) < workers:
                    t = heapq.heappop(ready)
                    running[pool.submit(call, t)] = t
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    t = running.pop(fut)
                    key, _, args = plan[t]
                    results[key] = fut.result()  # a failed task raises here
                    for a in {a for a in args if isinstance(a, str)}:
                        uses[a] -= 1
                        if uses[a] == 0 and a != final:
                            del results[a]
                    for r in readers[t]:
                        waiting[r] -= 1
                        if waiting[r] == 0:
                            heapq.heappush(ready, r)
                    prog.tick(key)
        finally:
            for fut in running:
                fut.cancel()
    return results[final]


def _one_thread_task(func: Callable, *args: Any) -> Any:
    """Run a task on a Dask worker with one torch/MKL thread (overlapping tasks share the
    count: the first saves it, the last restores it)."""
    with one_blas_thread():
        return func(*args)


def _run_client(plan: list, final: str, prog: _Progress, client: Any) -> Any:
    from concurrent.futures import CancelledError

    from distributed import KilledWorker
    from distributed.comm import CommClosedError

    token = uuid.uuid4().hex[:12]
    data_keys = [key for key, func, _ in plan if func is None]
    finished: set[str] = set()
    lock = threading.Lock()

    def done(fut: Any, key: str) -> None:
        # A callback also fires on a cancelled or failed task: only results count.
        if fut.status == "finished":
            with lock:
                finished.add(key)
            prog.tick(key)

    futures: dict[str, Any] = {}
    try:
        scattered = client.scatter([args[0] for _, func, args in plan if func is None])
        futures.update(zip(data_keys, scattered, strict=True))
        for key, func, args in plan:
            if func is None:
                continue
            fut = client.submit(
                _one_thread_task,
                func,
                *_resolve(args, futures.__getitem__),
                key=f"tn-{key}-{token}",
                pure=False,
            )
            fut.add_done_callback(lambda f, k=key: done(f, k))
            futures[key] = fut
        result = futures[final].result()
    except (CancelledError, KilledWorker, CommClosedError) as exc:
        prog.stop()
        with contextlib.suppress(Exception):
            client.cancel([f for k, f in futures.items() if k not in data_keys])
        raise _lost(client, plan, finished, exc) from exc
    del futures
    return result


def _lost(client: Any, plan: list, finished: set[str], exc: BaseException) -> ClusterLostError:
    """The error of a run whose cluster lost its workers: what was done, what was lost."""
    address = str(getattr(client.scheduler, "address", None) or "the scheduler")
    tasks = [key for key, func, _ in plan if func is not None]
    tiles = {key: tile_count(key) for key in tasks if tile_count(key)}
    with contextlib.suppress(Exception):
        workers: int | None = None
        workers = len(client.scheduler_info().get("workers", {}))
    now = (
        "the scheduler did not answer"
        if workers is None
        else "no worker left"
        if workers == 0
        else f"workers connected now: {workers}"
    )
    n_done = len(finished)
    tiles_done = sum(tiles[key] for key in finished.intersection(tiles))
    cause = " ".join(str(exc).split())
    message = (
        f"the Dask cluster at {address} lost its workers during the run ({now}): "
        f"{n_done} of {len(tasks)} tasks had finished ({tiles_done} of {sum(tiles.values())} "
        "tiles), "
        f"{len(tasks) - n_done} were lost with the blocks of Z and the results the workers held; "
        f"nothing of the run can be resumed: restart the workers and run it again "
        f"({type(exc).__name__}: {cause})"
    )
    return ClusterLostError(
        message, address=address, done=n_done, total=len(tasks), workers=workers
    )


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
    ClusterLostError
        The client's cluster lost its workers (and the data they held) before the end.
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
            return _run_pool(plan, final, prog, workers)
    finally:
        prog.close()
