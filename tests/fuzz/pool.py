"""Worker processes and the per-input timeout: a hostile input can hang or kill a worker, never the runner."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ".".join(Path(__file__).resolve().parent.relative_to(ROOT).parts)
"""``tests.fuzz`` whatever name pytest imported this module under."""


class Worker:
    def __init__(self, log: IO[str] | None = None) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                   PYTHONHASHSEED="0", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.proc = subprocess.Popen([sys.executable, "-m", f"{PACKAGE}.worker"], cwd=ROOT, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=log if log is not None else subprocess.DEVNULL, text=True, bufsize=1)
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline()
        if not ready:
            raise RuntimeError("fuzz worker failed to start")
        self.pending: dict[str, Any] | None = None
        self.started = 0.0

    def send(self, req: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.pending = req
        self.started = time.monotonic()
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Pool:
    """``jobs`` workers; :meth:`run` yields one reply per request, crashes and timeouts included."""

    def __init__(self, jobs: int, timeout: float, log: IO[str] | None = None) -> None:
        self.jobs = jobs
        self.timeout = timeout
        self.log = log
        self.workers = [Worker(log) for _ in range(jobs)]

    def close(self) -> None:
        for w in self.workers:
            w.kill()

    def _replace(self, w: Worker) -> Worker:
        w.kill()
        fresh = Worker(self.log)
        self.workers[self.workers.index(w)] = fresh
        return fresh

    def run(self, requests: Any) -> Any:
        """Yield ``(request, reply)``; a dead or hung worker gives ``{"worker_failed": ...}`` and is replaced."""
        todo = iter(requests)
        sel = selectors.DefaultSelector()
        exhausted = False

        def feed(w: Worker) -> None:
            nonlocal exhausted
            if exhausted:
                return
            try:
                w.send(next(todo))
            except StopIteration:
                exhausted = True
                return
            assert w.proc.stdout is not None
            sel.register(w.proc.stdout, selectors.EVENT_READ, w)

        for w in list(self.workers):
            feed(w)
        while any(w.pending is not None for w in self.workers):
            events = sel.select(timeout=0.5)
            for key, _ in events:
                w = key.data
                line = w.proc.stdout.readline()
                sel.unregister(key.fileobj)
                req, w.pending = w.pending, None
                if line:
                    yield req, json.loads(line)
                    feed(w)
                else:
                    code = w.proc.wait()
                    yield req, {"worker_failed": f"worker died (exit {code})"}
                    feed(self._replace(w))
            now = time.monotonic()
            for w in list(self.workers):
                if w.pending is not None and now - w.started > self.timeout:
                    assert w.proc.stdout is not None
                    sel.unregister(w.proc.stdout)
                    req, w.pending = w.pending, None
                    yield req, {"worker_failed": f"no answer within {self.timeout:.0f} s"}
                    feed(self._replace(w))
        sel.close()

    def one(self, req: dict[str, Any]) -> dict[str, Any]:
        for _, reply in self.run([req]):
            return dict(reply)
        raise RuntimeError("no reply")
