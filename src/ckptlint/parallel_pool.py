"""The worker processes behind :func:`ckptlint.parallel.run_in_order`, and how jobs and results travel.

Each worker is started once with every job (inherited under ``fork``, pickled once under
``spawn``) and is then sent lists of job numbers; each result comes back pickled as soon as it
is made, in the order the numbers were sent. Under ``fork`` a worker is a bare ``os.fork`` with
two pipes: ``multiprocessing`` costs this process about 10 ms of imports before the first
worker starts (serial time, which ``-j`` cannot win back), and ``concurrent.futures`` adds a
thread that unpickles results while this process checks files of its own: they share one GIL.
``spawn`` uses ``multiprocessing`` (a fresh interpreter needs its bootstrap). No thread is
started here either way, so a replacement worker can still be forked safely. What the workers and
this process use to move results (pickle, signal, select, array) is imported here, before the fork:
imported after it, every process would pay for it again.
"""

from __future__ import annotations

import copyreg
import io
import operator
import os
import pickle
import select
import signal
import struct
import sys
from array import array
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from .record import field_names

MAX_CHUNK = 16
"""Job numbers per message at most: small files share one round trip; a slow file holds up few others."""
CRASHED = "internal error: the worker process checking it ended abruptly (killed, or out of memory)"
_HEADER = struct.Struct("<Q")


class Pool:
    """``size`` worker processes, fed from ``todo`` by :meth:`feed`, drained by :meth:`collect`."""

    def __init__(self, fn: Callable[[Any], Any], jobs: list[Any], size: int, crashed: Callable[[Any, str], Any],
                 compact: tuple[type, ...], method: str) -> None:
        self.fn, self.jobs, self.crashed, self.compact, self.method = fn, jobs, crashed, compact, method
        self.share = size + 1  # the calling process checks files too
        self.workers: list[_Forked | _Spawned] = []
        for _ in range(size):
            self.workers.append(self._start())

    def _start(self) -> _Forked | _Spawned:
        if self.method == "fork":
            return _Forked(self.fn, self.jobs, self.compact, self.workers)
        return _Spawned(self.fn, self.jobs, self.compact)

    def feed(self, todo: deque[int], done: dict[int, Any]) -> None:
        """Keep each worker two chunks ahead; chunks shrink with what is left, so that no one is
        left with a long queue while the others are done."""
        for w in self.workers:
            size = max(1, min(MAX_CHUNK, len(todo) // (4 * self.share)))
            while todo and len(w.outstanding) < 2 * size:
                chunk = [todo.popleft() for _ in range(min(size, len(todo)))]
                w.outstanding.extend(chunk)
                try:
                    w.send(array("q", chunk).tobytes())
                except OSError:  # it died while it had nothing to do
                    self._lost(w, done, todo)
                    break

    def collect(self, done: dict[int, Any], todo: deque[int], block: bool) -> None:
        """Results the workers have sent (waiting for one with ``block``), as pickled bytes under their
        job numbers; a worker that died is replaced (:meth:`_lost`)."""
        busy = [w for w in self.workers if w.outstanding]
        if not busy:
            return
        for w in _ready(busy, block):
            try:
                while w.outstanding:
                    done[w.outstanding.popleft()] = w.recv()
                    if not (w.outstanding and _ready([w], False)):
                        break
            except (EOFError, OSError):
                self._lost(w, done, todo)

    def _lost(self, w: _Forked | _Spawned, done: dict[int, Any], todo: deque[int]) -> None:
        """The job a worker died on is checked again alone (a crash of its own, or the file's result);
        the jobs queued behind it go back to the front, and a new worker takes its place."""
        w.stop(terminate=True)
        lost = list(w.outstanding)
        self.workers.remove(w)
        self.workers.append(self._start())
        if lost:
            done[lost[0]] = self._alone(lost[0])
            todo.extendleft(reversed(lost[1:]))

    def _alone(self, i: int) -> tuple[bool, Any] | bytes:
        w = self._start()
        try:
            w.send(array("q", [i]).tobytes())
            return w.recv()
        except (EOFError, OSError):
            return True, self.crashed(self.jobs[i], CRASHED)
        finally:
            w.stop(terminate=True)

    def close(self, terminate: bool) -> None:
        """Workers stop when told (all done), or at once (Ctrl-C, an error, an early close)."""
        if not terminate:
            for w in self.workers:
                with suppress(OSError):  # one that died meanwhile
                    w.send(b"")
        for w in self.workers:
            w.stop(terminate)


def _ready(busy: list[Any], block: bool) -> list[Any]:
    """The workers whose pipe has a result (or end-of-file): one ``poll`` system call where there is
    ``select.poll`` (``multiprocessing``'s ``wait`` builds a selector each time: slow at every turn)."""
    if not hasattr(select, "poll") or sys.platform == "win32":
        from multiprocessing.connection import wait

        ready = wait([w.results for w in busy], None if block else 0)
        return [w for w in busy if w.results in ready]
    poller = select.poll()
    fds = {}
    for w in busy:
        fds[w.results.fileno()] = w
        poller.register(w.results.fileno(), select.POLLIN)
    return [fds[fd] for fd, _ in poller.poll(None if block else 0)]


class _Pipes:
    """A worker's two pipes as seen from one end: framed messages (a length, then the bytes)."""

    __slots__ = ("r", "w")

    def __init__(self, r: int, w: int) -> None:
        self.r, self.w = r, w

    def fileno(self) -> int:
        return self.r

    def send_bytes(self, data: bytes) -> None:
        view = memoryview(_HEADER.pack(len(data)) + data)
        while view:
            view = view[os.write(self.w, view):]

    def recv_bytes(self) -> bytes:
        """The next message; EOFError when the other end is gone (also in the middle of a message)."""
        return self._exactly(_HEADER.unpack(self._exactly(_HEADER.size))[0])

    def _exactly(self, n: int) -> bytes:
        parts = []
        while n:
            part = os.read(self.r, min(n, 1 << 24))
            if not part:
                raise EOFError
            parts.append(part)
            n -= len(part)
        return b"".join(parts)

    def close(self) -> None:
        for fd in (self.r, self.w):
            with suppress(OSError):
                os.close(fd)


class _Forked:
    """A worker forked from this process: it inherits every job, so it is sent only their numbers."""

    __slots__ = ("outstanding", "pid", "results")

    def __init__(self, fn: Callable[[Any], Any], jobs: list[Any], compact: tuple[type, ...],
                 others: list[Any]) -> None:
        self.outstanding: deque[int] = deque()  # job numbers sent, in order: results come back in this order
        tasks_r, tasks_w = os.pipe()
        results_r, results_w = os.pipe()
        _widen(results_r)
        _flush()  # nothing this process has buffered is written twice
        pid = os.fork()
        if pid == 0:  # the worker: never returns to the caller
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)  # stop() ends it, whatever handler the caller set
                os.close(tasks_w)
                os.close(results_r)
                for other in others:  # other workers' pipes: their end-of-file must not wait for this one
                    other.results.close()
                serve(fn, jobs, _Pipes(tasks_r, results_w), compact)
                code = 0
            finally:
                _flush()
                os._exit(code)
        os.close(tasks_r)  # the worker's ends: its results pipe reads end-of-file when it dies
        os.close(results_w)
        self.pid, self.results = pid, _Pipes(results_r, tasks_w)

    def send(self, data: bytes) -> None:
        self.results.send_bytes(data)

    def recv(self) -> bytes:
        return self.results.recv_bytes()

    def stop(self, terminate: bool) -> None:
        if terminate:
            with suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
        self.results.close()
        with suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


class _Spawned:
    """A worker in a fresh interpreter (``multiprocessing``'s spawn): jobs pickled to it once."""

    __slots__ = ("outstanding", "proc", "results", "tasks")

    def __init__(self, fn: Callable[[Any], Any], jobs: list[Any], compact: tuple[type, ...]) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.outstanding: deque[int] = deque()
        tasks_r, self.tasks = ctx.Pipe(duplex=False)
        self.results, results_w = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_serve_spawned, args=(fn, jobs, tasks_r, results_w, compact), daemon=True)
        self.proc.start()
        tasks_r.close()
        results_w.close()
        _widen(self.results.fileno())

    def send(self, data: bytes) -> None:
        self.tasks.send_bytes(data)

    def recv(self) -> bytes:
        data: bytes = self.results.recv_bytes()
        return data

    def stop(self, terminate: bool) -> None:
        if terminate:
            self.proc.terminate()
        self.proc.join()
        self.tasks.close()
        self.results.close()


def _serve_spawned(fn: Callable[[Any], Any], jobs: list[Any], tasks: Any, results: Any,
                   compact: tuple[type, ...]) -> None:
    class Both:  # recv_bytes from one connection, send_bytes to the other
        recv_bytes, send_bytes = tasks.recv_bytes, results.send_bytes

    serve(fn, jobs, Both(), compact)


def serve(fn: Callable[[Any], Any], jobs: list[Any], pipes: Any, compact: tuple[type, ...]) -> None:
    """A worker: each job number it is sent, checked and its ``(ok, value)`` sent back, until told to stop.
    Ctrl-C reaches the whole process group: the parent stops the workers, which stay quiet."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    dumps = _dumper(compact)
    while True:
        try:
            message = pipes.recv_bytes()
        except EOFError:  # the parent is gone
            return
        if not message:
            return
        for i in array("q", message):
            pipes.send_bytes(dumps(_call(fn, jobs[i])))


def _call(fn: Callable[[Any], Any], item: Any) -> tuple[bool, Any]:
    """In a worker: ``(True, result)`` or ``(False, exception)``; an exception that does not pickle
    back as itself travels as a :class:`_Remote` (its type name and message: what front ends print)."""
    try:
        return True, fn(item)
    except Exception as e:  # noqa: BLE001 - raised again in the parent, at this job's position
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


def error_of(value: Any) -> BaseException:
    """What a worker sent as its job's exception, as the exception to raise here."""
    return value.error() if isinstance(value, _Remote) else value


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with suppress(AttributeError, OSError, ValueError):  # None, closed
            stream.flush()


def _widen(fd: int) -> None:
    """A worker blocks when its pipe is full: room for many results while this process checks a file."""
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 1 << 20)
    except (ImportError, AttributeError, OSError, ValueError):  # not Linux, or a lower limit
        pass


def _dumper(compact: tuple[type, ...]) -> Callable[[Any], bytes]:
    """``pickle.dumps`` that sends ``compact`` classes by their fields, and a tuple of them held by
    a plain dataclass (an inventory's tensors) as one column per field: pickled without a call per
    record, and rebuilt in a few C loops (:func:`~ckptlint.inventory.records_from_columns`), about 40%
    cheaper each way."""
    table: dict[Any, Any] = dict(copyreg.dispatch_table)
    for cls in compact:
        table[cls] = _by_fields
    plans: dict[type, tuple[str, ...] | None] = {}
    from .inventory import slot_setters

    kinds = frozenset(cls for cls in compact if slot_setters(cls) is not None)

    class Pickler(pickle.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            cls = type(obj)
            names = plans.get(cls, ())
            if names == ():
                names = plans[cls] = _plain_fields(cls)
            if not names:
                return NotImplemented
            state = obj.__dict__
            swapped = {}
            for name in names:
                value = state.get(name)
                if type(value) is tuple and len(value) > 1 and type(value[0]) in kinds:
                    kind = type(value[0])
                    if all(type(v) is kind for v in value):
                        swapped[name] = _Columns(kind, value)
            if not swapped:
                return NotImplemented
            return copyreg.__newobj__, (cls,), {**state, **swapped}  # type: ignore[attr-defined]

    def dumps(obj: Any) -> bytes:
        buf = io.BytesIO()
        pickler = Pickler(buf, pickle.HIGHEST_PROTOCOL)
        pickler.dispatch_table = table
        pickler.dump(obj)
        return buf.getvalue()

    return dumps


def _plain_fields(cls: type) -> tuple[str, ...] | None:
    """A record pickled by its ``__dict__`` (no slots, no pickling hooks of its own): its fields."""
    names = field_names(cls)
    if (names is None or "__dict__" not in dir(cls) or getattr(cls, "__setstate__", None)
            or any(getattr(cls, hook) is not getattr(object, hook) for hook in ("__reduce_ex__", "__reduce__"))):
        return None
    return names


class _Columns:
    """Records of one class, pickled as one tuple per field."""

    __slots__ = ("kind", "records")

    def __init__(self, kind: type, records: tuple[Any, ...]) -> None:
        self.kind, self.records = kind, records

    def __reduce__(self) -> tuple[Any, ...]:
        from .inventory import records_from_columns

        return records_from_columns, (self.kind, tuple(zip(*map(_getter(self.kind), self.records), strict=True)))


def _getter(cls: type) -> Callable[[Any], Any]:
    getter = _GETTERS.get(cls)
    if getter is None:
        names = field_names(cls) or ()
        one = operator.attrgetter(*names)
        getter = _GETTERS[cls] = one if len(names) > 1 else (lambda obj: (one(obj),))
    return getter


def _by_fields(obj: Any) -> tuple[type, tuple[Any, ...]]:
    """``(cls, field values)``: unpickled as ``cls(*values)``, the dataclass's own ``__init__``."""
    return type(obj), _getter(type(obj))(obj)


_GETTERS: dict[type, Callable[[Any], Any]] = {}
