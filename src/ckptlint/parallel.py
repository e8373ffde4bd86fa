"""Checking many files on the machine's cores (``check --jobs``): a process pool, results in order.

Why processes: the readers are pure Python, so threads would share one core (the GIL).
Why ``fork`` where it is safe (Linux, no other thread in the parent, torch not imported): a
worker starts in milliseconds with ckptlint, its plugins and the parent's configuration
already loaded, so the registry a worker uses is the parent's own, runtime-registered plugins
included; ``spawn`` starts a fresh interpreter that imports ckptlint again (about the cost of
a whole small check per worker) and finds plugins through their entry points only. ``spawn``
is used where ``fork`` is not safe (macOS, Windows, a threaded parent, torch's thread pools).

The engine (``checker``) hands :func:`run_in_order` a sequence of jobs and the function that
checks one; the results come back as that function returns them (typed: ``FileReport``), in
the order of the jobs, whatever order the workers finish in. An exception a job raises is
raised when its position is reached, exactly where a serial run raises it; a worker that dies
(killed, out of memory) becomes that file's result through ``crashed``, never a hang.
``workers`` counts this process: it checks the first file (before forking, so the workers inherit
what that imported) and then every ``workers``-th chunk of files, while ``workers - 1`` pool
processes check the others ahead of it. With one worker, or two jobs or fewer, nothing is started.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:  # the pool's modules load only when a pool starts (startup time of a serial check)
    from collections import deque
    from concurrent.futures import Future, ProcessPoolExecutor

J = TypeVar("J")
R = TypeVar("R")

MAX_DEFAULT_JOBS = 8
"""The default never starts more workers than this (memory: each holds one file's inventory)."""
IN_FLIGHT_PER_WORKER = 4
"""Chunks submitted ahead per worker: enough to keep each busy, few enough to bound queued results."""
MAX_CHUNK = 16
"""Jobs per message at most: small files share one round trip; a slow file holds up few others."""


class Done(Generic[R]):
    """A position whose result is already known (an input that could not even be opened).

    Plain classes, not dataclasses: this module is imported by every check (start-up time)."""

    __slots__ = ("value",)

    def __init__(self, value: R) -> None:
        self.value = value


class Raise:
    """The position where a serial run would raise ``error`` (e.g. its target cannot be built)."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def available_cpus() -> int:
    """The cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        return os.cpu_count() or 1


def default_jobs(n_files: int) -> int:
    """``--jobs`` unset (or 0): one worker per file, per core, and at most :data:`MAX_DEFAULT_JOBS`."""
    return max(1, min(n_files, available_cpus(), MAX_DEFAULT_JOBS))


def start_method() -> str:
    """``fork`` where a forked worker is safe and cheap, else ``spawn`` (see the module docstring)."""
    import threading

    if sys.platform.startswith("linux") and threading.active_count() == 1 and "torch" not in sys.modules:
        return "fork"
    return "spawn"


def run_in_order(fn: Callable[[J], R], items: Sequence[J | Done[R] | Raise], workers: int,
                 crashed: Callable[[J, str], R], compact: tuple[type, ...] = ()) -> Generator[R, None, None]:
    """``fn(job)`` for every job, yielded in the order of ``items``; ``Done`` values as they are.

    ``fn`` must be a module-level function (workers receive it by name) and jobs and results
    must pickle. ``compact``: dataclasses (many per result, every field an ``__init__``
    argument) that travel back as their field values and are rebuilt by their constructor,
    about twice as fast to unpickle as slots dataclasses' own state (the parent unpickles every
    result: that is the pool's main serial cost). Close the iterator (``contextlib.closing``)
    to stop the workers early."""
    jobs = sum(1 for item in items if not isinstance(item, (Done, Raise)))
    if workers <= 1 or jobs <= 2:  # this process checks the first file anyway: one more is not worth a fork
        return _serial(fn, items)
    return _pooled(fn, items, min(workers, jobs), crashed, compact)


def _serial(fn: Callable[[J], R], items: Sequence[J | Done[R] | Raise]) -> Generator[R, None, None]:
    for item in items:
        if isinstance(item, Raise):
            raise item.error
        yield item.value if isinstance(item, Done) else fn(item)


def _pooled(fn: Callable[[J], R], items: Sequence[J | Done[R] | Raise], workers: int,
            crashed: Callable[[J, str], R], compact: tuple[type, ...]) -> Generator[R, None, None]:
    """This process is one of the ``workers``: it checks every ``workers``-th chunk itself (in
    order, while the pool's ``workers - 1`` processes check theirs ahead), so ``-j 2`` on two
    cores runs two checks at a time, not three processes on two cores."""
    from collections import deque
    from concurrent.futures.process import BrokenProcessPool

    following = iter(items)
    for first in following:  # the first job runs here: forked workers inherit its imports and caches
        if isinstance(first, Raise):
            raise first.error
        if isinstance(first, Done):
            yield first.value
            continue
        yield fn(first)
        break
    units = _units(list(following), workers)
    pool = _new_pool(workers - 1, compact)
    pending: deque[tuple[Any, Future[list[tuple[bool, Any]]] | None]] = deque()
    ahead: dict[int, list[tuple[bool, Any]]] = {}  # own chunks checked while waiting, by id(chunk)
    submitted = chunks = 0
    interrupted = False

    def work_ahead(future: Future[list[tuple[bool, Any]]]) -> None:
        """Rather than wait for a worker's chunk, check this process's next chunk (kept for its turn)."""
        for unit, other in pending:
            if future.done():
                return
            if other is None and isinstance(unit, list) and id(unit) not in ahead:
                ahead[id(unit)] = [_attempt(fn, job) for job in unit]

    def fill() -> None:
        nonlocal submitted, chunks
        while units and submitted < (workers - 1) * IN_FLIGHT_PER_WORKER:
            unit = units.popleft()
            future = None
            if isinstance(unit, list):
                chunks += 1
                if chunks % workers:  # this process takes every workers-th chunk
                    future = pool.submit(_call_all, fn, unit)
                    submitted += 1
            pending.append((unit, future))

    try:
        fill()
        while pending:
            unit, future = pending.popleft()
            if isinstance(unit, Raise):
                raise unit.error
            if isinstance(unit, Done):
                yield unit.value
                continue
            if future is None:  # this process's own chunk
                if id(unit) in ahead:
                    for ok, value in ahead.pop(id(unit)):
                        if not ok:
                            raise value
                        yield value
                else:
                    for job in unit:
                        yield fn(job)
                fill()
                continue
            submitted -= 1
            work_ahead(future)
            try:
                results = future.result()
            except BrokenProcessPool:  # a worker died: find out which of these jobs killed it
                _shutdown(pool, terminate=True)
                results = [_alone(fn, job, crashed, compact) for job in unit]
                pool = _new_pool(workers - 1, compact)
                pending = deque((u, None if f is None else pool.submit(_call_all, fn, u)) for u, f in pending)
            for ok, value in results:
                if not ok:
                    raise _error(value)
                yield value
            fill()
    except BaseException:
        interrupted = True
        raise
    finally:
        _shutdown(pool, terminate=interrupted or bool(pending))


def _units(items: list[Any], workers: int) -> deque[Any]:
    """Runs of consecutive jobs as lists (a few per worker, at most :data:`MAX_CHUNK`: one message
    each way per run instead of per file), ``Done`` and ``Raise`` on their own, in order."""
    from collections import deque

    jobs = sum(1 for item in items if not isinstance(item, (Done, Raise)))
    size = max(1, min(MAX_CHUNK, -(-jobs // (workers * IN_FLIGHT_PER_WORKER))))
    units: deque[Any] = deque()
    run: list[Any] = []
    for item in items:
        if isinstance(item, (Done, Raise)):
            if run:
                units.append(run)
                run = []
            units.append(item)
            continue
        run.append(item)
        if len(run) == size:
            units.append(run)
            run = []
    if run:
        units.append(run)
    return units


def _alone(fn: Callable[[J], R], item: J, crashed: Callable[[J, str], R],
           compact: tuple[type, ...]) -> tuple[bool, Any]:
    """One job in a worker of its own: its result, or ``crashed`` when that worker dies too."""
    from concurrent.futures.process import BrokenProcessPool

    pool = _new_pool(1, compact)
    try:
        return pool.submit(_call, fn, item).result()
    except BrokenProcessPool:
        return True, crashed(item, "internal error: the worker process checking it ended abruptly "
                                   "(killed, or out of memory)")
    finally:
        _shutdown(pool, terminate=True)


def _new_pool(workers: int, compact: tuple[type, ...]) -> ProcessPoolExecutor:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(start_method()),
                               initializer=_start_worker, initargs=(compact,))


def _shutdown(pool: ProcessPoolExecutor, terminate: bool) -> None:
    """Stop the pool; with ``terminate`` (Ctrl-C, an error, an early close) without waiting for
    jobs still running."""
    if terminate:
        processes = dict(getattr(pool, "_processes", None) or {})
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes.values():
            proc.terminate()
        for proc in processes.values():
            proc.join()
    else:
        pool.shutdown(wait=True)


def _start_worker(compact: tuple[type, ...]) -> None:
    """Ctrl-C reaches the whole process group: the parent stops the workers, which stay quiet.
    Results go back through multiprocessing's pickler, which sends ``compact`` classes by fields."""
    import signal
    from multiprocessing.reduction import ForkingPickler

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for cls in compact:
        ForkingPickler.register(cls, _by_fields)


def _by_fields(obj: Any) -> tuple[type, tuple[Any, ...]]:
    """``(cls, field values)``: unpickled as ``cls(*values)``, the dataclass's own ``__init__``."""
    cls = type(obj)
    getter = _GETTERS.get(cls)
    if getter is None:
        import dataclasses
        import operator

        getter = _GETTERS[cls] = operator.attrgetter(*(f.name for f in dataclasses.fields(cls)))
    values = getter(obj)
    return cls, values if isinstance(values, tuple) else (values,)


_GETTERS: dict[type, Callable[[Any], Any]] = {}


def _attempt(fn: Callable[[J], R], job: J) -> tuple[bool, Any]:
    """Here, ahead of the job's turn: ``(True, result)`` or ``(False, the exception)``, raised at its turn."""
    try:
        return True, fn(job)
    except Exception as e:  # noqa: BLE001 - raised again at this job's position
        return False, e


def _call_all(fn: Callable[[J], R], jobs: list[J]) -> list[tuple[bool, Any]]:
    """In a worker: :func:`_call` for each job of a chunk (each its own result or error)."""
    return [_call(fn, job) for job in jobs]


def _call(fn: Callable[[J], R], item: J) -> tuple[bool, Any]:
    """In a worker: ``(True, result)`` or ``(False, exception)``; an exception that does not pickle
    back as itself travels as a :class:`_Remote` (its type name and message: what front ends print)."""
    try:
        return True, fn(item)
    except Exception as e:  # noqa: BLE001 - raised again in the parent, at this job's position
        import pickle

        try:
            back = pickle.loads(pickle.dumps(e))  # noqa: S301 - our own object, just pickled
            if type(back) is type(e) and str(back) == str(e):
                return False, e
        except Exception:  # noqa: BLE001 - e.g. an __init__ with required keyword arguments
            pass
        from .errors import CkptlintError

        return False, _Remote(type(e).__name__, type(e).__module__, isinstance(e, CkptlintError), str(e))


class _Remote:
    """An exception from a worker that cannot pickle itself."""

    __slots__ = ("ckptlint", "message", "module", "name")

    def __init__(self, name: str, module: str, ckptlint: bool, message: str) -> None:
        self.name, self.module, self.ckptlint, self.message = name, module, ckptlint, message

    def error(self) -> Exception:
        """A stand-in of the same name, base (CkptlintError or Exception) and message."""
        from .errors import CkptlintError

        base: type[Exception] = CkptlintError if self.ckptlint else Exception
        stand_in: type[Exception] = type(self.name, (base,), {"__module__": self.module})
        return stand_in(self.message)


def _error(value: Any) -> BaseException:
    return value.error() if isinstance(value, _Remote) else value


__all__ = ["MAX_DEFAULT_JOBS", "Done", "Raise", "available_cpus", "default_jobs", "run_in_order", "start_method"]
