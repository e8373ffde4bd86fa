"""``ckptlint.convert()``: what goes out under which names, with which bytes, and what is refused.

Checkpoints are written byte by byte (tests/_convert_files.py, no torch); expected bytes are computed from
the same element values through the views' strides. tests/differential/ checks the same against torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import zipfile
from pathlib import Path

import pytest

import ckptlint
from _convert_files import (
    LINEAR,
    OD,
    Get,
    Obj,
    P,
    Put,
    Raw,
    Storage,
    T,
    call,
    expected_bytes,
    module,
    pickle_of,
    read_safetensors,
    tensor,
    tensor_bytes,
    torch_zip,
)
from ckptlint.conversion.result import ConvertError, Refused
from ckptlint.errors import CheckpointError, CkptlintError, OutputError, UnwrapError

W = tensor("0", [float(i) for i in range(12)], (3, 4))


@pytest.fixture(autouse=True)
def no_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Converting never imports torch (nor a library that would): here ``import torch`` raises ImportError."""
    for name in ("torch", "torchvision", "transformers", "numpy", "safetensors"):
        monkeypatch.setitem(sys.modules, name, None)


def _views() -> dict[str, T]:
    st = W.storage
    return {"w": W,
            "w_t": T(st, (4, 3), (1, 4)),  # a transpose
            "row": T(st, (4,), (1,), 8),  # a slice at an offset of the shared storage
            "col": T(st, (3,), (4,), 1),  # a strided column
            "expanded": T(Storage("1", "float32", (5.0,)), (2, 3), (0, 0)),  # expand(): stride 0
            "n": tensor("2", [1, -2, 3], dtype="int64")}


def test_every_view_is_written_as_its_contiguous_bytes(tmp_path: Path) -> None:
    views = _views()
    src = torch_zip(tmp_path / "v.pt", OD(views))
    r = ckptlint.convert(src, tmp_path / "v.safetensors")
    header, _ = read_safetensors(tmp_path / "v.safetensors")
    assert r.tensors == tuple(views)
    for name, t in views.items():
        assert tensor_bytes(tmp_path / "v.safetensors", name) == expected_bytes(t), name
        assert header[name]["shape"] == list(t.shape)
    assert header["n"]["dtype"] == "I64" and header["w"]["dtype"] == "F32"
    assert r.nbytes == sum(len(expected_bytes(t)) for t in views.values())
    assert r.tied == {}  # views of one storage that differ are not tied


def test_big_endian_files_are_written_little_endian(tmp_path: Path) -> None:
    views = _views()
    src = torch_zip(tmp_path / "be.pt", OD(views), big_endian=True)
    ckptlint.convert(src, tmp_path / "be.safetensors")
    for name, t in views.items():
        assert tensor_bytes(tmp_path / "be.safetensors", name) == expected_bytes(t), name


def test_metadata_names_the_source_its_sha256_and_the_version(tmp_path: Path) -> None:
    src = torch_zip(tmp_path / "m.pt", {"state_dict": OD({"w": W})})
    r = ckptlint.convert(src, tmp_path / "m.safetensors")
    md = read_safetensors(tmp_path / "m.safetensors")[0]["__metadata__"]
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    assert md == {"format": "pt", "ckptlint_version": ckptlint.__version__, "ckptlint_source": "m.pt",
                  "ckptlint_source_sha256": digest, "ckptlint_state_dict": "state_dict"}
    assert r.sha256 == digest and r.metadata == md


def test_tied_keys_are_each_written_and_recorded_as_safetensors_records_them(tmp_path: Path) -> None:
    emb = tensor("0", [1.0, 2.0, 3.0, 4.0], (2, 2))
    src = torch_zip(tmp_path / "t.pt", OD({"embed.weight": emb, "head.weight": emb, "x": tensor("1", [9.0])}))
    r = ckptlint.convert(src, tmp_path / "t.safetensors")
    header, _ = read_safetensors(tmp_path / "t.safetensors")
    assert r.tied == {"head.weight": "embed.weight"}
    assert header["__metadata__"]["head.weight"] == "embed.weight"  # save_model's {removed: kept}
    assert tensor_bytes(tmp_path / "t.safetensors", "head.weight") == expected_bytes(emb)
    r = ckptlint.convert(src, tmp_path / "d.safetensors", drop_tied=True)
    header, _ = read_safetensors(tmp_path / "d.safetensors")
    assert "head.weight" not in header and header["__metadata__"]["head.weight"] == "embed.weight"
    assert r.tensors == ("embed.weight", "x") and r.tied_dropped


def test_a_training_dictionary_writes_its_model_and_lists_the_rest(tmp_path: Path) -> None:
    ckpt = {"epoch": 7, "model_state_dict": OD({"w": W, "step": 3}),
            "optimizer": {"state": {0: {"exp_avg": tensor("5", [0.5])}}, "param_groups": [{"lr": 0.1}]},
            "args": Obj("argparse", "Namespace", {"lr": 0.1})}
    src = torch_zip(tmp_path / "train.pt", ckpt)
    r = ckptlint.convert(src, tmp_path / "train.safetensors")
    assert r.tensors == ("w",)
    assert r.state_dict_path == ("model_state_dict",) and r.state_dict_found_by == "well-known key"
    assert dict(r.left_out) == {"step": "int", "epoch": "int", "optimizer": "dict, 1 tensor",
                                "args": "argparse.Namespace"}
    assert r.dangerous == ()  # argparse.Namespace is data, not a reason to refuse


def test_key_chooses_the_state_dict(tmp_path: Path) -> None:
    src = torch_zip(tmp_path / "k.pt", {"model": OD({"w": W}), "ema": OD({"w": tensor("1", [1.0]),
                                                                           "v": tensor("2", [2.0])})})
    assert ckptlint.convert(src, tmp_path / "a.safetensors").tensors == ("w",)
    r = ckptlint.convert(src, tmp_path / "b.safetensors", key="ema")
    assert r.tensors == ("w", "v") and r.state_dict_path == ("ema",)
    assert tensor_bytes(tmp_path / "b.safetensors", "v") == expected_bytes(tensor("2", [2.0]))
    with pytest.raises(UnwrapError, match="no dict at key path nope"):
        ckptlint.convert(src, tmp_path / "c.safetensors", key="nope")
    assert not (tmp_path / "c.safetensors").exists()


def test_a_full_model_pickle_writes_its_state_dict_keys(tmp_path: Path) -> None:
    w, b, mean = tensor("0", [1.0, 2.0], (1, 2)), tensor("1", [0.5]), tensor("2", [3.0])
    net = module(("mynet", "Net"), {"scale": P(tensor("3", [4.0]))}, children={
        "fc": module(LINEAR, {"weight": P(w), "bias": P(b)}),
        "bn": module(("torch.nn.modules.batchnorm", "BatchNorm1d"), {"weight": None},
                     buffers={"running_mean": mean}),
        "drop": None})
    src = torch_zip(tmp_path / "full.pt", net)
    r = ckptlint.convert(src, tmp_path / "full.safetensors")
    assert r.state_dict_found_by == "module object"
    assert r.tensors == ("scale", "fc.weight", "fc.bias", "bn.running_mean")  # state_dict()'s keys and order
    assert tensor_bytes(tmp_path / "full.safetensors", "fc.weight") == expected_bytes(w)
    assert r.dangerous == ()


def test_dangerous_globals_are_refused_by_name_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    src = torch_zip(tmp_path / "evil.pt", {"w": W, "x": call("os", "system", f"touch {marker}")})
    with pytest.raises(Refused, match=r"refused: it references dangerous globals \(os\.system\)") as e:
        ckptlint.convert(src, tmp_path / "evil.safetensors")
    assert e.value.globals == ("os.system",)
    assert not (tmp_path / "evil.safetensors").exists()
    r = ckptlint.convert(src, tmp_path / "evil.safetensors", force=True)
    assert r.dangerous == ("os.system",) and r.tensors == ("w",)
    assert tensor_bytes(tmp_path / "evil.safetensors", "w") == expected_bytes(W)
    assert not marker.exists()


def test_unsupported_tensors_are_named_or_skipped_and_listed(tmp_path: Path) -> None:
    c = tensor("1", [1.0, 2.0], (1,), "complex128")
    q = tensor("2", [1, 2], (2,), "qint8")
    src = torch_zip(tmp_path / "u.pt", OD({"w": W, "c": c, "q": q}))
    with pytest.raises(ConvertError, match=r"2 tensors safetensors cannot hold: c \(dtype complex128 .*\), q \("):
        ckptlint.convert(src, tmp_path / "u.safetensors")
    assert not (tmp_path / "u.safetensors").exists()
    r = ckptlint.convert(src, tmp_path / "u.safetensors", skip_unsupported=True)
    assert r.tensors == ("w",) and [k for k, _ in r.unsupported] == ["c", "q"]
    assert list(read_safetensors(tmp_path / "u.safetensors")[0]) == ["__metadata__", "w"]


def test_complex64_is_a_dtype_safetensors_holds(tmp_path: Path) -> None:
    c = tensor("1", [1.0, 2.0, 3.0, 4.0], (2,), "complex64")
    ckptlint.convert(torch_zip(tmp_path / "c.pt", OD({"c": c})), tmp_path / "c.safetensors")
    header, _ = read_safetensors(tmp_path / "c.safetensors")
    assert header["c"]["dtype"] == "C64" and tensor_bytes(tmp_path / "c.safetensors", "c") == expected_bytes(c)


def test_existing_output_is_kept_unless_overwrite(tmp_path: Path) -> None:
    src = torch_zip(tmp_path / "o.pt", OD({"w": W}))
    dest = tmp_path / "o.safetensors"
    dest.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="exists"):
        ckptlint.convert(src, dest)
    assert dest.read_bytes() == b"keep me"
    ckptlint.convert(src, dest, overwrite=True)
    assert tensor_bytes(dest, "w") == expected_bytes(W)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.pt", "o.safetensors"]  # no temporary left


def test_the_source_itself_is_never_the_destination(tmp_path: Path) -> None:
    src = tmp_path / "s.safetensors"
    ckptlint.convert(torch_zip(tmp_path / "s.pt", OD({"w": W})), src)
    before = src.read_bytes()
    with pytest.raises(ConvertError, match="is the source file itself"):
        ckptlint.convert(src, src, overwrite=True)
    assert src.read_bytes() == before


def test_a_file_torch_fails_to_load_is_refused(tmp_path: Path) -> None:
    # the storage record is shorter than the pickle declares: torch.load stops there, and so does the reader
    src = torch_zip(tmp_path / "short.pt", OD({"a": tensor("9", [1.0]), "w": W}))
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members["archive/data/0"] = members["archive/data/0"][:8]
    with zipfile.ZipFile(src, "w") as z:
        for n, d in members.items():
            z.writestr(n, d)
    with pytest.raises(ConvertError, match=r"torch\.load fails on this file \(archive/data\.pkl@\d+: record size"):
        ckptlint.convert(src, tmp_path / "short.safetensors")
    assert not (tmp_path / "short.safetensors").exists()


def test_a_failure_while_writing_leaves_nothing(tmp_path: Path) -> None:
    # a deflated storage whose stream is corrupt: found only when its bytes are read, after "a" was written
    w = tensor("0", [float(i) for i in range(1000)], (10, 100))
    src = tmp_path / "bad.pt"
    with zipfile.ZipFile(src, "w") as z:
        z.writestr("archive/data.pkl", pickle_of(OD({"a": tensor("9", [1.0]), "w": w})))
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/data/9", tensor("9", [1.0]).storage.data())
        z.writestr("archive/data/0", w.storage.data(), compress_type=zipfile.ZIP_DEFLATED)
        z.writestr("archive/version", "3\n")
        info = z.getinfo("archive/data/0")
    raw = bytearray(src.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[start:start + info.compress_size] = b"\xff" * info.compress_size
    src.write_bytes(bytes(raw))
    dest = tmp_path / "bad.safetensors"
    dest.write_bytes(b"old")
    with pytest.raises(ConvertError, match=r"tensor 'w': .*corrupt deflate stream"):
        ckptlint.convert(src, dest, overwrite=True)
    assert dest.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt", "bad.safetensors"]  # no temporary left


def test_shards_and_their_index_as_transformers_writes_them(tmp_path: Path) -> None:
    ts = {f"t{i}": tensor(str(i), [float(i)] * n) for i, n in enumerate([6, 6, 2, 6, 2, 2])}  # 4-byte floats
    src = torch_zip(tmp_path / "s.pt", OD(ts))
    r = ckptlint.convert(src, tmp_path / "model.safetensors", max_shard_size="40")
    names = [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    assert [os.path.basename(f) for f in r.files] == names and r.index == str(tmp_path / "model.safetensors.index.json")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert index["metadata"] == {"total_size": 96}
    assert index["weight_map"] == {"t0": names[0], "t1": names[1], "t2": names[1], "t3": names[2],
                                   "t4": names[2], "t5": names[2]}  # 24 | 24+8 | 24+8+8 bytes
    assert (tmp_path / "model.safetensors.index.json").read_text().startswith('{\n  "metadata"')
    for name, t in ts.items():
        assert tensor_bytes(tmp_path / index["weight_map"][name], name) == expected_bytes(t)
    assert not (tmp_path / "model.safetensors").exists()
    one = ckptlint.convert(src, tmp_path / "one.safetensors", max_shard_size="1KB")  # fits: one file, no index
    assert one.files == (str(tmp_path / "one.safetensors"),) and one.index is None


def test_a_shard_that_exists_stops_the_set_before_any_is_written(tmp_path: Path) -> None:
    src = torch_zip(tmp_path / "s.pt", OD({"a": tensor("0", [1.0] * 4), "b": tensor("1", [2.0] * 4)}))
    (tmp_path / "m-00002-of-00002.safetensors").write_bytes(b"x")
    with pytest.raises(OutputError, match=r"m-00002-of-00002\.safetensors: cannot write: exists"):
        ckptlint.convert(src, tmp_path / "m.safetensors", max_shard_size=16)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-00002-of-00002.safetensors", "s.pt"]


def test_an_unreadable_source_is_a_checkpoint_error(tmp_path: Path) -> None:
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        ckptlint.convert(tmp_path / "x.pt", tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_ckptlint_convert_is_the_api_function_whatever_was_imported_first(tmp_path: Path) -> None:
    import ckptlint.conversion.api as api

    src = torch_zip(tmp_path / "f.pt", OD({"w": W}))
    assert callable(ckptlint.convert)
    assert ckptlint.convert(src, tmp_path / "f.safetensors").tensors == ("w",)
    assert api.convert(src, tmp_path / "g.safetensors").tensors == ("w",)


def test_names_safetensors_cannot_hold_are_errors_and_odd_file_names_are_escaped(tmp_path: Path) -> None:
    src = torch_zip(tmp_path / "s.pt", OD({"ok": W, "bad\udc80": tensor("1", [1.0])}))
    with pytest.raises(ConvertError, match=r"tensor key 'bad\\udc80' is not valid Unicode text"):
        ckptlint.convert(src, tmp_path / "s.safetensors")
    reserved = torch_zip(tmp_path / "r.pt", OD({"__metadata__": W}))
    with pytest.raises(ConvertError, match="reserves for its metadata"):
        ckptlint.convert(reserved, tmp_path / "r.safetensors")
    odd = tmp_path / os.fsdecode(b"caf\xe9.pt")  # a Latin-1 file name: not UTF-8
    torch_zip(odd, OD({"w": W}))
    r = ckptlint.convert(odd, tmp_path / "c.safetensors")
    assert r.metadata["ckptlint_source"] == "caf\\udce9.pt"
    assert read_safetensors(tmp_path / "c.safetensors")[0]["__metadata__"]["ckptlint_source"] == "caf\\udce9.pt"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".safetensors") == ["c.safetensors"]


def test_a_fifo_source_is_refused_unopened(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.pt"
    os.mkfifo(fifo)  # opening it would block until a writer came
    with pytest.raises(CheckpointError, match=r"pipe\.pt: not a regular file \(a FIFO\)"):
        ckptlint.convert(fifo, tmp_path / "p.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe.pt"]


def test_a_sharded_set_converts_back_into_one_file(tmp_path: Path) -> None:
    ts = {f"t{i}": tensor(str(i), [float(i * 10 + j) for j in range(6)], (2, 3)) for i in range(4)}
    ts["v"] = T(ts["t1"].storage, (3, 2), (1, 3))  # a transpose, written contiguous into its shard
    src = torch_zip(tmp_path / "s.pt", OD(ts))
    sharded = ckptlint.convert(src, tmp_path / "model.safetensors", max_shard_size=50)
    assert len(sharded.files) == 2 and sharded.index is not None  # 24-byte storages: [t0, t1 (+ v)], [t2, t3]
    weight_map = json.loads(Path(sharded.index).read_text())["weight_map"]
    assert weight_map["v"] == weight_map["t1"] == "model-00001-of-00002.safetensors"  # one storage, one shard
    whole = ckptlint.convert(sharded.index, tmp_path / "whole.safetensors")
    assert sorted(whole.tensors) == sorted(ts)
    assert whole.sha256 == hashlib.sha256(Path(sharded.index).read_bytes()).hexdigest()
    assert whole.metadata["ckptlint_source"] == "model.safetensors.index.json"
    for name, t in ts.items():
        assert tensor_bytes(tmp_path / "whole.safetensors", name) == expected_bytes(t), name


def test_a_submodule_under_two_names_is_written_under_both(tmp_path: Path) -> None:
    # self.a = lin; self.b = lin: pickle writes lin once and a memo reference; state_dict() lists a.* and b.*
    w, b = tensor("0", [1.0, 2.0], (1, 2)), tensor("1", [0.5])
    net = module(("mynet", "Net"), {}, children={"a": module(LINEAR, {"weight": P(w), "bias": P(b)}, memo=7),
                                                 "b": Get(7)})
    r = ckptlint.convert(torch_zip(tmp_path / "shared.pt", net), tmp_path / "shared.safetensors")
    assert r.tensors == ("a.weight", "a.bias", "b.weight", "b.bias")
    assert r.tied == {"b.weight": "a.weight", "b.bias": "a.bias"}
    assert tensor_bytes(tmp_path / "shared.safetensors", "b.weight") == expected_bytes(w)


def test_a_module_that_contains_itself_is_an_error(tmp_path: Path) -> None:
    net = module(("mynet", "Net"), {"w": P(W)}, children={"me": Get(3)}, memo=3)
    with pytest.raises(UnwrapError, match=r"the pickled module contains itself at me: state_dict\(\) never ends"):
        ckptlint.convert(torch_zip(tmp_path / "loop.pt", net), tmp_path / "loop.safetensors")
    assert not (tmp_path / "loop.safetensors").exists()


def test_state_dict_hooks_are_refused_by_name_unless_forced(tmp_path: Path) -> None:
    lin = module(LINEAR, {"weight": P(W)})
    lin.state["_state_dict_hooks"] = OD({0: Raw(b"cmymod\nadd_key\n")})  # state_dict() would run it
    src = torch_zip(tmp_path / "hooked.pt", module(("mynet", "Net"), {}, children={"lin": lin}))
    with pytest.raises(ConvertError, match=r"state_dict hooks \(lin: mymod\.add_key\)"):
        ckptlint.convert(src, tmp_path / "hooked.safetensors")
    assert not (tmp_path / "hooked.safetensors").exists()
    r = ckptlint.convert(src, tmp_path / "hooked.safetensors", force=True)
    assert r.hooks_not_run == (("lin", "mymod.add_key"),) and r.tensors == ("lin.weight",)


def test_key_descends_into_a_pickled_module(tmp_path: Path) -> None:
    # {"net": nn.DataParallel(model)}: --key net/module is ckpt["net"].module (its keys without "module.")
    inner = module(LINEAR, {"weight": P(W)})
    src = torch_zip(tmp_path / "dp.pt", {"net": module(("torch.nn.parallel.data_parallel", "DataParallel"), {},
                                                       children={"module": inner}), "epoch": 1})
    assert ckptlint.convert(src, tmp_path / "all.safetensors").tensors == ("module.weight",)
    for key in ("net/module", "net/_modules/module"):
        r = ckptlint.convert(src, tmp_path / "inner.safetensors", key=key, overwrite=True)
        assert r.tensors == ("weight",) and r.state_dict_found_by == "module object", key
        assert tensor_bytes(tmp_path / "inner.safetensors", "weight") == expected_bytes(W)


def test_a_folder_names_and_hashes_the_file_read_in_it(tmp_path: Path) -> None:
    folder = tmp_path / "hf"
    folder.mkdir()
    ckptlint.convert(torch_zip(tmp_path / "m.pt", OD({"w": W})), folder / "model.safetensors")
    (folder / "config.json").write_text('{"model_type": "x"}')
    r = ckptlint.convert(folder, tmp_path / "out.safetensors")
    assert r.tensors == ("w",) and r.metadata["ckptlint_source"] == "hf/model.safetensors"
    assert r.sha256 == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def test_a_dcp_folder_without_its_items_is_one_error_naming_the_tensor(tmp_path: Path) -> None:
    meta = "torch.distributed.checkpoint.metadata"
    props = Obj(meta, "TensorProperties", [Raw(b"ctorch\nfloat32\n"), False, False])
    tensor_md = Obj(meta, "TensorStorageMetadata", {"properties": props, "size": [3, 4], "chunks": []})
    folder = tmp_path / "dcp"
    folder.mkdir()
    (folder / ".metadata").write_bytes(pickle_of(Obj(meta, "Metadata", {
        "state_dict_metadata": {"w": tensor_md}, "planner_data": {"w": ["w"]}})))  # no storage_data
    (folder / "__0_0.distcp").write_bytes(bytes(64))
    assert ckptlint.inspect(folder).format == "dcp"
    with pytest.raises(CkptlintError, match=r"tensor 'w': DCP \.metadata has no storage_data"):
        ckptlint.convert(folder, tmp_path / "dcp.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dcp"]


def test_what_is_left_out_names_a_second_reference_to_the_state_dict(tmp_path: Path) -> None:
    sd = OD({"w": W})
    src = torch_zip(tmp_path / "twice.pt", {"model": Put(sd, 5), "ema": Get(5), "step": 2})
    r = ckptlint.convert(src, tmp_path / "twice.safetensors")
    assert r.state_dict_path == ("model",) and r.tensors == ("w",)
    assert dict(r.left_out) == {"ema": "the same object as model", "step": "int"}


def test_spectral_norms_metadata_only_hook_does_not_stop_the_conversion(tmp_path: Path) -> None:
    # nn.utils.spectral_norm registers SpectralNormStateDictHook: it writes only _metadata's version, no key
    lin = module(LINEAR, {"weight_orig": P(W)},
                 buffers={"weight_u": tensor("1", [1.0]), "weight_v": tensor("2", [2.0])})
    lin.state["_state_dict_hooks"] = OD({0: Obj("torch.nn.utils.spectral_norm", "SpectralNormStateDictHook",
                                                 {"fn": Obj("torch.nn.utils.spectral_norm", "SpectralNorm", {})})})
    src = torch_zip(tmp_path / "sn.pt", module(("torch.nn.modules.container", "Sequential"), {}, children={"0": lin}))
    r = ckptlint.convert(src, tmp_path / "sn.safetensors")
    assert r.tensors == ("0.weight_orig", "0.weight_u", "0.weight_v") and r.hooks_not_run == ()


def test_readings_that_disagree_are_refused_saying_so(tmp_path: Path) -> None:
    # PROTO 113: CPython's pickle refuses the stream (weights_only=False fails); torch's weights_only unpickler
    # ignores the protocol number and reads on. Which one is "the checkpoint" is not convert's to choose.
    src = torch_zip(tmp_path / "p.pt", OD({"w": W}))
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members["archive/data.pkl"] = b"\x80\x71" + members["archive/data.pkl"][2:]
    with zipfile.ZipFile(src, "w") as z:
        for n, d in members.items():
            z.writestr(n, d)
    with pytest.raises(ConvertError, match=r"the two torch\.load readings disagree: pickle stops in "
                                           r"archive/data\.pkl at 0 \(unsupported pickle protocol 113"):
        ckptlint.convert(src, tmp_path / "p.safetensors")
    assert not (tmp_path / "p.safetensors").exists()


def test_a_pickled_compiled_module_writes_its_state_dict_keys(tmp_path: Path) -> None:
    # torch.save(torch.compile(model)): OptimizedModule.__reduce__ is (OptimizedModule, (model, dynamo_ctx))
    model = module(("torch.nn.modules.container", "Sequential"), {}, children={"0": module(LINEAR, {"weight": P(W)})})
    compiled = call("torch._dynamo.eval_frame", "OptimizedModule", model, None)
    src = torch_zip(tmp_path / "compiled.pt", compiled)
    with pytest.raises(Refused, match=r"dangerous globals \(torch\._dynamo\.eval_frame\.OptimizedModule\)"):
        ckptlint.convert(src, tmp_path / "c.safetensors")  # dynamo's classes run code: safety's verdict
    r = ckptlint.convert(src, tmp_path / "c.safetensors", force=True)
    assert r.tensors == ("_orig_mod.0.weight",) and r.state_dict_found_by == "module object"  # model.state_dict()
    r = ckptlint.convert(src, tmp_path / "inner.safetensors", key="__args__/0", force=True)  # inspect's path
    assert r.tensors == ("0.weight",)
    assert tensor_bytes(tmp_path / "inner.safetensors", "0.weight") == expected_bytes(W)
