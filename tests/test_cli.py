"""The ``ckptlint`` command line (``inspect``), run in-process against files torch wrote."""

from __future__ import annotations

import json
import random
import re
from collections import OrderedDict
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest

import ckptlint
from ckptlint.report import inventory_json
from ckptlint.report.inventory_text import FAST_TABLE_ROWS, fast_table

from conftest import CliRunner

SCHEMA_PATH = Path(ckptlint.__file__).parent / "schemas" / "inventory.schema.json"
REPO = Path(__file__).resolve().parents[1]


def small_state_dict(torch: ModuleType) -> Any:
    """conv/bn/head: a small model's state_dict (weights, biases, BatchNorm buffers)."""
    nn = torch.nn
    return nn.ModuleDict({"conv": nn.Conv2d(3, 4, 3), "bn": nn.BatchNorm2d(4), "head": nn.Linear(4, 5)}).state_dict()


def torch_dtype(t: Any) -> str:
    return str(t.dtype).removeprefix("torch.")


def flat_tensors(torch: ModuleType, obj: object, prefix: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], Any]:
    """Every tensor in what torch.load returned, keyed by its path of dict keys."""
    out: dict[tuple[Any, ...], Any] = {}
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flat_tensors(torch, v, (*prefix, k)))
    return out


@pytest.fixture
def zip_ckpt(tmp_path: Path, torch: ModuleType) -> Path:
    torch.manual_seed(0)
    p = tmp_path / "small.pt"
    sd = small_state_dict(torch)
    sd["half.buffer"] = torch.zeros(2, 7, dtype=torch.float16)
    torch.save(sd, p)
    return p


@pytest.fixture
def legacy_ckpt(tmp_path: Path, torch: ModuleType) -> Path:
    p = tmp_path / "legacy.pth"
    torch.save({"epoch": 2, "state_dict": small_state_dict(torch), "lr": 0.1}, p,
               _use_new_zipfile_serialization=False)
    return p


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("which", ["zip_ckpt", "legacy_ckpt"])
def test_text_lists_every_tensor_as_torch_loads_it(which: str, request: pytest.FixtureRequest, cli: CliRunner,
                                                   torch: ModuleType) -> None:
    path: Path = request.getfixturevalue(which)
    expected = flat_tensors(torch, torch.load(path, weights_only=True))
    assert len(expected) >= 8
    r = cli("inspect", path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    lines = r.stdout.splitlines()
    fmt = "torch-zip" if which == "zip_ckpt" else "torch-legacy"
    assert lines[0] == f"{path}  ({fmt})"
    for key, t in expected.items():
        label = " / ".join(key)
        row = next((ln for ln in lines if ln.split("  ")[0] == label), None)
        assert row is not None, f"no row for {label!r} in\n{r.stdout}"
        cells = [c.strip() for c in row.split("  ") if c.strip()]
        assert cells[1] == torch_dtype(t)
        assert cells[2] == str(list(t.shape))
        assert cells[3] == str(t.device)
        assert int(cells[5]) == t.untyped_storage().nbytes()
    assert re.search(rf"^tensors +{len(expected)}$", r.stdout, re.M)
    assert f"format               {fmt}" in r.stdout
    assert "torch._utils._rebuild_tensor_v2" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr


@pytest.mark.parametrize("which", ["zip_ckpt", "legacy_ckpt"])
def test_json_validates_and_matches_torch(which: str, request: pytest.FixtureRequest,
                                          validator: jsonschema.protocols.Validator, cli: CliRunner,
                                          torch: ModuleType) -> None:
    path: Path = request.getfixturevalue(which)
    expected = flat_tensors(torch, torch.load(path, weights_only=True))
    r = cli("inspect", "--format", "json", path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    validator.validate(doc)
    assert doc["version"] == 1
    (entry,) = doc["files"]
    assert entry["error"] is None
    assert entry["path"] == str(path)
    assert entry["format"] == ("torch-zip" if which == "zip_ckpt" else "torch-legacy")
    got = {tuple(t["path"]): t for t in entry["tensors"]}
    assert set(got) == set(expected)
    for key, t in expected.items():
        assert got[key]["shape"] == list(t.shape)
        assert got[key]["dtype"] == torch_dtype(t)
        assert got[key]["stride"] == list(t.stride())
        assert got[key]["device"] == "cpu"
    if which == "legacy_ckpt":
        assert entry["structure"]["epoch"] == 2
        assert entry["structure"]["lr"] == 0.1


def test_json_error_entries_validate(tmp_path: Path, zip_ckpt: Path,
                                     validator: jsonschema.protocols.Validator, cli: CliRunner) -> None:
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    r = cli("inspect", "--format", "json", zip_ckpt, empty)
    assert r.returncode == 2
    doc = json.loads(r.stdout)
    validator.validate(doc)
    good, bad = doc["files"]
    assert good["error"] is None and good["path"] == str(zip_ckpt)
    assert bad == {"path": str(empty), "error": "empty file, not a checkpoint", "format": "empty"}
    assert r.stderr.splitlines() == [f"ckptlint: {empty}: empty file, not a checkpoint"]


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "missing": tmp_path / "does-not-exist.pt",
        "empty": tmp_path / "empty.pt",
        "text": tmp_path / "notes.pt",
        "random": tmp_path / "random.bin",
        "python-pth": tmp_path / "distutils-precedence.pth",
    }
    files["empty"].write_bytes(b"")
    files["text"].write_text("these are not the weights you are looking for\n")
    files["random"].write_bytes(bytes(random.Random(1234).getrandbits(8) for _ in range(4096)))
    files["python-pth"].write_text("/usr/lib/python3/dist-packages\nimport os\n")
    return files


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "random", "python-pth"])
def test_unreadable_file_is_one_line_and_exit_2(kind: str, tmp_path: Path, cli: CliRunner) -> None:
    path = _bad_files(tmp_path)[kind]
    r = cli("inspect", path)
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"ckptlint: {path}: ")
    assert "Traceback" not in r.stderr
    expected_reason = {
        "missing": "no such file",
        "empty": "empty file, not a checkpoint",
        "text": "a text file, not a checkpoint",
        "python-pth": "a Python site-packages path configuration (.pth) file, not a checkpoint",
    }.get(kind)
    if expected_reason is not None:
        assert lines[0] == f"ckptlint: {path}: {expected_reason}"
    else:
        assert len(lines[0]) > len(f"ckptlint: {path}: ")


def test_good_and_bad_files_together(tmp_path: Path, zip_ckpt: Path, cli: CliRunner) -> None:
    bad = _bad_files(tmp_path)
    r = cli("inspect", bad["text"], zip_ckpt, bad["missing"])
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        f"ckptlint: {bad['text']}: a text file, not a checkpoint",
        f"ckptlint: {bad['missing']}: no such file",
    ]
    assert r.stdout.startswith(f"{zip_ckpt}  (torch-zip)")
    for key in ("conv.weight", "bn.running_var", "head.bias", "half.buffer"):
        assert any(ln.startswith(key + " ") for ln in r.stdout.splitlines()), key
    assert str(bad["text"]) not in r.stdout


def test_several_good_files_each_get_a_report(zip_ckpt: Path, legacy_ckpt: Path, cli: CliRunner) -> None:
    r = cli("inspect", zip_ckpt, legacy_ckpt)
    assert r.returncode == 0, r.stderr
    assert f"{zip_ckpt}  (torch-zip)" in r.stdout
    assert f"{legacy_ckpt}  (torch-legacy)" in r.stdout
    assert "state_dict / head.weight" in r.stdout


def test_usage_errors_exit_2_without_traceback(tmp_path: Path, cli: CliRunner) -> None:
    for args in ([], ["inspect"], ["inspect", "--format", "xml", str(tmp_path / "a.pt")], ["frobnicate"]):
        r = cli(*args)
        assert r.returncode == 2, args
        assert r.stdout == ""
        (line,) = r.stderr.splitlines()  # one line, like every other error, pointing at --help
        assert line.startswith("ckptlint: ") and line.endswith("--help)"), line


def test_help_and_version(cli: CliRunner) -> None:
    r = cli("--help")
    assert r.returncode == 0 and "inspect" in r.stdout
    r = cli("--version")
    assert r.returncode == 0 and ckptlint.__version__ in r.stdout


def test_inspect_imports_no_torch(zip_ckpt: Path, legacy_ckpt: Path, tmp_path: Path, run_python: Any) -> None:
    code = (
        "import sys, ckptlint.cli\n"
        "rc1 = ckptlint.cli.main(['inspect', sys.argv[1], sys.argv[2], sys.argv[3]])\n"
        "rc2 = ckptlint.cli.main(['inspect', '--format', 'json', sys.argv[1], sys.argv[2]])\n"
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not loaded, loaded\n"
        "print('RC', rc1, rc2, file=sys.stderr)\n"
    )
    missing = tmp_path / "nope.pt"
    r = run_python("-c", code, zip_ckpt, legacy_ckpt, missing)
    assert r.returncode == 0, r.stderr
    assert "RC 2 0" in r.stderr
    assert "conv.weight" in r.stdout


def test_bundled_examples_inspect(cli: CliRunner) -> None:
    r = cli("inspect", "examples/tiny_cnn.pt", "examples/tiny_cnn_legacy.pt", cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "fc.weight               float32  [10, 8]" in r.stdout
    assert "state_dict / conv.weight" in r.stdout


def test_terminal_control_characters_are_escaped(tmp_path: Path, cli: CliRunner, torch: ModuleType) -> None:
    p = tmp_path / "evil.pt"
    torch.save(OrderedDict([("w\x1b[2J\rfake", torch.ones(2))]), p)
    r = cli("inspect", p)
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "\r" not in r.stdout
    assert repr("w\x1b[2J\rfake") in r.stdout


def test_many_tensors_print_every_row(tmp_path: Path, cli: CliRunner, torch: ModuleType) -> None:
    n = FAST_TABLE_ROWS + 500
    p = tmp_path / "many.pt"
    torch.save({f"t{i}": torch.zeros(i % 3 + 1) for i in range(n)}, p)
    r = cli("inspect", p)
    assert r.returncode == 0, r.stderr
    rows = [ln for ln in r.stdout.splitlines() if re.match(r"t\d+ ", ln)]
    assert len(rows) == n
    assert rows[-1].split()[:3] == [f"t{n - 1}", "float32", f"[{(n - 1) % 3 + 1}]"]


def test_fast_table_matches_tabulate_layout() -> None:
    from tabulate import tabulate

    headers = ("key path", "dtype", "bytes", "p")
    rows = [("a / b.weight", "float32", "12", ""), ("x", "int64", "123456789", "param"), ("é中", "f", "1", "")]
    align = ("left", "left", "right", "left")
    assert fast_table(rows, headers, align) == tabulate(rows, headers=headers, tablefmt="simple",
                                                       disable_numparse=True, colalign=align)


def test_json_output_is_strict_for_non_finite_floats() -> None:
    text = inventory_json.dumps({"structure": {"lr": float("nan"), "best": float("-inf")}})
    assert json.loads(text) == {"structure": {"lr": "nan", "best": "-inf"}}
    assert "NaN" not in text and "Infinity" not in text


def test_trailing_pickle_shows_its_global_and_an_anomaly(tmp_path: Path, cli: CliRunner) -> None:
    import pickle

    p = tmp_path / "trailing.pkl"
    p.write_bytes(pickle.dumps({"a": 1}, protocol=2) + pickle.dumps(print, protocol=2))
    r = cli("inspect", p)
    assert r.returncode == 0, r.stderr
    assert "(no tensors)" in r.stdout
    assert re.search(r"^globals referenced \(1\):\n  builtins\.print$", r.stdout, re.M)
    assert re.search(r"^anomalies \(1\):\n  .*follow the pickle's STOP", r.stdout, re.M)
