"""Render a run's summary: a console digest and the per-family disagreement report (markdown)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SECTIONS = ("zip", "tar", "legacy", "pickle", "verdict")
NOTES = """
Notes (F1, issue #11; the judgements behind the oracle are in benchmarks/fuzz/decisions.md):

- *Real objects, not stand-ins, for harmless names*: torch's weights_only allowlist (OrderedDict, set,
  `_rebuild_tensor_v2`, torch.Size, torch.device, dtypes, tensor types …), a few pure builtins (frozenset,
  list, dict, tuple, bytes, str, int, float, bool, range, slice, len, ValueError) and `__future__` features
  are the real objects in the oracle: what CPython or torch rejects on them (ADDITEMS on an OrderedDict,
  BUILD on a frozenset, `len()`, `_rebuild_parameter(1)`) stops the oracle where a real load stops.
- *Lower bounds*: a stop at an operation on a placeholder (the message names the placeholder's type, or
  REDUCE/NEWOBJ's "must be a tuple") depends on what the real object is; ckptlint may report more there,
  never less. Counted in the summary (`ckptlint_reported_more_past_a_lower_bound`), not as agreement
  with an exact reading.
- *Location tags*: torch.load without `map_location` stops at a storage tag no backend restores;
  the oracle then reads the file again with `map_location="cpu"` and compares with that reading.
- *Oracle-nondeterministic inputs*: a zip whose deflated member zlib cannot inflate to its declared size
  makes miniz leave part of torch's buffer uninitialised; those inputs are counted apart, and where the
  readings differ ckptlint must report CK107 (else a `…/nondeterministic/no-CK107` disagreement).
- *File objects (a known gap, counted, not judged)*: torch.load(io.BytesIO(data)) never tries the tar
  reader (no `fileno`) and unpickles byte 0 as the legacy magic number; a tar whose first member name is a
  pickle (`tar:pickle-polyglot`) then runs it. ckptlint may report what that reading reaches; the summary
  counts inputs where it reached globals ckptlint does not report (`bytes_io_examples` lists some).
- *`input.pt is a zip archive (did you mean to use torch.jit.load()?)`*: for a file that does not start
  with `PK\\x03\\x04`, torch tries `tarfile` first; when that fails, torch checks the 4 bytes at the
  position tarfile left the file (offset 512 for files of 512 bytes or more) and raises if they are
  a zip local header, before unpickling anything (torch/serialization.py `_legacy_load`).
"""
LITERAL_LIMIT = 1500


def print_summary(s: dict[str, Any]) -> None:
    print(f"{s['inputs']} inputs (seed {s['seed']}, {s['jobs']} workers, {s['elapsed_s']} s): "
          f"{s['disagreements']} disagreements on {s['inputs_with_disagreement']} inputs, {s['crashes']} crashes, "
          f"{len(s['worker_failures'])} worker failures, {s['oracle_limited']} oracle-limited")
    print(f"  families {s['families']}; {s.get('seen')}")
    print(f"  oracle-nondeterministic: {_nondet_cell(s.get('oracle_nondeterministic'))}")
    print(f"  by family {s['by_family']}; by check {s['by_check']}")
    print(f"  ckptlint: max {s['ckptlint_max_seconds']} s (input {s['ckptlint_slowest_index']}), "
          f"max +{s['ckptlint_max_rss_mib']} MiB; worker peak RSS {s['worker_max_rss_mib']} MiB")
    for c in s["classes"][:40]:
        print(f"  {c['count']:6d}  {c['klass']}  (index {c['index']}, {c['size']} bytes)")


def _clean(text: object) -> str:
    """Error messages and names quote bytes from the file: keep the report plain printable text."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def show_command(s: dict[str, Any], index: int) -> str:
    """The command that regenerates input ``index`` of the run summarised by ``s``."""
    cmd = f"python -m tests.fuzz show --seed {s['seed']} --index {index}"
    if s.get("restricted_to"):
        cmd += " --families " + " ".join(s["restricted_to"])
    if s.get("exclude"):
        cmd += " --exclude " + " ".join(s["exclude"])
    return cmd


def _literal(c: dict[str, Any], s: dict[str, Any]) -> str:
    data = bytes.fromhex(c["shrunk_hex"] or c["input_hex"])
    how = "shrunk" if c["shrunk_hex"] else "as generated"
    if len(data) <= LITERAL_LIMIT:
        return f"Repro ({how}, {len(data)} bytes):\n\n```python\n{data!r}\n```\n"
    return f"Repro: `{show_command(s, c['index'])}` ({len(data)} bytes; too long to quote)\n"


def render(s: dict[str, Any]) -> str:
    out = [
        "# Fuzzer disagreements (issue #11)\n",
        (f"Run: {s['inputs']} inputs, seed {s['seed']}, ckptlint {s['ckptlint']}, torch {s['torch']}, "
         f"{s['started']}. {s['disagreements']} disagreements on {s['inputs_with_disagreement']} inputs; "
         f"{s['crashes']} ckptlint crashes; {len(s['worker_failures'])} worker failures.\n"),
        ("Each class: what ckptlint said, what the oracle (torch.load / pickle.load driven through an inert "
         "unpickler, or torch.load(weights_only=True)) said, and a repro. Re-run one with "
         "`python -m tests.fuzz show --seed SEED --index N` or `--file PATH`. Owners: pickle VM F2; "
         "zip, tar, legacy and the verdict F3.\n"),
        ("\nHow each side is read (tests/fuzz/compare.py, oracle.py):\n\n"
         "- ckptlint: `ckptlint.checker.check_file(path)`. Globals are `FileReport.inventory.globals` "
         "(module, name, stream); a file ckptlint reads only up to a stop keeps its inventory (the stop in "
         "`inventory.stops`) — the globals seen before the stop must be there. "
         "The torch.load set is the globals whose stream is in `inventory.facts.loaded_streams`; the pickle.load set "
         "is the globals of the stream named `pickle#0` (the pickle at byte 0, whatever the container). "
         "The verdict is `FileReport.verdict.loads` (None counts as a disagreement).\n"
         "- oracle: the C unpickler with `find_class` recording `(module, name)` (Python 2 names mapped as CPython "
         "maps them below protocol 3) and returning the real object for torch's weights_only allowlist, a few pure "
         "builtins and `__future__` features, else a placeholder class whose calls, BUILD, SETITEMS, APPENDS and "
         "ADDITEMS accept anything. torch.load passes `encoding='utf-8'`; pickle.load uses the default (ASCII). "
         "EXT codes go through the process's copyreg registry (empty). While torch.load drives it, "
         "`torch.<X>Storage` / `torch.storage.UntypedStorage` are torch's real classes (torch reads their dtype).\n"),
        NOTES,
    ]
    for section in (*SECTIONS, "crash"):
        rows = [c for c in s["classes"] if (c["family"] == section and c["check"] != "crash")
                or (section == "crash" and c["check"] == "crash")]
        total = sum(c["count"] for c in rows)
        out.append(f"\n## {section} ({total} disagreements, {len(rows)} classes)\n")
        if not rows:
            out.append("None in this run.\n")
        for c in rows:
            ex = c["example"]
            out.append(f"\n### {_clean(c['klass'])}\n\n{c['count']} inputs; smallest: seed {s['seed']} "
                       f"index {c['index']} "
                       f"({c['size']} bytes): {ex.get('desc', '')}.\n\n- check: {c['check']}\n"
                       f"- ckptlint: {_clean(ex.get('ckptlint', ''))}\n"
                       f"- oracle: {_clean(ex.get('oracle', ''))}\n")
            if c.get("features"):
                out.append(f"- generator features every input of the class used: {', '.join(c['features'])}\n")
            if ex.get("only_ckptlint"):
                out.append(f"- only ckptlint reports: {_clean(', '.join(ex['only_ckptlint'][:12]))}\n")
            if ex.get("only_oracle"):
                out.append(f"- only the oracle requested: {_clean(', '.join(ex['only_oracle'][:12]))}\n")
            out.append("\n" + _literal(c, s))
    nd = s.get("oracle_nondeterministic")
    if nd:
        out.append(f"\n## oracle-nondeterministic inputs (not compared; docs/fuzzing.md)\n\n{_nondet_cell(nd)}.\n")
        out.extend(f"- `{show_command(s, e['index'])}`: short members {e['members']}, readings differed on "
                   f"{e['differed']}, CK107 {'reported' if e['ck107'] else 'MISSING'}\n"
                   for e in nd.get("examples", []))
    for key, title in (("lower_bound_examples", "lower-bound readings where ckptlint reported more"),
                       ("bytes_io_examples", "torch.load(io.BytesIO) reached globals ckptlint does not report")):
        if s.get(key):
            out.append(f"\n## {title} (first {len(s[key])}; not judged)\n\n")
            out.extend(f"- `{show_command(s, i)}`\n" for i in s[key])
    if s.get("ckptlint_slowest"):
        out.append("\n## ckptlint's slowest inputs (limit 10 s; times include the machine's load)\n\n")
        out.extend(f"- {x['seconds']} s: `{show_command(s, x['index'])}` ({x['size']} bytes, {x['desc']})\n"
                   for x in s["ckptlint_slowest"])
    if s["worker_failures"]:
        out.append("\n## worker failures (hangs or deaths; `ckptlint_alone` re-runs ckptlint without the oracle)\n\n")
        out.extend(f"- index {f['index']}: {f['why']}; ckptlint alone: {f.get('ckptlint_alone')}\n"
                   for f in s["worker_failures"][:50])
    return "".join(out)


def write_disagreements(s: dict[str, Any], path: Path) -> None:
    path.write_text(render(s))


def _cell(text: object) -> str:
    return _clean(text).replace("|", "\\|")


def _nondet_cell(nd: dict[str, Any] | None) -> str:
    if not nd:
        return "?"
    return (f"{nd['inputs']} inputs; readings differed on {nd['readings_differed']}, ckptlint reported CK107 on "
            f"{nd['differed_with_ck107']} of those (on {nd['ckptlint_reported_ck107']} of all {nd['inputs']})")


def render_record(s: dict[str, Any]) -> str:
    """The recorded-run section of docs/fuzzing.md, from a summary JSON."""
    seen = s.get("seen", {})
    fam = ", ".join(f"{k} {v}" for k, v in sorted(s["families"].items()))
    rows = [
        ("inputs", f"{s['inputs']} (seed {s['seed']}, indices {s['start']}-{s['start'] + s['inputs'] - 1}): {fam}"),
        ("left out", ", ".join(s.get("exclude") or []) or "nothing"),
        ("disagreements", (f"{s['disagreements']} on {s['inputs_with_disagreement']} inputs; by family "
                           f"{s['by_family'] or '{}'}; by check {s['by_check'] or '{}'}")),
        ("ckptlint crashes", str(s["crashes"])),
        ("worker failures (hangs, deaths)", str(len(s["worker_failures"]))),
        ("oracle-limited (torch or CPython ran out of memory; not compared)", str(s["oracle_limited"])),
        ("ckptlint, slowest input", f"{s['ckptlint_max_seconds']} s (limit 10 s)"),
        ("ckptlint, most memory added", f"{s['ckptlint_max_rss_mib']} MiB (limit 1024 MiB)"),
        ("torch.load(weights_only=True) loaded", str(seen.get("weights_only_loads", "?"))),
        ("torch.load reached at least one global", str(seen.get("torch_load_reached_a_global", "?"))),
        ("pickle.load reached at least one global", str(seen.get("pickle_load_reached_a_global", "?"))),
        ("ckptlint could not finish (compared on what it saw)", str(seen.get("ckptlint_unreadable", "?"))),
        ("oracle-nondeterministic (a deflated zip member zlib cannot inflate fully; not compared)",
         _nondet_cell(s.get("oracle_nondeterministic"))),
        ("lower-bound readings where ckptlint reported more (a stop on a placeholder; not a disagreement)",
         str(seen.get("ckptlint_reported_more_past_a_lower_bound", "?"))),
        ("torch.load(io.BytesIO(data)) reached globals ckptlint does not report (a known gap; not judged)",
         str(seen.get("bytes_io_reached_globals_ckptlint_does_not_report", "?"))),
        ("environment", (f"ckptlint {s['ckptlint']}, torch {s['torch']}, Python {s['python']}, "
                         f"{s['jobs']} workers, {s['elapsed_s']} s, started {s['started']}")),
    ]
    out = ["| | |", "|---|---|", *(f"| {a} | {_cell(b)} |" for a, b in rows)]
    for c in s["classes"]:
        out.append(f"| class ({c['count']}) | {_cell(c['klass'])} (index {c['index']}) |")
    return "\n".join(out) + "\n"


BEGIN, END = "<!-- recorded-run -->", "<!-- /recorded-run -->"


def record(s: dict[str, Any], json_out: Path, docs: Path) -> None:
    """Keep the summary (shrunk repros only; every input is reproducible from seed and index) and put
    its table between the recorded-run markers of the docs page."""
    import json

    kept = dict(s, classes=[dict(c, input_hex="" if c["shrunk_hex"] else c["input_hex"]) for c in s["classes"]])
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(kept, indent=1) + "\n")
    page = docs.read_text()
    head, _, rest = page.partition(BEGIN)
    _, _, tail = rest.partition(END)
    table = render_record(s)
    docs.write_text(f"{head}{BEGIN}\n{table}{END}{tail}")
