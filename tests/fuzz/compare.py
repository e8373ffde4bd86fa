"""Compare ckptlint's reading of one input with the oracle's; name each disagreement's class.

Three comparisons per input (docs/fuzzing.md):

* ``torch.load globals``: the globals in the streams ckptlint says torch.load unpickles
  (``facts.loaded_streams``) equal, as a set, those the inert unpickler was asked for when
  torch.load's own file handling drove it;
* ``pickle.load globals``: the globals ckptlint reports for the stream ``pickle#0`` (the
  pickle at byte 0, what ``pickle.load(f)`` reads) equal those ``pickle.load`` requested;
* ``weights_only``: ckptlint's verdict (``loads``) equals whether ``torch.load(weights_only=True)``
  returned; no verdict at all is a disagreement too.

Plus ckptlint's own conduct: a traceback, over 10 s or over 1 GiB is a disagreement.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from .oracle import CkptlintResult, OracleResult

SECONDS_LIMIT = 10.0
RSS_LIMIT_KIB = 1 << 20
CHECKS = ("torch.load globals", "pickle.load globals", "weights_only", "torchscript", "crash", "limits",
          "nondeterministic")


@dataclass
class Disagreement:
    family: str
    check: str
    klass: str
    """What kind of disagreement, stable across inputs (used to group and to pick a repro)."""
    only_ckptlint: list[str] = field(default_factory=list)
    only_oracle: list[str] = field(default_factory=list)
    ckptlint: str = ""
    oracle: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _names(pairs: Any) -> set[str]:
    return {f"{m}.{n}" for m, n in pairs}


def _shape(text: str) -> str:
    """An error message without its variable parts: quoted values, numbers, offsets."""
    text = re.sub(r"/\S*/ckptlint-fuzz-[^/\s]+/", "", text)
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", text)
    text = re.sub(r"\d+", "N", text)
    return text[:60]


def _set_diff(family: str, check: str, ck: set[str], oracle: set[str], ck_res: CkptlintResult,
              oracle_outcome: str) -> Disagreement | None:
    if ck == oracle:
        return None
    extra, missing = sorted(ck - oracle), sorted(oracle - ck)
    how = "+".join(w for w, xs in (("ckptlint-extra", extra), ("ckptlint-missing", missing)) if xs)
    state = "unreadable" if ck_res.error else (ck_res.format or "?")
    klass = f"{family}/{check}/{how}/ckptlint={state}/oracle={_shape(oracle_outcome)}"
    return Disagreement(family, check, klass, extra, missing,
                        f"format={ck_res.format} error={ck_res.error!r} loaded={ck_res.loaded_streams}",
                        oracle_outcome)


def misses_bytes_io_globals(ck: CkptlintResult, oracle: OracleResult) -> bool:
    """Whether torch.load(io.BytesIO(data)) requested a global ckptlint does not report as reached by
    torch.load, from the path or from a file object (``file_object_streams``): counted, not judged
    (docs/fuzzing.md, "file objects")."""
    loaded = set(ck.loaded_streams) | set(ck.file_object_streams)
    ck_torch = {f"{m}.{n}" for m, n, s in ck.globals if s in loaded}
    return not _names(oracle.torch.bytes_io_globals) <= ck_torch


def past_a_lower_bound(ck: CkptlintResult, oracle: OracleResult) -> bool:
    """Whether ckptlint reported strictly more than a lower-bound reading (counted in the summary, not judged)."""
    loaded = set(ck.loaded_streams)
    ck_torch = {f"{m}.{n}" for m, n, s in ck.globals if s in loaded}
    ck_pickle = {f"{m}.{n}" for m, n, s in ck.globals if s == "pickle#0"}
    return (oracle.torch.undecided and _names(oracle.torch.globals) < ck_torch) or (
        oracle.pickle.undecided and _names(oracle.pickle.globals) < ck_pickle)


def compare(family: str, ck: CkptlintResult, oracle: OracleResult | None) -> list[Disagreement]:
    out: list[Disagreement] = []
    if ck.crash is not None:
        out.append(Disagreement(family, "crash", f"{family}/crash/{_shape(ck.crash)}", ckptlint=ck.crash))
        return out
    if ck.seconds > SECONDS_LIMIT or ck.rss_kib > RSS_LIMIT_KIB:
        out.append(Disagreement(family, "limits", f"{family}/limits",
                                ckptlint=f"{ck.seconds:.1f} s, {ck.rss_kib // 1024} MiB"))
    if oracle is None:
        return out
    # TorchScript: torch handed the file to torch.jit.load, or it unpickled data.pkl itself; when torch
    # failed before deciding (a damaged archive), there is no answer to compare with.
    unpickled = oracle.torch.outcome == "ok" or bool(oracle.torch.globals)
    if (oracle.torchscript and ck.format != "torchscript") or (unpickled and ck.format == "torchscript"):
        out.append(Disagreement(family, "torchscript", f"{family}/torchscript/ckptlint={ck.format}",
                                ckptlint=f"format={ck.format}", oracle=oracle.torch.outcome))
    loaded = set(ck.loaded_streams)
    ck_torch = {f"{m}.{n}" for m, n, s in ck.globals if s in loaded}
    reached = _names(oracle.torch.globals)
    if oracle.torch.undecided and reached <= ck_torch:
        ck_torch = reached  # a real load may go on where the oracle's stand-in stopped: ckptlint may report more
    if reached <= ck_torch <= reached | _names(oracle.torch.bytes_io_globals):
        ck_torch = reached  # what torch.load(io.BytesIO(data)) reaches may be reported too
    d = _set_diff(family, "torch.load globals", ck_torch, reached, ck, oracle.torch.outcome)
    if d:
        out.append(d)
    ck_pickle = {f"{m}.{n}" for m, n, s in ck.globals if s == "pickle#0"}
    reached = _names(oracle.pickle.globals)
    if oracle.pickle.undecided and reached <= ck_pickle:
        ck_pickle = reached
    d = _set_diff(family, "pickle.load globals", ck_pickle, reached, ck, oracle.pickle.outcome)
    if d:
        out.append(d)
    if ck.verdict is None or ck.verdict != oracle.weights_only:
        state = "unreadable" if ck.error else (ck.format or "?")
        klass = (f"verdict/ckptlint={ck.verdict}/torch={oracle.weights_only}/{family}/ckptlint={state}/"
                 f"torch={_shape(oracle.weights_only_outcome)}")
        out.append(Disagreement("verdict", "weights_only", klass,
                                ckptlint=f"loads={ck.verdict} format={ck.format} error={ck.error!r}",
                                oracle=f"loads={oracle.weights_only}: {oracle.weights_only_outcome}"))
    return out
