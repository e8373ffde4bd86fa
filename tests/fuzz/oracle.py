"""The readings of one file: torch's and CPython's (the oracle, inert) and ckptlint's (static).

Runs inside a worker process (tests/fuzz/worker.py) that has already imported torch,
dropped privileges and limited its address space.
"""

from __future__ import annotations

import io
import pickle
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

from . import inert

_TORCHSCRIPT = "fuzz oracle: torch.load handed the file to torch.jit.load (not run)"


@dataclass
class Reading:
    """Globals one loader requested, in order, and how it ended (``ok`` or ``Type: message``)."""

    globals: list[tuple[str, str]] = field(default_factory=list)
    outcome: str = "ok"
    undecided: bool = False
    """The stop depends on what a stand-in really is, so a real load may go further: torch compared a
    stand-in with the legacy magic number or protocol version (``torch.serialization.MAGIC_NUMBER`` or
    ``builtins.int(...)`` there could pass), or the loader stopped at an operation on a placeholder
    (:func:`inert.stopped_on_a_stand_in`). The reading is then a lower bound."""
    map_location: str | None = None
    """``"cpu"`` where torch.load was re-run with it (see ``_RESTORE``)."""
    bytes_io_globals: list[tuple[str, str]] = field(default_factory=list)
    """Globals ``torch.load(io.BytesIO(data))`` requested that ``torch.load(path)`` did not. torch reads a file
    object differently: no tar attempt without a ``fileno`` (``_should_read_directly``), and the C unpickler
    consumes a FRAME that outlasts its STOP from a file without ``peek``, so the next legacy pickle starts
    elsewhere. ckptlint may report these (a torch.load reaches them), never globals no torch.load reaches."""
    file_object: str | None = None
    """How the BytesIO reading ended, where it requested more."""
    at_location: bool = False
    """torch.load stopped inside ``default_restore_location`` (only for the reading without ``map_location``)."""


@dataclass
class OracleResult:
    torch: Reading
    """``torch.load(f, pickle_module=inert, weights_only=False)``."""
    pickle: Reading
    """``pickle.load(f)`` with the inert unpickler."""
    weights_only: bool
    """Whether ``torch.load(f, weights_only=True)`` returned."""
    weights_only_outcome: str
    torchscript: bool
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CkptlintResult:
    format: str | None
    error: str | None
    globals: list[tuple[str, str, str]]
    """``(module, name, stream)`` for every global ckptlint reports, the partial ones included."""
    loaded_streams: list[str]
    pickle_load_stream: str | None
    """The stream ckptlint says ``pickle.load(f)`` reads (``pickle#0``), when it names one."""
    verdict: bool | None
    crash: str | None
    seconds: float
    rss_kib: int
    """Peak resident memory ckptlint added during the call (VmHWM, reset just before it)."""
    codes: list[str] = field(default_factory=list)
    """The rule codes of ckptlint's findings (CK107 is checked on oracle-nondeterministic inputs)."""
    file_object_streams: list[str] = field(default_factory=list)
    """The streams ckptlint says ``torch.load`` of a file object without ``fileno`` reads besides
    ``loaded_streams`` (``facts.extra["file_object_streams"]``: a tar's byte-0 legacy reading)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _outcome(e: BaseException) -> str:
    line = str(e).strip().splitlines()
    return f"{type(e).__name__}: {line[0][:200] if line else ''}"


def install_torchscript_guard() -> None:
    """torch.load hands TorchScript archives to torch.jit.load; the oracle records that, never runs it."""
    import torch

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(_TORCHSCRIPT)

    torch.jit.load = refuse


def _torch_reading(path: str) -> tuple[Reading, bool]:
    out = _torch_load_inert(path, None)
    if out.at_location:
        out = _torch_load_inert(path, "cpu")
    script = _TORCHSCRIPT in out.outcome
    with open(path, "rb") as f:
        buffer = io.BytesIO(f.read())
    other = _torch_load_inert(buffer, out.map_location)
    out.bytes_io_globals = [g for g in other.globals if g not in out.globals]
    if out.bytes_io_globals:
        out.file_object = f"io.BytesIO: {other.outcome}"
    return out, script


_RESTORE = "default_restore_location"
"""torch.load without ``map_location`` stops at a storage whose location tag no backend of this machine
restores (an unknown tag, a CUDA tag on a CPU machine, a tag that is no string); ``map_location="cpu"``
(the common call) reads on. ckptlint reports what a load reaches either way, so where the error came out
of torch's ``default_restore_location`` the oracle's reading is the one with ``map_location="cpu"``."""


def _torch_load_inert(path: str | io.BytesIO, map_location: str | None) -> Reading:
    import torch

    inert.reset(real_storage_classes=True)
    out = Reading(map_location=map_location)
    try:
        torch.load(path, pickle_module=inert, weights_only=False, map_location=map_location)
    except Exception as e:  # noqa: BLE001 - every failure is a reading to compare, never fatal
        out.outcome = _outcome(e)
        frames = traceback.extract_tb(e.__traceback__)
        out.at_location = map_location is None and any(f.name == _RESTORE for f in frames)
    out.globals = list(inert.REQUESTS)
    out.undecided = (inert.STAND_IN_RESULTS[0] > 0 and out.outcome.startswith(
        ("RuntimeError: Invalid magic number", "RuntimeError: Invalid protocol version"))) or \
        inert.stopped_on_a_stand_in(out.outcome)
    return out


def _pickle_reading(path: str) -> Reading:
    inert.reset()
    out = Reading()
    try:
        with open(path, "rb") as f:
            inert.load(f)
    except Exception as e:  # noqa: BLE001 - as above
        out.outcome = _outcome(e)
    out.globals = list(inert.REQUESTS)
    out.undecided = inert.stopped_on_a_stand_in(out.outcome)
    return out


def _weights_only(path: str) -> tuple[bool, str]:
    import torch

    try:
        torch.load(path, weights_only=True)
    except Exception as e:  # noqa: BLE001 - "refuses" is the answer we compare
        return False, _outcome(e)
    return True, "ok"


def read_with_oracle(path: str) -> OracleResult:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch_reading, script = _torch_reading(path)
        pickle_reading = _pickle_reading(path)
        loads, why = _weights_only(path)
    return OracleResult(torch_reading, pickle_reading, loads, why, script, time.perf_counter() - start)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> int:
    """Reset the kernel's RSS high-water mark to the current RSS (Linux >= 4.0); returns that RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return _status_kib("VmRSS")


def read_with_ckptlint(path: str) -> CkptlintResult:
    from ckptlint.checker import check_file

    before = _reset_peak()
    start = time.perf_counter()
    try:
        fr = check_file(path)
    except BaseException as e:  # noqa: BLE001 - a traceback out of ckptlint is the finding
        seconds = time.perf_counter() - start
        tb = traceback.extract_tb(e.__traceback__)
        where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
        return CkptlintResult(None, None, [], [], None, None, _outcome(e) + where, seconds,
                              _status_kib("VmHWM") - before)
    seconds = time.perf_counter() - start
    rss = _status_kib("VmHWM") - before
    inv = fr.inventory
    globals_: list[tuple[str, str, str]] = []
    loaded: list[str] = []
    streams: list[str] = []
    file_object: list[str] = []
    if inv is not None:
        globals_ = [(g.module, g.name, g.stream) for g in inv.globals]
        loaded = list(inv.facts.loaded_streams)
        streams = list(inv.facts.streams)
        file_object = [str(x) for x in (inv.facts.extra or {}).get("file_object_streams") or []]
    verdict = fr.verdict.loads if fr.verdict is not None else None
    first = "pickle#0" if "pickle#0" in streams or any(s == "pickle#0" for _, _, s in globals_) else None
    codes = sorted({str(f.code) for f in fr.findings})
    return CkptlintResult(str(fr.format) if fr.format else None, fr.error, globals_, loaded, first, verdict,
                          None, seconds, max(rss, 0), codes, file_object)


def pickle_protocol_of(data: bytes) -> int | None:
    """The PROTO byte at the start, for summaries."""
    if data[:1] == pickle.PROTO and len(data) > 1:
        return data[1]
    return None
