"""torch.save zip archives and TorchScript archives (``torch.jit.save``), read as torch reads them.

Three readings are put side by side:

- torch's: miniz (zipreader.py, zipextract.py) driven the way ``torch.load``
  drives it (torchload_zip.py): the ``data.pkl`` it unpickles is the *loaded*
  stream, and where torch refuses the archive, the refusal is recorded in
  ``facts.extra["torch_refuses"]`` (torch's message);
- every other entry miniz lists: pickles there are scanned as streams torch never
  loads (duplicates are labelled ``<name>@<local header offset>``);
- CPython's ``zipfile`` (pyzip.py): entries only it lists are scanned too, and
  every place where it would read something else than torch is an anomaly
  (reported as CK107) — unless torch.load refuses the archive: then it loads
  nothing to disagree about, the differences are notes, and every pickle the
  other reader would hand over is scanned and judged by its own rules.
"""

from __future__ import annotations

from typing import Any, cast

from ..errors import FormatError, LimitExceeded
from ..inventory import FormatFacts, Inventory, StorageRecord, StreamStop, records_from_columns
from ..limits import DEFAULT_LIMITS, Budget, Limits
from .common import Assembler, CountingFile, record_pid, storage_alias
from .pyzip import Listed, PyZipView, py_zip_view
from .stubs import Global, new_storage
from .torchcalls import STORAGE_KINDS
from .torchload_zip import KEEP, TorchZipReading, read_like_torch
from .unpickler import PersistentLoad, storage_from_pid
from .zipextract import Extracted, MemberReader, extract, head, inflated_prefix, record_error
from .zipreader import ASCII_FOLD, ZipArchive, ZipMember, ZipStructureError, open_archive, parsed_archive, zipfile_names

_SMALL_RECORDS = ("version", ".data/version", ".format_version", ".storage_alignment")
_PICKLE_SUFFIXES = (".pkl", ".debug_pkl", ".pickle")
_PAD = 16 << 20


def read_torch_zip(f: CountingFile, path: str, limits: Limits = DEFAULT_LIMITS) -> Inventory:
    budget: Budget = getattr(f, "budget", None) or Budget(limits)
    py = py_zip_view(f.f, f.size, budget, parsed_archive(f, limits))  # zipfile's listing, where it differs
    try:
        try:
            z = open_archive(f, limits, budget)  # the directory other readers of this file parsed already
        except ZipStructureError as e:
            return _only_zipfile_reads(f, path, limits, budget, py, str(e))
        asm, facts, structure, storages = _read(f, path, limits, budget, z, py)
    finally:
        py.close()
    # read: the directory (an object per entry) goes before the records are assembled, not after
    del z, py
    f.cache.pop("zip", None)
    return asm.inventory(facts, structure, storages)


def _read(f: CountingFile, path: str, limits: Limits, budget: Budget, z: ZipArchive,
          py: PyZipView) -> tuple[Assembler, FormatFacts, Any, list[StorageRecord]]:
    z.local_headers()  # every local header, read once in file order: torch reads each record's
    reading = read_like_torch(z, limits.max_pickle_bytes)
    asm = Assembler(path, limits, budget=budget)
    prefix = reading.prefix.decode("utf-8", "replace")
    parsed: set[int] = set()
    loaded: list[str] = []
    structure: Any = None
    records = _Records(reading.prefix)
    labels = _Labels(z)
    for m in reading.read.values():  # a record's note names its stream (`<name>@<offset>` among duplicates)
        said = f"{m.name} (read by torch.load)"
        reading.notes = [f"{labels[m]} (read by torch.load){n[len(said):]}" if n.startswith(said) else n
                         for n in reading.notes]
    if reading.refuses is None:
        if reading.script:
            structure = _torchscript(z, reading, asm, parsed, records)
        elif reading.data_pkl is not None and reading.data_pkl.uninitialized and not reading.data_pkl.data:
            # torch unpickles memory nothing wrote: it fails, unless by luck (recycled memory may even hold an
            # earlier pickle), so the readers may disagree (CK107) and no stream is torch's
            m = reading.read["data.pkl"]
            reading.fails_after = f"{m.name}: {reading.data_pkl.note}"
            parsed.add(m.index)
        elif reading.data_pkl is not None:
            m = reading.read["data.pkl"]
            stops = len(asm.stops)
            rec = reading.data_pkl
            if rec.uninitialized:
                # what follows is memory nothing wrote: zeros stand in (an invalid opcode: the parse stops there)
                data = rec.data if rec.complete else inflated_prefix(z, m, rec.produced)
                rec = Extracted(data + b"\0" * min(m.size - rec.produced, _PAD), produced=0)
            loader = _checked(z, asm, None, reading.prefix + b"/data/", records.data_seen)
            asm.wrapper_streams.add(labels[m])  # torch's UnpicklerWrapper reads it
            value = _parse(asm, z, m, rec, labels[m], loader)
            structure = asm.collect(value, labels[m])
            # collected: the parsed objects and the pickle's bytes are not needed any more (memory)
            del value, rec
            reading.data_pkl = reading.data_pkl.without_data()
            parsed.add(m.index)
            records.data_named = True
            loaded.append(labels[m])
            if reading.data_pkl.uninitialized and len(asm.stops) > stops:
                # torch unpickles what was inflated (its globals are reached), then memory nothing
                # wrote: it fails there (unless by luck)
                reading.fails_after = f"{m.name}: {reading.data_pkl.note}"
    elif not _any_pickle(z, py):
        if z.locate(reading.prefix + b"/data.pkl") is None:
            raise FormatError(f"zip archive without {prefix or '<folder>'}/data.pkl: not a torch checkpoint "
                              f"(torch.load: {reading.refuses})")
        raise FormatError(f"torch.load refuses it: {reading.refuses}")

    storages, storage_names = _storages(z, asm, records)
    anomalies = list(z.anomalies) + reading.notes + _header_mismatches(z) + _duplicates(z, py)
    try:
        for m, stored in zip(z.members, storage_names, strict=True):  # storage_names: by entry index
            if stored is not None or m.index in parsed or not _looks_like_pickle(z, m):
                continue
            _scan(asm, z, m, labels[m])
        anomalies += _compare_with_zipfile(z, py, reading, asm, budget, limits)
    except LimitExceeded as e:
        # a bound met while scanning pickles torch never loads: what torch.load does is already known (seed 21
        # index 10085: it refuses the archive), so that stays the report; the stop names the bound (CK903)
        if not any(st.limit for st in asm.stops):
            asm.stops.append(StreamStop(asm.streams[-1] if asm.streams else "", -1, str(e), e.field))
    if reading.refuses is None:
        asm.anomalies[:0] = anomalies
    else:
        # torch.load unpickles nothing here, so the readers cannot disagree about what it loads;
        # the pickles another reader would hand over are scanned and judged on their own.
        if py.error is None and any(p.name.endswith("data.pkl") for p in py.members):
            asm.notes.append(f"torch.load refuses this archive ({reading.refuses}); Python's zipfile reads it")
        asm.notes.extend(f"(torch.load refuses the archive) {a}" for a in anomalies)
        if "uninitialised memory" in reading.refuses:
            # refused unless memory nothing wrote happens to hold the right bytes: then torch goes on to
            # unpickle data.pkl, so the readers may disagree after all
            asm.anomalies[:0] = [a for a in reading.notes if "uninitialised memory" in a]

    extra: dict[str, Any] = {k: reading.records[k].decode("utf-8", "replace").strip()
                             for k in _SMALL_RECORDS if k in reading.records}
    if "byteorder" in reading.records:
        extra["byteorder_record"] = reading.records["byteorder"].decode("utf-8", "replace")
    if reading.refuses is not None or reading.fails_after is not None:
        extra["torch_refuses"] = reading.refuses or reading.fails_after
    facts = FormatFacts(
        format="torchscript" if reading.script else "torch-zip",
        file_size=f.size,
        bytes_read=f.bytes_read,
        pickle_protocol=asm.protocol,
        byteorder=reading.records.get("byteorder", b"little").decode("utf-8", "replace"),
        zip_prefix=prefix,
        # one str per name
        zip_entries=tuple([stored or m.name for m, stored in zip(z.members, storage_names, strict=True)]),
        streams=tuple(asm.streams),
        loaded_streams=tuple(loaded),
        opcodes=tuple(sorted(asm.opcodes)),
        extra=extra,
    )
    if reading.script and reading.refuses is None:
        from .torchscript_code import torchscript_code_facts  # TorchScript archives only (startup)

        facts.extra.update(torchscript_code_facts(z, prefix, limits))
    return asm, facts, structure, storages


def _torchscript(z: ZipArchive, reading: TorchZipReading, asm: Assembler, parsed: set[int],
                 records: _Records) -> Any:
    """``torch.jit.load`` reads ``data.pkl`` and ``constants.pkl`` through the same lookup; the
    constants keep their own storage namespace (``constants/<key>``)."""
    prefix = reading.prefix.decode("utf-8", "replace")
    structure: Any = None
    m = z.locate(reading.prefix + b"/data.pkl")
    if m is not None:
        rec = extract(z, m, asm.limits.max_pickle_bytes, KEEP)
        value = _parse(asm, z, m, rec, m.name, _checked(z, asm, None, reading.prefix + b"/data/",
                                                         records.data_seen))
        structure = asm.collect(value, m.name)
        parsed.add(m.index)
        records.data_named = True
    c = z.locate(reading.prefix + b"/constants.pkl")
    if c is not None:
        rec = extract(z, c, asm.limits.max_pickle_bytes, KEEP)

        def constants_loader(pid: Any) -> Any:
            st = storage_from_pid(pid)
            st.key = f"constants/{st.key}"
            asm.storages.setdefault(st.key, st)
            records.constants[st.key] = f"{prefix}/{st.key}"
            return st

        loader = _checked(z, asm, constants_loader, reading.prefix + b"/", records.constants_seen)
        value = _parse(asm, z, c, rec, c.name, loader)
        asm.collect(value, c.name, root=("__constants__",))
        parsed.add(c.index)
    return structure


class _Records:
    """Where each storage's record is (``<prefix>/data/<key>``, TorchScript constants apart) and what
    torch's lookup found for it while unpickling: no table of names is built for it."""

    def __init__(self, prefix: bytes) -> None:
        self.prefix = prefix.decode("utf-8", "replace")
        self.exact = self.prefix.encode("utf-8") == prefix
        """The record names, written from the decoded prefix, are the bytes the loaders looked up."""
        self.data_named = False
        """``data.pkl`` was unpickled: the storages it names are ``data/<key>`` records."""
        self.constants: dict[str, str] = {}
        """TorchScript constants' storages -> their record (``<prefix>/constants/<key>``)."""
        self.data_seen: dict[str, str | ZipMember] = {}
        self.constants_seen: dict[str, str | ZipMember] = {}
        """Storage key -> the entry torch reads for its record, or why reading it raises."""

    def entry(self, key: str) -> tuple[str | None, str | ZipMember | None]:
        """The record's name, and what the loader found for it (None where it never looked)."""
        if key in self.constants:
            return self.constants[key], self.constants_seen.get(key)
        if self.data_named:
            return f"{self.prefix}/data/{key}", self.data_seen.get(key)
        return None, None


def _checked(z: ZipArchive, asm: Assembler, load: PersistentLoad | None, folder: bytes,
             seen: dict[str, str | ZipMember]) -> PersistentLoad:
    """torch reads each storage's record when the pickle first names it (``persistent_load``):
    where ``getRecord`` raises, unpickling stops at that opcode, so globals after it never load.
    ``seen`` keeps, per storage key, the entry found (or torch's error) for the storage list.
    ``load`` None: the Assembler's own loader (``asm.storage_loader()``)."""
    tail = folder.decode("utf-8", "replace").split("/", 1)[-1]  # the record name: what follows the prefix
    cap = asm.limits.max_pickle_bytes
    general = asm.storage_loader() if load is None else load
    # One call per storage (100,000s): torch.save's persistent id and its common record are decoded,
    # found and judged here, without the calls of storage_alias, storage_from_pid, locate and record_error
    # (their general paths decide every other case, and are the definition).
    names = z.name_index() if load is None and b"\x00" not in folder else None
    file_size = z.file_size
    storages, kinds = asm.storages, STORAGE_KINDS

    def find(key: str, st: Any) -> str | ZipMember:
        """The entry getRecord reads for storage ``key``, or what it raises."""
        m = z.locate(folder + key.encode("utf-8"))
        problem = record_error(z, m, tail + key, cap)
        nbytes = getattr(st, "nbytes", None)
        if problem is None and m is not None and isinstance(nbytes, int) and m.size != nbytes:
            # get_storage_from_record: TORCH_CHECK(record size == numel * element size)
            problem = f"record size ({m.size} bytes) does not match expected size ({nbytes} bytes)"
        found = problem if problem is not None or m is None else m
        assert found is not None  # record_error names a record it did not find
        return found

    def checked_general(pid: Any) -> Any:
        st = general(storage_alias(pid))
        key = getattr(st, "key", None)
        if isinstance(key, str):
            found = seen.get(key)
            if found is None:
                found = seen[key] = find(key, st)
            if isinstance(found, str):
                raise FormatError(found)
        return st

    if names is None:
        return checked_general
    unique, offsets = names

    def checked(pid: Any) -> Any:
        if type(pid) is tuple and len(pid) == 5:
            tag, stype, key, location, numel = pid
            if tag == "storage" and type(stype) is Global and type(key) is str and type(location) is str \
                    and type(numel) is int and numel >= 0 and "\x00" not in key:
                kind = kinds.get(stype.name)  # never torch.Storage's name (storage_alias leaves the pid as it is)
                if kind is not None:
                    # Assembler.storage_loader's load(pid), storage_from_pid inline
                    dtype, typed, itemsize = kind
                    nbytes = numel * itemsize if typed else numel
                    st = new_storage(key, dtype, nbytes, location, typed, False)
                    storages.setdefault(key, st)
                    found = seen.get(key)
                    if found is None:
                        entry = folder + key.encode("utf-8")
                        m = unique.get(entry.translate(ASCII_FOLD))  # locate(entry)
                        if m is not None:  # record_error's common record, and the size check
                            index, raw, flags, method, _, csize, size, _, attr, stat_error, _ = m
                            if stat_error is None and method == 0 and not flags & (1 | 32 | 64) and csize \
                                    and not attr & 0x10 and raw[-1:] != b"/":
                                start = offsets[index]
                                if start >= 0 and start + (csize if csize > size else size) <= file_size:
                                    found = m if size == nbytes else (
                                        f"record size ({size} bytes) does not match expected size ({nbytes} bytes)")
                        if found is None:
                            found = find(key, st)
                        seen[key] = found
                    if isinstance(found, str):
                        raise FormatError(found)
                    return st
        return checked_general(pid)
    return checked


def _storages(z: ZipArchive, asm: Assembler,
              records: _Records) -> tuple[list[StorageRecord], list[str | None]]:
    """Storage records as torch finds them (the same case-insensitive lookup as every record);
    and per entry index, the name of a storage's record (the StorageRecord's string, shared with the
    entry list), None for other entries."""
    rows: list[tuple[Any, ...]] = []  # StorageRecord's fields, made records together (inventory.records_from_columns)
    names: list[str | None] = [None] * len(z.members)
    append, notes = rows.append, asm.notes
    constants, data_seen, exact = records.constants, records.data_seen, records.exact
    data_folder = f"{records.prefix}/data/" if records.data_named else None
    for key, st in asm.storages.items():
        if key in constants or data_folder is None:
            entry, found = records.entry(key)
        else:  # records.entry, inline: a data.pkl storage
            entry, found = data_folder + key, data_seen.get(key)
        raw = entry.encode("utf-8") if entry else b""
        m = (found if exact and isinstance(found, ZipMember) else z.locate(raw)) if entry else None
        if m is None or entry is None:
            notes.append(f"storage {key!r} has no {entry} record")
            append((key, st.dtype, st.nbytes, st.location, entry, None))
            continue
        name = entry if m.raw_name == raw else m.name
        names[m.index] = name
        if st.nbytes is not None and m.size < st.nbytes:
            notes.append(f"storage record {name} holds {m.size} bytes, the pickle declares {st.nbytes}")
        append((key, st.dtype, st.nbytes, st.location, name, m.size))
    return list(records_from_columns(StorageRecord, zip(*rows, strict=True))), names


class _Labels:
    """Stream names: the entry name, plus ``@<offset>`` where several entries share it (ASCII case
    ignored); computed per entry asked, not for all of them."""

    def __init__(self, z: ZipArchive) -> None:
        self.counts: dict[bytes, int] | None = None
        if z.has_duplicates:
            self.counts = {}
            for m in z.members:
                self.counts[m.folded] = self.counts.get(m.folded, 0) + 1

    def __getitem__(self, m: ZipMember) -> str:
        if self.counts is None or self.counts[m.folded] == 1:
            return m.name
        return f"{m.name}@{m.header_offset}"


def _looks_like_pickle(z: ZipArchive, m: ZipMember) -> bool:
    if m.name.endswith(_PICKLE_SUFFIXES):
        return True
    h = head(z, m, 2)
    return h[:1] == b"\x80" and h[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")


def _parse(asm: Assembler, z: ZipArchive, m: ZipMember, rec: Extracted, label: str,
           persistent_load: PersistentLoad) -> Any:
    """Parse an entry's pickle; past the bytes held, read on demand (a bomb never inflates whole).
    Extraction charged the bytes it produced (all of a deflated member, a stored one when held whole):
    the parse does not charge them again."""
    if rec.complete:
        return asm.parse(rec.data, label, persistent_load=persistent_load, charged=True)[0]
    reader = cast(CountingFile, MemberReader(z, m, rec))  # duck-typed: size, bytes_read, pread()
    return asm.parse_file_stream(reader, 0, label, persistent_load=persistent_load, charged=m.method != 0)[0]


def _scan(asm: Assembler, z: ZipArchive, m: ZipMember, label: str) -> None:
    rec = extract(z, m, asm.limits.max_pickle_bytes, KEEP)
    if rec.error is not None:
        asm.notes.append(f"{label}: torch cannot read this entry ({rec.error})")
        return
    if rec.note:
        asm.anomalies.append(f"{label}: {rec.note}")
    if not rec.data:
        return
    _parse(asm, z, m, rec, label, record_pid)


def _any_pickle(z: ZipArchive, py: PyZipView) -> bool:
    return any(_looks_like_pickle(z, m) for m in z.members) or any(
        p.name.endswith(_PICKLE_SUFFIXES) for p in py.members)


def _header_mismatches(z: ZipArchive) -> list[str]:
    out = []
    local = z.local_headers()
    for i in sorted(local.differs):
        m = z.members[i]
        name, flags, method = local.differs[i]
        if name != m.raw_name:
            out.append(f"zip member {m.name!r}: local header names it {name.decode('utf-8', 'replace')!r} "
                       "(Python's zipfile refuses to read it, torch reads it)")
        if flags != m.flags or method != m.method:
            out.append(f"zip member {m.name!r}: local and central headers differ in flags/method "
                       "(readers that stream local headers read it differently)")
    return out


def _duplicates(z: ZipArchive, py: PyZipView) -> list[str]:
    if not z.has_duplicates:
        return []
    groups: dict[bytes, list[ZipMember]] = {}
    for m in z.members:
        groups.setdefault(m.folded, []).append(m)
    out = []
    for key, ms in groups.items():
        if len(ms) < 2:
            continue
        torch_pick = z.locate(key)
        names = sorted({m.name for m in ms})
        msg = (f"{len(ms)} zip entries named {' / '.join(repr(n) for n in names[:3])} (miniz ignores case): "
               f"torch.load reads the one at offset {torch_pick.header_offset if torch_pick else '?'}")
        py_names = {m.py_name for m in ms}
        py_offsets = sorted({p.header_offset for p in map(py.get, py_names) if p is not None})
        if py.error is None and py_offsets:
            msg += f", Python's zipfile the one(s) at offset {', '.join(map(str, py_offsets))}"
        out.append(msg)
    return out


def _compare_with_zipfile(z: ZipArchive, py: PyZipView, reading: TorchZipReading, asm: Assembler,
                          budget: Budget, limits: Limits) -> list[str]:
    if py.error is not None:
        return [f"Python's zipfile cannot open this archive ({py.error}); torch.load reads it"]
    out = []
    if py.same_as is not None:  # zipfile lists exactly miniz's entries
        only_py: list[Listed] = []
        only_mz: list[ZipMember] = []
    else:
        mz = {m.header_offset for m in z.members}
        pz = {p.header_offset for p in py.members}
        only_py = [p for p in py.members if p.header_offset not in mz]
        only_mz = [m for m in z.members if m.header_offset not in pz]
    if only_py:
        out.append(f"{len(only_py)} zip entries only Python's zipfile lists (torch.load never sees them): "
                   + ", ".join(repr(p.name) for p in only_py[:5]))
        for p in only_py:
            if not p.name.endswith(_PICKLE_SUFFIXES) and p.size < 2:
                continue
            data, err = py.read(p, limits.max_pickle_bytes, budget)
            if data is not None and (p.name.endswith(_PICKLE_SUFFIXES) or data[:1] == b"\x80"):
                asm.parse(data, f"{p.name}@{p.header_offset} (zipfile)", persistent_load=record_pid)
            elif err is not None:
                asm.notes.append(f"{p.name} (only Python's zipfile lists it): unreadable ({err})")
    if only_mz:
        out.append(f"{len(only_mz)} zip entries only torch's reader lists (Python's zipfile never sees them): "
                   + ", ".join(repr(m.name) for m in only_mz[:5]))
    for record, m in reading.read.items():
        name = reading.name(record)
        asked = reading.prefix + b"/" + record.encode()
        pm = next((p for p in map(py.get, zipfile_names(asked)) if p is not None), None)
        if pm is None:
            out.append(f"{name}: torch.load reads {m.name!r} (offset {m.header_offset}), "
                       "Python's zipfile has no entry of that name")
        elif pm.header_offset != m.header_offset:
            out.append(f"{name}: torch.load reads the entry at offset {m.header_offset}, "
                       f"Python's zipfile the one at offset {pm.header_offset}")
    rec = reading.data_pkl
    if rec is not None and rec.crc is not None and rec.error is None and not rec.uninitialized:
        m = reading.read["data.pkl"]
        if rec.crc != m.crc:
            out.append(f"{m.name}: its CRC-32 does not match the header: torch.load reads it (no CRC check), "
                       "Python's zipfile refuses it")
    return out


def _only_zipfile_reads(f: CountingFile, path: str, limits: Limits, budget: Budget, py: PyZipView,
                        reason: str) -> Inventory:
    """miniz refuses the archive (so does torch.load); what Python's zipfile reads is still scanned."""
    if py.error is not None:
        raise FormatError(f"torch.load refuses it ({reason}); Python's zipfile too ({py.error})")
    asm = Assembler(path, limits, budget=budget)
    for p in py.members:
        if not p.name.endswith(_PICKLE_SUFFIXES) and p.size < 2:
            continue
        data, _ = py.read(p, limits.max_pickle_bytes, budget)
        if data is not None and (p.name.endswith(_PICKLE_SUFFIXES) or data[:1] == b"\x80"):
            asm.parse(data, f"{p.name}@{p.header_offset} (zipfile)", persistent_load=record_pid)
    if not asm.streams:
        raise FormatError(f"torch.load refuses it ({reason}); Python's zipfile finds no pickle in it")
    asm.notes.insert(0, f"torch.load cannot open this archive ({reason}); Python's zipfile reads it")
    facts = FormatFacts(format="torch-zip", file_size=f.size, bytes_read=f.bytes_read,
                        pickle_protocol=asm.protocol, zip_entries=tuple(p.name for p in py.members),
                        streams=tuple(asm.streams), loaded_streams=(), opcodes=tuple(sorted(asm.opcodes)),
                        extra={"torch_refuses": reason})
    return asm.inventory(facts, None, [])
