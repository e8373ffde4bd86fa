"""``ckptlint convert`` of tensor layouts against torch (issue #15): views, transposes, slices and strided
windows of shared storages (zip and legacy), every dtype safetensors holds with arbitrary bit patterns (NaN
payloads included), a big-endian file, tied weights, and tensors safetensors cannot hold (an error naming the
keys, or skipped and listed with ``--skip-unsupported``). Plus a hypothesis generator of random views over
random storages, each compared with torch. Conversions run where torch cannot be imported.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import sys
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from _convert_oracle import Converted, assert_output_equals, bitwise_equal, convert_torchfree, trusted_load
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file
from torch import nn

from conftest import TESTS

sys.path.insert(0, str(TESTS))  # tests/tarcraft.py: legacy files written by hand

SAFETENSORS_DTYPES = (torch.bfloat16, torch.float16, torch.float32, torch.float64, torch.float8_e4m3fn,
                      torch.float8_e5m2, torch.float8_e4m3fnuz, torch.float8_e5m2fnuz, torch.bool, torch.int8,
                      torch.uint8, torch.int16, torch.int32, torch.int64, torch.uint16, torch.uint32, torch.uint64,
                      torch.complex64)
"""What ``safetensors.torch`` reads back (C64 since safetensors 0.6)."""
LEGACY_DTYPES = tuple(d for d in SAFETENSORS_DTYPES if (d.is_floating_point and d.itemsize > 1) or d in (
    torch.bool, torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64))
"""What torch reads back from a legacy file it wrote (it writes fp8 and uint16-64 there, but cannot load them)."""


def random_bits(numel: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    """``numel`` elements of ``dtype`` with random bytes (bool: 0/1): NaN payloads, subnormals, negative zeros."""
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.randint(0, 2, (numel,), generator=g, dtype=torch.uint8).bool()
    size = torch.empty((), dtype=dtype).element_size()
    return torch.randint(0, 256, (numel * size,), generator=g, dtype=torch.uint8).view(dtype)


def _views() -> dict[str, torch.Tensor]:
    """Views of two shared storages: slices, transposes, strided windows, a stride-0 expand, 0-dim, empty."""
    base = random_bits(48, torch.float32, 1).reshape(6, 8)
    half = random_bits(40, torch.bfloat16, 2)
    return {
        "base": base, "rows": base[2:5], "t": base.t(), "every_other_col": base[:, 1::2],
        "window_t": base[1:, 2:].t(), "flat_tail": base.view(-1)[13:40], "strided":
        base.as_strided((3, 3), (1, 8), 5), "row": base[3], "scalar": base[4, 5], "empty": base[2:2],
        "expand": base[0:1].expand(4, 8), "bf16_all": half, "bf16_matrix_t": half[4:].view(6, 6).t(),
        "bf16_steps": half[::7], "bf16_overlap": half.as_strided((4, 4), (2, 1), 3),
    }


def _large() -> dict[str, torch.Tensor]:
    """Views bigger than convert's 16 MiB chunks and 32 MiB read window (source.DEFAULT_CHUNK,
    materialize.DEFAULT_WINDOW), so blocks and windows are cut mid-row, mid-column and mid-element-run."""
    base = random_bits(10_000_000, torch.float32, 21).reshape(4000, 2500)  # 40 MB
    half = random_bits(20_000_003, torch.bfloat16, 22)  # 40 MB, odd length
    return {"t": base.t(), "cols": base[:, ::7], "rows": base[::3], "corner": base[1000:3500, 100:2400].t(),
            "far_apart": base[:, ::1249], "bf16_overlap": half.as_strided((2000, 4000), (1000, 1), 5),
            "bf16_tail": half[3:]}


def _dtypes(dtypes: tuple[torch.dtype, ...] = SAFETENSORS_DTYPES) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for i, dt in enumerate(dtypes):
        name = str(dt).removeprefix("torch.")
        t = random_bits(24, dt, 10 + i)
        out[name] = t.reshape(2, 3, 4)
        out[f"{name}.view"] = t.reshape(4, 6)[1:, ::2].t()
        out[f"{name}.scalar"] = random_bits(1, dt, 100 + i).reshape(())
    out["param"] = nn.Parameter(random_bits(5, torch.float32, 7))
    out["nan_payloads"] = torch.tensor([0x7FC00001, 0x7F800001, 0xFFC00000, 0x80000000],
                                       dtype=torch.int64).to(torch.int32).view(torch.float32)
    return out


def _swap_to_big_endian(src: bytes, dest: Path) -> None:
    """Rewrite a little-endian zip checkpoint as a big-endian machine writes it: byteorder ``big``, each storage's
    elements byte-swapped (complex: per real component)."""
    with zipfile.ZipFile(io.BytesIO(src)) as zin, zipfile.ZipFile(dest, "w") as zout:
        sizes = _storage_item_sizes(src)
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("/byteorder"):
                data = b"big"
            elif "/data/" in info.filename and info.filename.rsplit("/", 1)[1].isdigit():
                size = sizes[info.filename.rsplit("/", 1)[1]]
                if size > 1:
                    data = torch.frombuffer(bytearray(data), dtype=torch.uint8).view(-1, size).flip(1) \
                        .contiguous().numpy().tobytes()
            zout.writestr(info, data)


def _storage_item_sizes(src: bytes) -> dict[str, int]:
    """Storage key -> byte-swap unit, from what torch itself loads (the test's own file)."""
    loaded = torch.load(io.BytesIO(src), weights_only=True)
    seen: dict[int, int] = {}
    for t in loaded.values():
        size = t.element_size() // (2 if t.is_complex() else 1)
        seen[t.untyped_storage().data_ptr()] = size
    # torch.save numbers storages in first-seen order of the dict's tensors
    order: list[int] = []
    for t in loaded.values():
        ptr = t.untyped_storage().data_ptr()
        if ptr not in order:
            order.append(ptr)
    return {str(i): seen[p] for i, p in enumerate(order)}


def _big_endian_tensors() -> dict[str, torch.Tensor]:
    out = {str(dt).removeprefix("torch."): random_bits(12, dt, 50 + i).reshape(3, 4)
           for i, dt in enumerate(SAFETENSORS_DTYPES)}
    out["float32.t"] = out["float32"].t()
    out["int64.slice"] = out["int64"][1:, 1::2]
    return out


def _second_reference_to_storage_0(sd: dict[str, torch.Tensor], dest: Path) -> None:
    """torch.save(sd) with data.pkl edited so the second tensor's persistent id names storage "0" (its own numel
    kept; torch checks no CRC)."""
    buf = io.BytesIO()
    torch.save(sd, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zin, zipfile.ZipFile(dest, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("/data.pkl"):
                at = data.index(b"X\x01\x00\x00\x001")
                data = data[:at] + b"X\x01\x00\x00\x000" + data[at + 6:]
            zout.writestr(info, data)


def test_a_storage_named_again_with_another_size(tmp_path: Path) -> None:
    """Storage "0" named a second time with a different element count: torch keeps the first size. A view that
    fits it loads (convert writes torch's bytes); one that does not makes torch.load fail (convert refuses)."""
    fits, overflows = tmp_path / "fits.pt", tmp_path / "overflows.pt"
    _second_reference_to_storage_0({"a": torch.arange(16.0), "b": torch.arange(8.0) + 100}, fits)
    _second_reference_to_storage_0({"a": torch.arange(8.0), "b": torch.arange(16.0) + 100}, overflows)
    with pytest.raises(RuntimeError):
        torch.load(overflows, weights_only=True)
    r_fits, r_over = convert_torchfree([["convert", fits, tmp_path / "fits.safetensors"],
                                        ["convert", overflows, tmp_path / "over.safetensors"]], tmp_path / "run")
    assert r_fits.code == 0, r_fits.text
    assert_output_equals(tmp_path / "fits.safetensors", dict(torch.load(fits, weights_only=True)))
    assert r_over.code == 2 and "'b'" in r_over.stderr and not (tmp_path / "over.safetensors").exists(), r_over.text


def _storage_reused_as_another_dtype(dest: Path) -> None:
    """A zip whose pickle names storage 0 twice, as FloatStorage then as HalfStorage (data.pkl edited; torch
    checks no CRC). torch.load keeps the first dtype for the storage: "b" comes back float32 (its shape, the
    float bytes), not float16."""
    buf = io.BytesIO()
    torch.save({"a": torch.arange(8, dtype=torch.float32), "b": torch.arange(4, dtype=torch.float16)}, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zin, zipfile.ZipFile(dest, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("/data.pkl"):
                at = data.index(b"X\x01\x00\x00\x001", data.index(b"HalfStorage\n"))
                data = data[:at] + b"X\x01\x00\x00\x000" + data[at + 6:]
            zout.writestr(info, data)
    loaded = trusted_load(dest)
    assert loaded["b"].dtype == torch.float32 and loaded["b"].tolist() == [0.0, 1.0, 2.0, 3.0]  # torch's reading


class Tied(nn.Module):  # type: ignore[misc]
    """Embedding and head sharing one Parameter, as language models tie them."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(16, 8)
        self.body = nn.Linear(8, 8)
        self.head = nn.Linear(8, 16, bias=False)
        self.head.weight = self.emb.weight


@dataclass
class Case:
    src: Path
    expected: dict[str, torch.Tensor]
    args: list[str] = field(default_factory=list)
    fresh: Callable[[], nn.Module] | None = None


def _cases(tmp: Path) -> Iterator[tuple[str, Case]]:
    for name, build in (("views", _views), ("dtypes", _dtypes)):
        for fmt in ("zip", "legacy"):
            tensors = build() if fmt == "zip" or name == "views" else _dtypes(LEGACY_DTYPES)
            src = tmp / f"{name}.{fmt}.pt"
            torch.save(tensors, src, _use_new_zipfile_serialization=(fmt == "zip"))
            yield f"{name}-{fmt}", Case(src, dict(trusted_load(src)))
    large = _large()
    src = tmp / "large.pt"
    torch.save(large, src)
    yield "large-views", Case(src, dict(trusted_load(src)))
    buf = io.BytesIO()
    torch.save({"t": large["t"], "bf16_overlap": large["bf16_overlap"]}, buf)
    src = tmp / "large_big_endian.pt"
    _swap_to_big_endian(buf.getvalue(), src)
    yield "large-big-endian", Case(src, dict(trusted_load(src)))
    src = tmp / "storage_reused_as_another_dtype.pt"
    _storage_reused_as_another_dtype(src)
    yield "storage-reused-as-another-dtype", Case(src, dict(trusted_load(src)))
    buf = io.BytesIO()  # a legacy file whose sys_info says big-endian: torch's legacy reader ignores it
    torch.save(_dtypes(LEGACY_DTYPES), buf, _use_new_zipfile_serialization=False)
    data = buf.getvalue()
    flag = data.index(b"little_endianq\x02\x88") + len(b"little_endianq\x02")
    src = tmp / "legacy_sys_info_big.pt"
    src.write_bytes(data[:flag] + b"\x89" + data[flag + 1:])  # NEWTRUE -> NEWFALSE
    yield "legacy-sys-info-big-endian", Case(src, dict(trusted_load(src)))
    buf = io.BytesIO()
    torch.save(_big_endian_tensors(), buf)
    src = tmp / "big_endian.pt"
    _swap_to_big_endian(buf.getvalue(), src)
    loaded = trusted_load(src)
    # The file is right: torch swaps every storage back, except those it pickles as UntypedStorage (uint16-64,
    # no typed storage class), which its loader swaps as bytes (not at all). The oracle is what torch gives.
    for k, v in _big_endian_tensors().items():
        assert bitwise_equal(loaded[k], v) != k.startswith(("uint16", "uint32", "uint64")), k
    yield "big-endian", Case(src, dict(loaded))
    torch.manual_seed(0)
    for fmt in ("zip", "legacy"):
        src = tmp / f"tied.{fmt}.pt"
        torch.save(Tied().state_dict(), src, _use_new_zipfile_serialization=(fmt == "zip"))
        yield f"tied-{fmt}", Case(src, dict(trusted_load(src)), fresh=Tied)


TIED = ("emb.weight", "head.weight")


@pytest.fixture(scope="module")
def converted(module_tmp: Path) -> tuple[dict[str, Case], dict[str, Converted], Path]:
    tmp = module_tmp
    cases = dict(_cases(tmp))
    (tmp / "out").mkdir()
    jobs: list[list[str | Path]] = [["convert", c.src, tmp / "out" / f"{n}.safetensors", *c.args]
                                    for n, c in cases.items()]
    results = convert_torchfree(jobs, tmp / "run")
    return cases, dict(zip(cases, results, strict=True)), tmp / "out"


NAMES = ["views-zip", "views-legacy", "dtypes-zip", "dtypes-legacy", "big-endian", "tied-zip", "tied-legacy",
         "large-views", "large-big-endian", "legacy-sys-info-big-endian", "storage-reused-as-another-dtype"]


def test_every_case_is_run(converted: tuple[dict[str, Case], dict[str, Converted], Path]) -> None:
    assert sorted(converted[0]) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_convert_equals_torch_load_bit_for_bit(name: str,
                                               converted: tuple[dict[str, Case], dict[str, Converted], Path]) -> None:
    cases, results, out = converted
    r = results[name]
    assert r.code == 0, (r.code, r.text[-3000:])
    assert_output_equals(out / f"{name}.safetensors", cases[name].expected)


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_tied_weights_both_keys_and_the_tie_recorded(
        fmt: str, converted: tuple[dict[str, Case], dict[str, Converted], Path]) -> None:
    cases, results, out = converted
    name = f"tied-{fmt}"
    assert results[name].code == 0, results[name].text[-3000:]
    sd = load_file(str(out / f"{name}.safetensors"))
    assert bitwise_equal(sd[TIED[0]], sd[TIED[1]])
    model = Tied()
    model.load_state_dict(sd, strict=True)
    assert torch.equal(model.emb.weight, cases[name].expected[TIED[0]])
    from safetensors import safe_open

    with safe_open(str(out / f"{name}.safetensors"), framework="pt") as f:
        metadata = f.metadata() or {}
    assert any(TIED[0] in k + v and TIED[1] in k + v for k, v in metadata.items()), metadata


def test_drop_tied_writes_what_safetensors_save_model_writes(tmp_path: Path) -> None:
    """``--drop-tied``: the keys and the tie metadata of ``safetensors.torch.save_model`` on the same model, and
    ``load_model(strict=True)`` restores every weight."""
    from safetensors import safe_open
    from safetensors.torch import load_model, save_model

    torch.manual_seed(4)
    model = Tied()
    torch.save(model.state_dict(), tmp_path / "tied.pt")
    save_model(model, str(tmp_path / "ref.safetensors"))
    (r,) = convert_torchfree([["convert", tmp_path / "tied.pt", tmp_path / "out.safetensors", "--drop-tied"]],
                             tmp_path / "run")
    assert r.code == 0, r.text
    with safe_open(str(tmp_path / "ref.safetensors"), "pt") as ref, \
            safe_open(str(tmp_path / "out.safetensors"), "pt") as out:
        ref_keys = sorted(ref.keys())
        assert sorted(out.keys()) == ref_keys
        ties = {k: v for k, v in (ref.metadata() or {}).items() if k != "format"}
        assert ties and ties.items() <= (out.metadata() or {}).items(), (ties, out.metadata())
        assert all(bitwise_equal(out.get_tensor(k), ref.get_tensor(k)) for k in ref_keys)
    fresh = Tied()
    missing, unexpected = load_model(fresh, str(tmp_path / "out.safetensors"), strict=True)
    assert not missing and not unexpected
    assert all(bitwise_equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values(),
                                                   strict=True))


# -- tensors safetensors cannot hold ------------------------------------------------------------------------------


def _quantized() -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantized tensors are deprecated, not gone: old files hold them
        return torch.quantize_per_tensor(torch.ones(4), 0.1, 0, torch.qint8)


def _unsupported(tmp: Path) -> tuple[Path, dict[str, torch.Tensor], tuple[str, ...]]:
    ok = {"ok.weight": random_bits(6, torch.float32, 3).reshape(2, 3), "ok.bias": random_bits(2, torch.bfloat16, 4)}
    bad = {
        "weird.complex128": torch.complex(torch.ones(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)),
        "weird.quantized": _quantized(),
        "weird.sparse": torch.eye(3).to_sparse(),
    }
    src = tmp / "unsupported.pt"
    torch.save({**ok, **bad}, src)
    return src, ok, tuple(bad)


def test_unsupported_tensors_error_naming_the_keys_or_skipped_and_listed(tmp_path: Path) -> None:
    src, ok, bad = _unsupported(tmp_path)
    plain, skipped = tmp_path / "plain.safetensors", tmp_path / "skipped.safetensors"
    r_plain, r_skip = convert_torchfree([["convert", src, plain], ["convert", src, skipped, "--skip-unsupported"]],
                                        tmp_path / "run")
    assert r_plain.code == 2, r_plain.text
    assert "Traceback" not in r_plain.text
    assert all(k in r_plain.stderr for k in bad), r_plain.stderr
    assert not plain.exists(), "a refused conversion left an output file"
    assert r_skip.code == 0, r_skip.text
    assert all(k in r_skip.text for k in bad), r_skip.text
    assert_output_equals(skipped, ok)


def test_complex64_is_written_exactly(tmp_path: Path) -> None:
    """safetensors has C64 (0.6+): complex64 tensors and views of them are written as torch gives them."""
    t = torch.complex(random_bits(6, torch.float32, 8), random_bits(6, torch.float32, 9))
    src, dest = tmp_path / "c64.pt", tmp_path / "c64.safetensors"
    torch.save({"phase.z_complex": t, "tail": t[2::2], "w": t.real.clone()}, src)
    (r,) = convert_torchfree([["convert", src, dest]], tmp_path / "run")
    assert r.code == 0, r.text
    assert_output_equals(dest, dict(trusted_load(src)))


# -- random views over shared storages (hypothesis) ---------------------------------------------------------------


@st.composite
def view_of(draw: st.DrawFn, base: torch.Tensor) -> torch.Tensor:
    """A random in-bounds view of a 1-D storage tensor: 0-3 dims, sizes 0-5, strides 0-9, any offset."""
    n = base.numel()
    ndim = draw(st.integers(0, 3))
    shape = [draw(st.integers(0, 5)) for _ in range(ndim)]
    strides = [draw(st.integers(0, 9)) for _ in range(ndim)]
    span = 0 if 0 in shape else sum((s - 1) * d for s, d in zip(shape, strides, strict=True))
    if span >= n:
        strides = [0] * ndim
        span = 0
    offset = draw(st.integers(0, n - 1 - span))
    return base.as_strided(shape, strides, offset)


@st.composite
def checkpoints(draw: st.DrawFn) -> dict[str, torch.Tensor]:
    """1-3 storages of random dtypes and bytes, each with the whole tensor and 0-6 random views of it (each
    example is converted as a zip, as the same zip from a big-endian machine, and as a legacy file where torch
    can read its dtypes back)."""
    out: dict[str, torch.Tensor] = {}
    for s in range(draw(st.integers(1, 3))):
        dtype = draw(st.sampled_from(SAFETENSORS_DTYPES))
        base = random_bits(draw(st.integers(1, 64)), dtype, draw(st.integers(0, 2**31)))
        if draw(st.booleans()):
            out[f"s{s}.base"] = base
        for v in range(draw(st.integers(0 if f"s{s}.base" in out else 1, 6))):
            out[f"s{s}.v{v}"] = draw(view_of(base))
    return out


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(tensors=checkpoints())
def test_random_views_of_shared_storages_equal_torch(tensors: dict[str, torch.Tensor],
                                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp = tmp_path_factory.mktemp("views")
    jobs: list[list[str | Path]] = []
    fmts: tuple[str, ...] = ("zip", "big")
    if all(t.dtype in LEGACY_DTYPES for t in tensors.values()):
        fmts += ("legacy",)
    for fmt in fmts:
        if fmt == "big":  # the zip as a big-endian machine writes it
            _swap_to_big_endian((tmp / "zip.pt").read_bytes(), tmp / "big.pt")
        else:
            torch.save(tensors, tmp / f"{fmt}.pt", _use_new_zipfile_serialization=(fmt == "zip"))
        jobs.append(["convert", tmp / f"{fmt}.pt", tmp / f"{fmt}.safetensors"])
    for fmt, r in zip(fmts, convert_torchfree(jobs, tmp / "run"), strict=True):
        assert r.code == 0, (fmt, r.text[-3000:])
        assert_output_equals(tmp / f"{fmt}.safetensors", dict(trusted_load(tmp / f"{fmt}.pt")))


def test_memory_stays_bounded_on_a_large_strided_tensor(tmp_path: Path) -> None:
    """A 256 MiB tensor stored transposed (so its bytes are gathered through strides) and a 256 MiB contiguous
    one: the converting process's peak RSS grows by far less than one of them (chunks of 16 MiB, reads of at
    most 32 MiB), and the output is still torch's bytes."""
    from _convert_oracle import LAST_RSS_GROWTH

    big = torch.arange(64 * 2**20, dtype=torch.int32).reshape(8192, 8192)
    torch.save({"t": big.t(), "flat": big.view(-1).flip(0)}, tmp_path / "big.pt")
    del big
    (r,) = convert_torchfree([["convert", tmp_path / "big.pt", tmp_path / "big.safetensors"]], tmp_path / "run")
    assert r.code == 0, r.text
    assert LAST_RSS_GROWTH[0] < 128 * 2**20, LAST_RSS_GROWTH[0] / 2**20  # one tensor is 256 MiB
    assert_output_equals(tmp_path / "big.safetensors", dict(trusted_load(tmp_path / "big.pt")))


def test_keys_that_are_not_strings_never_collide_silently(tmp_path: Path) -> None:
    """A state_dict with int, float, None and bool keys next to the string "0": safetensors names are strings, so
    either every tensor is written under a distinct name, or the conversion stops naming the clash. Never a
    file that quietly lacks one of torch's tensors."""
    src, dest = tmp_path / "keys.pt", tmp_path / "keys.safetensors"
    torch.save({0: torch.ones(2), "0": torch.zeros(3), 1.5: torch.ones(1), None: torch.ones(1), True: torch.zeros(1)},
               src)
    (r,) = convert_torchfree([["convert", src, dest]], tmp_path / "run")
    assert "Traceback" not in r.text
    if r.code == 0:
        assert len(load_file(str(dest))) == len(trusted_load(src)), r.text
    else:
        assert r.code == 2 and "'0'" in r.stderr and not dest.exists(), r.text


def test_quantized_model_weights_are_not_dropped_quietly(tmp_path: Path) -> None:
    """torch.ao's dynamically quantized Linear keeps its qint8 weight inside ``_packed_params._packed_params``
    (a tuple holding tensors). Without --skip-unsupported that is an error naming the key (those are the model's
    weights); with it, the file holds the rest and the key is listed."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao quantization is deprecated, its checkpoints are not gone
        net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
        sd = torch.ao.quantization.quantize_dynamic(net, {nn.Linear}, dtype=torch.qint8).state_dict()
    src, plain, skipped = tmp_path / "q.pt", tmp_path / "plain.safetensors", tmp_path / "skipped.safetensors"
    torch.save(sd, src)
    r_plain, r_skip = convert_torchfree([["convert", src, plain], ["convert", src, skipped, "--skip-unsupported"]],
                                        tmp_path / "run")
    assert r_plain.code == 2 and "0._packed_params._packed_params" in r_plain.stderr, r_plain.text
    assert not plain.exists()
    assert r_skip.code == 0 and "0._packed_params._packed_params" in r_skip.text, r_skip.text
    assert_output_equals(skipped, {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)})


def test_ten_thousand_small_tensors(tmp_path: Path) -> None:
    """5,000 Linear(4, 4) layers (10,000 keys, names that sort differently as text and as numbers): every tensor,
    and the header safetensors itself writes for them."""
    torch.manual_seed(9)
    sd = nn.Sequential(*[nn.Linear(4, 4) for _ in range(5000)]).state_dict()
    torch.save(sd, tmp_path / "many.pt")
    (r,) = convert_torchfree([["convert", tmp_path / "many.pt", tmp_path / "many.safetensors"]], tmp_path / "run")
    assert r.code == 0, r.text
    assert_output_equals(tmp_path / "many.safetensors", dict(trusted_load(tmp_path / "many.pt")))


class _Persistent:
    """A persistent id for the hand-written legacy pickle below."""

    def __init__(self, pid: tuple[object, ...]) -> None:
        self.pid = pid


class _Rebuild:
    """Pickles as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())``."""

    def __init__(self, storage: _Persistent, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.args: tuple[object, ...] = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return torch._utils._rebuild_tensor_v2, self.args


class _LegacyPickler(pickle.Pickler):
    def persistent_id(self, obj: object) -> object:
        return obj.pid if isinstance(obj, _Persistent) else None


def test_legacy_storage_views(tmp_path: Path) -> None:
    """Legacy files from before torch 1.0 could name a view of a storage in the persistent id (``view_metadata``:
    key, element offset, size); torch.load still reads them (both modes). Tensors on such a view come out as
    torch gives them."""
    import tarcraft

    root = _Persistent(("storage", torch.FloatStorage, "k0", "cpu", 8, None))
    view = _Persistent(("storage", torch.FloatStorage, "k0", "cpu", 8, ("v0", 2, 4)))
    buf = io.BytesIO()
    _LegacyPickler(buf, protocol=2).dump({"a": _Rebuild(root, 0, (8,), (1,)), "b": _Rebuild(view, 1, (2,), (1,)),
                                          "c": _Rebuild(view, 0, (2, 2), (1, 2))})
    src = tmp_path / "legacy_views.pt"
    src.write_bytes(tarcraft.legacy_file(obj_body=buf.getvalue()[2:-1], keys=pickle.dumps(["k0"], protocol=2),
                                         tail=struct.pack("<q", 8) + struct.pack("<8f", *range(8))))
    expected = dict(torch.load(src, weights_only=True))
    assert expected["b"].tolist() == [3.0, 4.0]  # view offset 2, then the tensor's own offset 1
    (r,) = convert_torchfree([["convert", src, tmp_path / "out.safetensors"]], tmp_path / "run")
    assert r.code == 0, r.text
    assert_output_equals(tmp_path / "out.safetensors", expected)
