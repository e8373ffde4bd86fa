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
what that imported), then starts ``workers - 1`` processes (:mod:`ckptlint.parallel_pool`) and,
between its turns, keeps them fed and checks the next job nobody has taken: whoever is free takes
the next files, so no process waits for another until the last few. With one worker, or two jobs
or fewer, nothing is started.
"""

from __future__ import annotations

import os
import sys
from collections import deque  # loaded already by typing (no start-up cost)
from collections.abc import Callable, Generator, Sequence
from typing import Any, Generic, TypeVar

J = TypeVar("J")
R = TypeVar("R")

MAX_DEFAULT_JOBS = 8
"""The default never starts more workers than this (memory: each holds one file's inventory)."""


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
                 crashed: Callable[[J, str], R], compact: tuple[type, ...] = (),
                 shrink: Callable[[R], R] | None = None) -> Generator[R, None, None]:
    """``fn(job)`` for every job, yielded in the order of ``items``; ``Done`` values as they are.

    ``fn`` must be a module-level function (workers receive it by name) and jobs and results
    must pickle. ``compact``: slots dataclasses, many per result (an inventory's tensors), that
    travel back by their field values: a tuple of them in a plain dataclass as one column per
    field (:mod:`ckptlint.parallel_pool`), about half the cost of pickle's own way each way.
    ``shrink`` (module-level too): what the caller keeps of each result, applied where the result
    is made, in a worker before it travels and here alike, so the results are the same whoever
    made them; moving a result costs this process about what checking a small file costs it
    (the unpickling, its memory), the largest part of the pool's overhead. Close the iterator
    (``contextlib.closing``) to stop the workers early."""
    if shrink is not None:
        fn = _Shrunk(fn, shrink)
    jobs = sum(1 for item in items if not isinstance(item, (Done, Raise)))
    if workers <= 1 or jobs <= 2:  # this process checks the first file anyway: one more is not worth a fork
        return _serial(fn, items)
    return _pooled(fn, items, min(workers, jobs), crashed, compact)


class _Shrunk(Generic[J, R]):
    """``shrink(fn(job))``: pickles (for spawned workers) when both functions do."""

    __slots__ = ("fn", "shrink")

    def __init__(self, fn: Callable[[J], R], shrink: Callable[[R], R]) -> None:
        self.fn, self.shrink = fn, shrink

    def __call__(self, job: J) -> R:
        return self.shrink(self.fn(job))


def _serial(fn: Callable[[J], R], items: Sequence[J | Done[R] | Raise]) -> Generator[R, None, None]:
    for item in items:
        if isinstance(item, Raise):
            raise item.error
        yield item.value if isinstance(item, Done) else fn(item)


def _pooled(fn: Callable[[J], R], items: Sequence[J | Done[R] | Raise], workers: int,
            crashed: Callable[[J, str], R], compact: tuple[type, ...]) -> Generator[R, None, None]:
    """This process is one of the ``workers``: between its turns it feeds the pool's ``workers - 1``
    processes and checks the next unassigned job itself, so ``-j 2`` on two cores runs two checks at
    a time (not three processes on two cores) and neither waits for the other until the last jobs."""
    pos = 0
    while pos < len(items):  # the first job runs here: forked workers inherit its imports and caches
        item = items[pos]
        pos += 1
        if isinstance(item, Raise):
            raise item.error
        if isinstance(item, Done):
            yield item.value
            continue
        yield fn(item)
        break
    end = next((i for i, item in enumerate(items) if isinstance(item, Raise)), len(items))  # a serial run stops
    jobs: list[Any] = [None if isinstance(item, (Done, Raise)) else item for item in items[:end]]
    todo = deque(i for i in range(pos, end) if jobs[i] is not None)
    if not todo:
        yield from _serial(fn, items[pos:])
        return
    from .parallel_pool import Pool, error_of

    pool = Pool(fn, jobs, min(workers - 1, len(todo)), crashed, compact, start_method())
    done: dict[int, tuple[bool, Any] | bytes] = {}  # results ahead of their turn (bytes: a worker's, pickled)
    finished = False
    try:
        while pos < len(items):
            item = items[pos]
            if isinstance(item, (Done, Raise)):
                pos += 1
                if isinstance(item, Raise):
                    raise item.error
                yield item.value
                continue
            pool.collect(done, todo, block=False)
            pool.feed(todo, done)
            if pos in done:
                ok, value = _loaded(done.pop(pos))
                pos += 1
                if not ok:
                    raise error_of(value)
                yield value
            elif todo:  # this job (or the next nobody has) is checked here while the workers check theirs
                i = todo.popleft()
                done[i] = _attempt(fn, jobs[i])
            else:
                pool.collect(done, todo, block=True)
        finished = True
    finally:
        pool.close(terminate=not finished)


def _loaded(result: tuple[bool, Any] | bytes) -> tuple[bool, Any]:
    import pickle

    if isinstance(result, bytes):
        loaded: tuple[bool, Any] = pickle.loads(result)  # noqa: S301 - our own worker's result
        return loaded
    return result


def _attempt(fn: Callable[[J], R], job: J) -> tuple[bool, Any]:
    """Here, ahead of the job's turn: ``(True, result)`` or ``(False, the exception)``, raised at its turn."""
    try:
        return True, fn(job)
    except Exception as e:  # noqa: BLE001 - raised again at this job's position
        return False, e


__all__ = ["MAX_DEFAULT_JOBS", "Done", "Raise", "available_cpus", "default_jobs", "run_in_order", "start_method"]
