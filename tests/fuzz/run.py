"""Run N inputs with a seed through the worker pool and summarise: counts, classes, limits, repros."""

from __future__ import annotations

import collections
import datetime
import platform
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .pool import ROOT, Pool
from .shrink import shrink


@dataclass
class Klass:
    klass: str
    family: str
    check: str
    count: int = 0
    index: int = -1
    size: int = 1 << 62
    example: dict[str, Any] = field(default_factory=dict)
    input_hex: str = ""
    shrunk_hex: str = ""
    features: set[str] | None = None
    """The generator features every input of this class used (what to leave out to avoid it)."""


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=False)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True,
                               text=True, check=False).stdout.strip()
        return out.stdout.strip() + ("+dirty-src" if dirty else "")
    except OSError:
        return "unknown"


def run(n: int, seed: int, jobs: int = 2, families: Sequence[str] | None = None, start: int = 0,
        timeout: float = 60.0, shrink_budget: int = 0, progress: bool = False,
        exclude: Sequence[str] = ()) -> dict[str, Any]:
    """Inputs ``start .. start+n-1`` of ``seed``; returns the summary (see docs/fuzzing.md)."""
    began = time.monotonic()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    pool = Pool(jobs, timeout)
    fams: collections.Counter[str] = collections.Counter()
    by_family: collections.Counter[str] = collections.Counter()
    by_check: collections.Counter[str] = collections.Counter()
    classes: dict[str, Klass] = {}
    failed: list[dict[str, Any]] = []
    limited = with_dis = 0
    seen: collections.Counter[str] = collections.Counter()
    ck_max_s = oracle_max_s = 0.0
    ck_max_rss = worker_max_rss = 0
    slowest = -1
    slow: list[tuple[float, int, int, str]] = []
    done = 0
    nondet: collections.Counter[str] = collections.Counter(
        {"inputs": 0, "readings_differed": 0, "ckptlint_reported_ck107": 0, "differed_with_ck107": 0})
    nondet_examples: list[dict[str, Any]] = []
    lower_bound_examples: list[int] = []
    bytes_io_examples: list[int] = []
    base = {"seed": seed, "families": list(families) if families else None, "exclude": list(exclude)}
    reqs = (dict(base, index=i) for i in range(start, start + n))
    try:
        for req, reply in pool.run(reqs):
            done += 1
            if progress and done % 5000 == 0:
                print(f"  {done}/{n} inputs, {sum(by_family.values())} disagreements, "
                      f"{time.monotonic() - began:.0f} s", flush=True)
            if "worker_failed" in reply:
                failed.append({"index": req["index"], "why": reply["worker_failed"]})
                continue
            fams[reply["family"]] += 1
            limited += bool(reply["oracle_limited"])
            seen["weights_only_loads"] += reply.get("weights_only_loads", False)
            seen["torch_load_reached_a_global"] += reply.get("torch_globals", 0) > 0
            seen["pickle_load_reached_a_global"] += reply.get("pickle_globals", 0) > 0
            seen["ckptlint_unreadable"] += reply.get("ck_unreadable", False)
            seen["ckptlint_reported_more_past_a_lower_bound"] += reply.get("past_lower_bound", False)
            if reply.get("past_lower_bound") and len(lower_bound_examples) < 10:
                lower_bound_examples.append(req["index"])
            seen["bytes_io_reached_globals_ckptlint_does_not_report"] += reply.get("bytes_io_unreported", False)
            if reply.get("bytes_io_unreported") and len(bytes_io_examples) < 10:
                bytes_io_examples.append(req["index"])
            slow = sorted([*slow, (reply["ck_seconds"], req["index"], reply["size"], reply["desc"])], reverse=True)[:5]
            if reply["ck_seconds"] > ck_max_s:
                ck_max_s, slowest = reply["ck_seconds"], req["index"]
            oracle_max_s = max(oracle_max_s, reply["oracle_seconds"])
            ck_max_rss = max(ck_max_rss, reply["ck_rss_kib"])
            worker_max_rss = max(worker_max_rss, reply["maxrss_kib"])
            nd = reply.get("nondeterministic")
            if nd is not None:
                nondet["inputs"] += 1
                nondet["readings_differed"] += bool(nd["differed"])
                nondet["ckptlint_reported_ck107"] += bool(nd["ck107"])
                nondet["differed_with_ck107"] += bool(nd["differed"] and nd["ck107"])
                if nd["differed"] and len(nondet_examples) < 10:
                    nondet_examples.append({"index": req["index"], "members": nd["members"],
                                            "differed": nd["differed"], "ck107": nd["ck107"]})
            found = reply["disagreements"]
            with_dis += bool(found)
            for d in found:
                by_family[d["family"]] += 1
                by_check[d["check"]] += 1
                k = classes.setdefault(d["klass"], Klass(d["klass"], d["family"], d["check"]))
                k.count += 1
                used = set(reply.get("features", ()))
                k.features = used if k.features is None else k.features & used
                if reply["size"] < k.size:
                    k.index, k.size, k.input_hex = req["index"], reply["size"], reply["input"]
                    k.example = dict(d, desc=reply["desc"])
        crashes = sum(k.count for k in classes.values() if k.check == "crash")
        for f in failed:  # who hung or died: ckptlint alone, in a fresh worker
            alone = pool.one(dict(base, index=f["index"], only="ckptlint"))
            f["ckptlint_alone"] = alone.get("worker_failed") or f"ok in {alone.get('ck_seconds', 0):.2f} s"
            if "worker_failed" in alone:
                crashes += 1
        if shrink_budget:
            for k in classes.values():
                k.shrunk_hex = shrink(pool, bytes.fromhex(k.input_hex), _input_family(k), k.klass,
                                      shrink_budget).hex()
    finally:
        pool.close()
    return {
        "seed": seed, "start": start, "inputs": done, "exclude": list(exclude),
        "restricted_to": list(families) if families else None, "jobs": jobs, "started": stamp,
        "elapsed_s": round(time.monotonic() - began, 1), "families": dict(fams),
        "python": platform.python_version(), "torch": _torch_version(), "ckptlint": _commit(),
        "disagreements": sum(by_family.values()), "inputs_with_disagreement": with_dis,
        "by_family": dict(by_family), "by_check": dict(by_check), "crashes": crashes,
        "worker_failures": failed, "oracle_limited": limited, "seen": dict(seen),
        "oracle_nondeterministic": dict(nondet, examples=nondet_examples),
        "lower_bound_examples": lower_bound_examples, "bytes_io_examples": bytes_io_examples,
        "ckptlint_max_seconds": round(ck_max_s, 3), "ckptlint_slowest_index": slowest,
        "ckptlint_slowest": [{"seconds": round(t, 3), "index": i, "size": n, "desc": d} for t, i, n, d in slow],
        "ckptlint_max_rss_mib": round(ck_max_rss / 1024, 1), "worker_max_rss_mib": round(worker_max_rss / 1024, 1),
        "oracle_max_seconds": round(oracle_max_s, 3),
        "classes": sorted((_klass_json(k) for k in classes.values()), key=lambda c: -int(c["count"])),
    }


def _input_family(k: Klass) -> str:
    """The family that generated the input (verdict classes name it second: ``verdict/…/<family>/…``)."""
    if k.family != "verdict":
        return k.family
    parts = k.klass.split("/")
    return parts[3] if len(parts) > 3 else "bytes"


def _klass_json(k: Klass) -> dict[str, Any]:
    return {"klass": k.klass, "family": k.family, "check": k.check, "count": k.count, "index": k.index,
            "size": k.size, "features": sorted(k.features or ()), "example": k.example, "input_hex": k.input_hex,
            "shrunk_hex": k.shrunk_hex}


def _torch_version() -> str:
    try:
        from importlib.metadata import version

        return version("torch")
    except Exception:  # noqa: BLE001 - only for the record
        return "unknown"
