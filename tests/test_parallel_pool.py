"""ckptlint.parallel: results in the jobs' order from other processes, errors at their position,
a dead worker is its job's result, and no pool at all where one would not help."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ckptlint import parallel
from ckptlint.errors import CkptlintError, OutputError
from ckptlint.parallel import Done, Raise, default_jobs, run_in_order

pytestmark = pytest.mark.integration  # starts worker processes


def pid_after(n: int) -> tuple[int, int]:
    """Job ``n``: later jobs finish first (the earlier ones are busier), and say which process ran them."""
    sum(range((8 - n) * 20_000))
    return n, os.getpid()


def fails_on_three(n: int) -> int:
    if n == 3:
        raise OutputError(f"/x/{n}", "no space left")  # two positional arguments: does not pickle back as itself
    if n == 5:
        raise ValueError("five")
    return n


def dies_in_a_worker(n: int) -> int:
    """Jobs 1 and 2 kill the worker process running them (never the test's own process)."""
    if n in (1, 2) and os.getpid() != int(os.environ["PARALLEL_TEST_PARENT"]):
        os.kill(os.getpid(), signal.SIGKILL)
    return n * 10


def crashed(n: int, reason: str) -> int:
    assert "ended abruptly" in reason
    return -n


def lost(n: int, reason: str) -> tuple[int, int]:
    raise AssertionError(f"job {n}: {reason}")


@pytest.fixture(params=["fork", "spawn"])
def method(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both start methods ckptlint uses (fork where safe, spawn elsewhere), whatever this machine picks."""
    monkeypatch.setattr(parallel, "start_method", lambda: request.param)
    return str(request.param)


def test_results_in_order_from_worker_processes(method: str) -> None:
    results = list(run_in_order(pid_after, list(range(8)), 3, lost))
    assert [n for n, _ in results] == list(range(8))
    # this process is one of the three: the first job (forked workers then inherit what it imported)
    # and every third chunk after it; two workers run the rest
    pids = [pid for _, pid in results]
    assert pids[0] == os.getpid() and pids.count(os.getpid()) < 8
    assert len(set(pids)) <= 3


def test_done_values_keep_their_place(method: str) -> None:
    items: list[int | Done[tuple[int, int]] | Raise] = [0, Done((-1, 0)), 2, Done((-3, 0)), 4]
    assert [n for n, _ in run_in_order(pid_after, items, 2, lost)] == [0, -1, 2, -3, 4]


def test_an_error_is_raised_at_its_position(method: str) -> None:
    seen = []
    with pytest.raises(CkptlintError) as e:
        for n in run_in_order(fails_on_three, list(range(8)), 2, crashed):
            seen.append(n)
    assert seen == [0, 1, 2]  # what a serial run yields before raising
    assert str(e.value) == "/x/3: cannot write: no space left"  # the line cli.main prints, unchanged
    serial = []
    with pytest.raises(OutputError):
        for n in run_in_order(fails_on_three, list(range(8)), 1, crashed):
            serial.append(n)
    assert seen == serial


def test_an_exception_that_does_not_pickle_back_keeps_its_name_base_and_message(method: str) -> None:
    with pytest.raises(CkptlintError) as e:
        list(run_in_order(fails_on_three, [3, 4], 2, crashed))
    assert type(e.value).__name__ == "OutputError" and str(e.value) == "/x/3: cannot write: no space left"
    with pytest.raises(ValueError, match=r"^five$"):  # pickles back as itself: the very type
        list(run_in_order(fails_on_three, [4, 5, 6], 2, crashed))


def slow_then_fails_on_four(n: int) -> int:
    """Job 1 (a worker's) is slow, so this process checks its own chunks ahead meanwhile; job 4 fails."""
    sum(range(2_000_000 if n == 1 else 10))
    if n == 4:
        raise LookupError(f"job {n}")
    return n


def test_an_error_found_ahead_is_raised_at_its_turn(method: str) -> None:
    seen = []
    with pytest.raises(LookupError, match="job 4"):
        for n in run_in_order(slow_then_fails_on_four, list(range(9)), 2, crashed):
            seen.append(n)
    assert seen == [0, 1, 2, 3]


def test_raise_marks_where_a_serial_run_stops(method: str) -> None:
    items: list[int | Done[int] | Raise] = [0, 1, Raise(KeyError("target"))]
    seen = []
    with pytest.raises(KeyError):
        for n in run_in_order(fails_on_three, items, 2, crashed):
            seen.append(n)
    assert seen == [0, 1]


def test_a_worker_that_dies_is_that_jobs_result_and_the_rest_are_checked(method: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARALLEL_TEST_PARENT", str(os.getpid()))
    results = list(run_in_order(dies_in_a_worker, list(range(6)), 2, crashed))
    assert results[0] == 0 and results[3:] == [30, 40, 50]
    assert -1 in results[1:3] and set(results[1:3]) <= {-1, 10, -2, 20}  # the job the worker died on: crashed


def waits_in_a_worker(n: int) -> tuple[int, int]:
    """In a worker, every job waits until the last job has been checked (a marker file); job 11, the
    last, writes it. Only a caller that takes the next free job itself (not the jobs a fixed share
    gives it) gets there; the wait is bounded, so a caller that does not fails the test, not hangs."""
    import time

    marker = os.environ["PARALLEL_TEST_MARKER"]
    if os.getpid() != int(os.environ["PARALLEL_TEST_PARENT"]):
        for _ in range(600):
            if os.path.exists(marker):
                break
            time.sleep(0.05)
    if n == 11:
        with open(marker, "w"):
            pass
    return n, os.getpid()


def test_whoever_is_free_takes_the_next_job(method: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PARALLEL_TEST_PARENT", str(os.getpid()))
    monkeypatch.setenv("PARALLEL_TEST_MARKER", str(tmp_path / "last-done"))
    results = list(run_in_order(waits_in_a_worker, list(range(12)), 2, lost))
    assert [n for n, _ in results] == list(range(12))
    by_worker = [n for n, pid in results if pid != os.getpid()]
    assert by_worker and by_worker == list(range(1, len(by_worker) + 1))  # the first it was sent, then stuck
    assert len(by_worker) <= 2  # two small chunks ahead at most: this process checked all the others meanwhile
    assert (tmp_path / "last-done").exists()


def big(n: int) -> bytes:
    """A result larger than a pipe holds (a worker's result arrives in many reads)."""
    return bytes([n]) * (3 << 20) + str(os.getpid()).encode()


def not_big(n: int, reason: str) -> bytes:
    raise AssertionError(f"job {n}: {reason}")


def test_results_larger_than_a_pipe_arrive_whole(method: str) -> None:
    results = list(run_in_order(big, list(range(5)), 2, not_big))
    assert [r[:3 << 20] for r in results] == [bytes([n]) * (3 << 20) for n in range(5)]
    assert {int(r[3 << 20:]) for r in results} - {os.getpid()}  # some came from a worker


BUFFERED = """
import sys
from ckptlint.parallel import run_in_order
def double(n):
    return 2 * n
def crashed(n, reason):
    raise AssertionError(reason)
if __name__ == "__main__":
    sys.stdout.write("before ")  # still in this process's buffer when the workers start
    print(list(run_in_order(double, list(range(9)), 3, crashed)))
"""


def test_what_the_caller_buffered_is_written_once(tmp_path: Path) -> None:
    script = tmp_path / "buffered.py"
    script.write_text(BUFFERED)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True).stdout
    assert out == "before [0, 2, 4, 6, 8, 10, 12, 14, 16]\n"


def made(n: int) -> tuple[int, ...]:
    return pid_after(n)


def kept(result: tuple[int, ...]) -> tuple[int, ...]:
    """What a caller keeps: the job's number, where it was made, and whether this ran in that process too."""
    n, pid = result
    return n, pid, int(pid == os.getpid())


def not_made(n: int, reason: str) -> tuple[int, ...]:
    raise AssertionError(f"job {n}: {reason}")


@pytest.mark.parametrize("workers", [1, 2])
def test_shrink_is_applied_where_each_result_is_made(method: str, workers: int) -> None:
    results = list(run_in_order(made, list(range(9)), workers, not_made, shrink=kept))
    assert [r[0] for r in results] == list(range(9))
    assert all(len(r) == 3 and r[2] == 1 for r in results)  # shrunk, in the process that made it
    assert {r[1] for r in results} != {os.getpid()} if workers > 1 else {r[1] for r in results} == {os.getpid()}


def cheap(n: int) -> tuple[int, int]:
    """Job 150 kills the worker running it (never the test's own process)."""
    if n == 150 and os.getpid() != int(os.environ["PARALLEL_TEST_PARENT"]):
        os.kill(os.getpid(), signal.SIGKILL)
    return n, os.getpid()


def crashed_pair(n: int, reason: str) -> tuple[int, int]:
    assert "ended abruptly" in reason
    return -n, 0


def test_many_jobs_in_chunks_keep_their_order_and_survive_a_death(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """300 jobs: several to a message (up to MAX_CHUNK), three processes; the worker that meets job 150
    dies with the jobs queued behind it, which are checked all the same, in their places."""
    monkeypatch.setenv("PARALLEL_TEST_PARENT", str(os.getpid()))
    results = list(run_in_order(cheap, list(range(300)), 3, crashed_pair))
    assert [abs(n) for n, _ in results] == list(range(300))
    assert [n for n, _ in results if n < 0] in ([], [-150])  # -150: it ran in a worker (this process: 150)
    pids = [pid for _, pid in results if pid]
    assert os.getpid() in pids and len(set(pids) - {os.getpid()}) >= 2  # this process and workers
    runs = [len(list(g)) for pid, g in itertools.groupby(pids) if pid != os.getpid()]
    assert max(runs) >= 3  # consecutive jobs went to one worker in one message (chunks of up to MAX_CHUNK)


def test_no_pool_for_two_jobs_or_one_worker() -> None:
    assert [pid for _, pid in run_in_order(pid_after, [0], 4, lost)] == [os.getpid()]
    assert [pid for _, pid in run_in_order(pid_after, [0, 1], 4, lost)] == [os.getpid()] * 2
    assert {pid for _, pid in run_in_order(pid_after, [0, 1, 2], 1, lost)} == {os.getpid()}
    items: list[int | Done[tuple[int, int]] | Raise] = [Done((9, 9)), 0, Done((8, 8)), 1]  # two real jobs
    assert [(n, pid) for n, pid in run_in_order(pid_after, items, 4, lost)][1:] == [(0, os.getpid()), (8, 8),
                                                                                   (1, os.getpid())]


def test_closing_early_stops_the_workers(method: str) -> None:
    gen = run_in_order(pid_after, list(range(8)), 2, lost)
    assert next(gen)[0] == 0  # run here
    n, pid = next(gen)
    assert n == 1 and pid != os.getpid()  # the first chunk after it goes to the worker
    gen.close()
    with pytest.raises(ProcessLookupError):  # terminated and reaped, not left running its queue
        os.kill(pid, 0)


def term_is_default(n: int) -> tuple[int, int, bool]:
    return n, os.getpid(), signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_callers_sigterm_handler_does_not_keep_a_worker_alive(method: str) -> None:
    before = signal.signal(signal.SIGTERM, lambda *_: None)  # inherited by a fork: stop() would wait forever
    try:
        results = list(run_in_order(term_is_default, list(range(6)), 2, lost))
    finally:
        signal.signal(signal.SIGTERM, before)
    in_workers = [default for _, pid, default in results if pid != os.getpid()]
    assert in_workers and all(in_workers)


def test_default_jobs_is_bounded_by_files_cores_and_the_cap() -> None:
    assert default_jobs(1) == 1
    assert default_jobs(0) == 1
    assert default_jobs(10_000) == min(parallel.available_cpus(), parallel.MAX_DEFAULT_JOBS)
    assert 1 <= default_jobs(3) <= 3


def test_fork_only_where_it_is_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import threading

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert parallel.start_method() == "fork"
    monkeypatch.setattr(threading, "active_count", lambda: 2)  # a threaded parent
    assert parallel.start_method() == "spawn"
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    monkeypatch.setitem(sys.modules, "torch", sys)  # torch's thread pools
    assert parallel.start_method() == "spawn"
    monkeypatch.delitem(sys.modules, "torch")
    monkeypatch.setattr(sys, "platform", "darwin")
    assert parallel.start_method() == "spawn"


def test_records_travel_as_columns_and_come_back_equal(tmp_path: Path) -> None:
    """A tuple of compact records inside a plain dataclass (an inventory's tensors) is pickled by
    columns and rebuilt without __init__: equal, of the very class, frozen as before; anything else
    (a mixed tuple, a lone record) travels as it did."""
    import dataclasses
    import pickle

    from _cli_files import safetensors_file
    from ckptlint.checker import check_file
    from ckptlint.inventory import StorageRecord, TensorRecord
    from ckptlint.parallel_pool import _dumper

    report = check_file(safetensors_file(tmp_path / "m.safetensors", {f"layer{i}.w": [i + 1, 2] for i in range(6)}))
    inv = report.inventory
    assert inv is not None and len(inv.tensors) == 6 and len(inv.storages) == 6
    mixed = (inv.tensors[0], inv.storages[0])
    data = _dumper((TensorRecord, StorageRecord))((report, mixed, inv.tensors[1]))
    assert b"records_from_columns" in data  # the records went by columns (rebuilt by inventory.records_from_columns)
    back, back_mixed, back_one = pickle.loads(data)  # noqa: S301 - made just above
    assert back == report and back_mixed == mixed and back_one == inv.tensors[1]
    assert [type(t) for t in back.inventory.tensors] == [TensorRecord] * 6
    assert [t.shape for t in back.inventory.tensors] == [(i + 1, 2) for i in range(6)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        back.inventory.tensors[0].dtype = "int8"
    plain = pickle.dumps((report, mixed, inv.tensors[1]))
    assert b"parallel_pool" not in plain and pickle.loads(plain) == (back, back_mixed, back_one)  # noqa: S301
