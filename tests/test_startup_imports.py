"""Startup: ``ckptlint check`` imports only what the command uses (docs/development.md, "Startup").

Each test runs the command in a new interpreter and reads its ``sys.modules`` at the end: what a
small check imports is its startup cost. Never a time: which modules, and that each one named here
does load when the command needs it (so every assertion can fail).
"""

from __future__ import annotations

import ast
import base64
import bz2
import lzma
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from _cli_files import snapshot

from plugin_example.make_dist import install

RunPython = Callable[..., Any]

# main() with the arguments given, then the names of every loaded module as one line (repr: no json import).
PROBE = ("import sys\n"
         "from ckptlint.cli import main\n"
         "code = main(sys.argv[1:])\n"
         "print(repr([code, sorted(sys.modules)]))\n")

NOT_FOR_A_ZIP = {"ckptlint.formats.safetensors", "ckptlint.formats.sharded", "ckptlint.formats.directory",
                 "ckptlint.formats.dcp", "ckptlint.formats.tar_torch", "ckptlint.formats.torchscript_code",
                 "ckptlint.formats.torchscript_index", "ckptlint.formats.legacy", "ckptlint.formats.tar",
                 "ckptlint.formats.npy", "ckptlint.formats.pt2"}
"""Readers of other formats than the torch zip being checked (an npz or a torch.export archive is told
from a torch zip by sniff.is_npz and pt2_probe.open_pt2)."""

RENDERERS = {"ckptlint.report.check_text", "ckptlint.report.check_json", "ckptlint.report.sarif",
             "ckptlint.report.github", "ckptlint.report.markdown", "ckptlint.report.inventory_text",
             "ckptlint.report.inventory_json", "ckptlint.report.rules", "ckptlint.report.diff_text"}

TARGET_MODULES = {"ckptlint.compat.analyze", "ckptlint.compat.unwrap", "ckptlint.targets.resolve",
                  "ckptlint.targets.signature", "ckptlint.targets.spec", "ckptlint.compat_report"}

ONLY_WHEN_NEEDED = {"torch", "importlib.metadata", "email", "tomllib", "tempfile", "json.decoder",
                    "ckptlint.conversion", "ckptlint.conversion.command", "zipfile", "tarfile", "pickletools",
                    "base64", "bz2", "lzma", "argparse", "shutil", "gettext", "locale", "ckptlint.cli_parser",
                    "array", "fnmatch", "encodings.cp437", "dataclasses", "inspect", "ast", "copy"}
"""Entry points (no plugin installed), a config file's TOML (none here), spooling, a baseline, convert,
CPython's zipfile (torch.save's zip layout is read without it: formats/pyzip.py), tar, pickletools,
base64/bz2/lzma (a pickle that decodes a nested one: formats/nestedbytes.py) and argparse with what it
imports (a plain check's command line is read by cli_args), array (a zip's local-header offsets are a
memoryview), fnmatch (no glob to match: no exclude, per-file or allow-* pattern here), the cp437 codec
(ASCII member names decode without it: formats/zipmember._py_decode), and dataclasses with the inspect,
ast and copy it imports (ckptlint's data classes are records: src/ckptlint/record.py)."""


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory, torch: ModuleType) -> Path:
    """A 2-tensor ``torch.save`` file, alone in a folder with no configuration above it but /tmp's."""
    path = tmp_path_factory.mktemp("startup") / "two.pth"
    torch.save({"w": torch.zeros(2), "b": torch.ones(3)}, path)
    return path


def _modules(run_python: RunPython, *args: str | Path, cwd: Path, pythonpath: tuple[Path, ...] = ()) -> set[str]:
    proc = run_python("-c", PROBE, *args, cwd=cwd, pythonpath=pythonpath)
    assert proc.returncode == 0, proc.stderr
    code, modules = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
    assert code == 0, proc.stderr
    return set(modules)


def test_a_small_check_imports_only_what_it_uses(two: Path, run_python: RunPython) -> None:
    loaded = _modules(run_python, "check", two, "-qq", cwd=two.parent)
    assert {"ckptlint.checker", "ckptlint.formats.torchzip", "ckptlint.rules.safety"} <= loaded  # it did check
    assert loaded & ONLY_WHEN_NEEDED == set()
    assert loaded & NOT_FOR_A_ZIP == set()
    assert loaded & RENDERERS == set()  # -qq prints no report
    assert loaded & TARGET_MODULES == set()  # no --model, --snapshot or configured target


def test_fnmatch_loads_for_a_glob(two: Path, run_python: RunPython) -> None:
    assert "fnmatch" in _modules(run_python, "check", two.parent, "-qq", "--exclude", "*.bin", cwd=two.parent)


def test_zipfile_tarfile_and_pickletools_load_where_a_file_needs_them(two: Path, tmp_path: Path,
                                                                       run_python: RunPython) -> None:
    commented = tmp_path / "commented.pth"  # an archive comment: zipfile finds its end record itself
    commented.write_bytes(two.read_bytes()[:-2] + b"\x02\x00hi")
    assert "zipfile" in _modules(run_python, "check", commented, "-qq", cwd=tmp_path)
    legacy = tmp_path / "legacy.pt"  # protocol 2, no PROTO-less stream: the tar sniff, not pickletools
    legacy.write_bytes(b"\x80\x02}q\x00.")
    assert {"ckptlint.formats.legacy", "tarfile"} <= _modules(run_python, "check", legacy, "-qq", cwd=tmp_path)
    proto0 = tmp_path / "proto0.pkl"  # no PROTO opcode: its protocol is the highest its opcodes need
    proto0.write_bytes(b"(dp0\n.")
    assert "pickletools" in _modules(run_python, "check", proto0, "-qq", cwd=tmp_path)


def test_argparse_and_the_decoders_load_where_needed(two: Path, tmp_path: Path, run_python: RunPython) -> None:
    assert {"argparse", "ckptlint.cli_parser"} <= _modules(run_python, "check", "--form", "json", two, cwd=tmp_path)
    assert "argparse" in _modules(run_python, "inspect", two, cwd=tmp_path)
    blob = base64.b64encode(lzma.compress(bz2.compress(b"\x80\x02cos\nsystem\nq\x00.")))
    nested = tmp_path / "nested.pkl"  # pickle.loads(bz2.decompress(lzma.decompress(base64.b64decode(blob))))
    nested.write_bytes(b"\x80\x02cpickle\nloads\n(cbz2\ndecompress\n(clzma\ndecompress\n(cbase64\nb64decode\n("
                       b"B" + len(blob).to_bytes(4, "little") + blob + b"tRtRtRtR.")
    proc = run_python("-c", PROBE, "check", nested, cwd=tmp_path)
    code, modules = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
    assert code == 1 and "os.system" in proc.stdout and {"bz2", "lzma", "base64"} <= set(modules), proc.stdout


def test_npz_and_export_readers_load_for_their_archives(tmp_path: Path, run_python: RunPython) -> None:
    for name, member, data, reader in [("a.npz", "x.npy", b"\x93NUMPY\x01\x00", "ckptlint.formats.npy"),
                                       ("m.pt2", "m/archive_format", b"pt2", "ckptlint.formats.pt2")]:
        with zipfile.ZipFile(tmp_path / name, "w") as z:
            z.writestr(member, data)
        proc = run_python("-c", PROBE, "check", tmp_path / name, "-qq", cwd=tmp_path)
        assert reader in ast.literal_eval(proc.stdout.strip().splitlines()[-1])[1], proc.stderr


def test_tabulate_loads_only_for_a_table_of_findings(two: Path, tmp_path: Path, run_python: RunPython) -> None:
    clean = _modules(run_python, "check", two, cwd=two.parent)  # the text report: "no findings"
    assert "ckptlint.report.check_text" in clean and "tabulate" not in clean
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(b"\x80\x02cos\nsystem\nq\x00.")
    proc = run_python("-c", PROBE, "check", evil, cwd=tmp_path)
    code, modules = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
    assert code == 1 and "tabulate" in modules and "os.system" in proc.stdout, proc.stdout


def test_a_report_loads_its_own_renderer_only(two: Path, run_python: RunPython) -> None:
    loaded = _modules(run_python, "check", two, "--format", "json", cwd=two.parent)
    assert loaded & RENDERERS == {"ckptlint.report.check_json", "ckptlint.report.inventory_json"}  # it embeds one
    assert "json.decoder" in loaded  # the renderer's own import: what the check above did without
    assert loaded & TARGET_MODULES == set()


def test_a_target_loads_the_compat_analyses(two: Path, tmp_path: Path, run_python: RunPython) -> None:
    snap = snapshot(tmp_path / "snap.json")
    proc = run_python("-c", PROBE, "check", two, "--snapshot", snap, "-qq", cwd=two.parent)
    _, modules = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
    assert set(modules) >= TARGET_MODULES, proc.stderr
    assert "torch" not in modules


def test_entry_points_are_scanned_when_a_plugin_is_installed(two: Path, tmp_path: Path,
                                                             run_python: RunPython) -> None:
    install(tmp_path)
    loaded = _modules(run_python, "check", two, "-qq", cwd=two.parent, pythonpath=(tmp_path,))
    assert {"importlib.metadata", "ckptlint_example"} <= loaded


def test_only_the_subcommand_that_runs_is_declared(two: Path, run_python: RunPython) -> None:
    assert "ckptlint.conversion.command" not in _modules(run_python, "check", two, "-qq", cwd=two.parent)
    proc = run_python("-c", PROBE, "--help", cwd=two.parent)
    assert "convert" in proc.stdout and "check" in proc.stdout  # the full parser still lists every subcommand


def test_a_rendered_report_imports_no_dataclasses(two: Path, run_python: RunPython) -> None:
    """Records render without the dataclasses module (the JSON report is the one users parse)."""
    for fmt in ("text", "json"):
        proc = run_python("-c", PROBE, "check", two, "--format", fmt, cwd=two.parent)
        assert proc.returncode == 0, proc.stderr
        code, modules = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
        assert code == 0 and {"dataclasses", "inspect"}.isdisjoint(modules), proc.stderr
