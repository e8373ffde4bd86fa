"""Every command ends its process with ``os._exit`` (cli.console_main): nothing it wrote may be lost.

The fast exit skips the interpreter's teardown (with torch imported by ``--model``, and without:
a tenth of a small check), so these tests look for what a teardown would otherwise have done
for us: block-buffered stdout through a pipe, output files, spooled temporary files, the exit
status, ``atexit`` handlers and logging handlers a target's module set up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import OrderedDict
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from conftest import python_process

pytestmark = pytest.mark.integration  # every test here is about how a process ends

MODULE = textwrap.dedent("""
    import atexit, logging, os
    import torch

    LOG = os.environ["EXIT_TEST_LOG"]
    handler = logging.FileHandler(LOG, delay=True)
    logging.getLogger("wide").addHandler(handler)
    logging.getLogger("wide").warning("module imported")
    atexit.register(lambda: open(LOG + ".atexit", "w").write("ran"))

    class Wide(torch.nn.Module):
        def __init__(self, n=5000):
            super().__init__()
            self.layers = torch.nn.ModuleList(torch.nn.Linear(2, 2) for _ in range(n))
""")


def _env(tmp_path: Path) -> dict[str, str | None]:
    # stdout into a pipe is block-buffered, as for a user: no PYTHONUNBUFFERED
    return {"EXIT_TEST_LOG": str(tmp_path / "wide.log"), "CKPTLINT_NO_CACHE": "1", "PYTHONUNBUFFERED": None}


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return python_process("-m", "ckptlint", *args, cwd=tmp_path, env=_env(tmp_path), pythonpath=[tmp_path])


def _checkpoint(tmp_path: Path, torch: ModuleType) -> tuple[str, int]:
    """Every second layer renamed: 2500 missing and 2500 unexpected keys, a JSON report far over a pipe buffer."""
    (tmp_path / "widemod.py").write_text(MODULE)
    sd: OrderedDict[str, Any] = OrderedDict()
    for i in range(5000):
        name = f"layers.{i}" if i % 2 else f"old_layers.{i}"
        sd[f"{name}.weight"] = torch.zeros(2, 2)
        sd[f"{name}.bias"] = torch.zeros(2)
    path = tmp_path / "wide.pt"
    torch.save(sd, path)
    return str(path), sum(1 for k in sd if k.startswith("old_"))


def test_json_report_through_a_pipe_is_complete(tmp_path: Path, torch: ModuleType) -> None:
    path, renamed = _checkpoint(tmp_path, torch)
    out = _run(tmp_path, "check", path, "--model", "widemod:Wide", "--format", "json")
    assert out.returncode == 1, out.stderr  # findings: exit status survives os._exit
    assert len(out.stdout) > 4 * 65536
    compat = json.loads(out.stdout)["files"][0]["compat"]
    assert len(compat["unexpected"]) == renamed and len(compat["missing"]) == renamed
    # the target's atexit handler and its logging handler ran before the process ended
    assert (tmp_path / "wide.log").read_text() == "module imported\n"
    assert (tmp_path / "wide.log.atexit").read_text() == "ran"


def test_output_file_and_clean_status(tmp_path: Path, torch: ModuleType) -> None:
    path, _ = _checkpoint(tmp_path, torch)
    report = tmp_path / "report.sarif"
    out = _run(tmp_path, "check", path, "--model", "widemod:Wide", "--format", "sarif", "-o", str(report),
               "--exit-zero")
    assert out.returncode == 0, out.stderr
    sarif = json.loads(report.read_text())
    assert {r["ruleId"] for r in sarif["runs"][0]["results"]} >= {"CK201", "CK202"}


def test_closed_pipe_is_quiet(tmp_path: Path, torch: ModuleType) -> None:
    """`ckptlint check … --model … | head -c 10`: no traceback, no 'Exception ignored' at exit."""
    path, _ = _checkpoint(tmp_path, torch)
    env = {k: v for k, v in {**os.environ, **_env(tmp_path)}.items() if v is not None}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)
    p = subprocess.Popen([sys.executable, "-m", "ckptlint", "check", path, "--model", "widemod:Wide",
                          "--format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=env)
    assert p.stdout is not None and p.stderr is not None
    head = p.stdout.read(10)
    p.stdout.close()
    err = p.stderr.read().decode()
    rc = p.wait(timeout=300)
    assert head.startswith(b"{"), err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert rc in (1, 2)  # the findings' status, or 2 when the lost output is noticed at the final flush


def test_short_text_report_is_flushed(tmp_path: Path, torch: ModuleType) -> None:
    """A report smaller than the stdout buffer is only written by the final flush."""
    _checkpoint(tmp_path, torch)
    sd = OrderedDict((f"layers.{i}.{p}", torch.zeros(2, 2) if p == "weight" else torch.zeros(2))
                     for i in range(2) for p in ("weight", "bias"))
    torch.save(sd, tmp_path / "small.pt")
    out = _run(tmp_path, "check", "small.pt", "--model", "widemod:Wide", "--model-kwargs", '{"n": 3}')
    assert out.returncode == 1, out.stderr
    assert "small.pt" in out.stdout and "CK201" in out.stdout and "layers.2.weight" in out.stdout


def test_without_torch_reports_files_and_spools_survive(tmp_path: Path, torch: ModuleType) -> None:
    """A torch-free check of 300 files with findings (a JSON report over a pipe buffer), one to an
    ``-o`` file, one of standard input (spooled to a temporary file that must still be removed)
    and a conversion: complete, with their statuses, and no temporary file left behind."""
    files = []
    for i in range(300):
        f = tmp_path / f"f{i}.pt"
        f.write_bytes(b"\x80\x02cos\nsystem\nq\x00.")  # CK101: a global that runs code
        files.append(str(f))
    env_tmp = tmp_path / "tmp"
    env_tmp.mkdir()
    env = {**_env(tmp_path), "TMPDIR": str(env_tmp)}
    out = python_process("-m", "ckptlint", "check", *files, "--format", "json", cwd=tmp_path, env=env)
    assert out.returncode == 1, out.stderr
    assert len(out.stdout) > 4 * 65536
    assert len(json.loads(out.stdout)["files"]) == 300
    report = tmp_path / "r.sarif"
    out = python_process("-m", "ckptlint", "check", files[0], "--format", "sarif", "-o", str(report), "--exit-zero",
                         cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(report.read_text())["runs"][0]["results"][0]["ruleId"] == "CK101"
    good = tmp_path / "good.pt"
    torch.save({"w": torch.arange(6.0)}, good)
    piped_env = {**{k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}, "TMPDIR": str(env_tmp)}
    out = subprocess.run([sys.executable, "-m", "ckptlint", "check", "-", "--format", "json"], input=good.read_bytes(),
                         capture_output=True, cwd=tmp_path, env=piped_env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["files"][0]["format"] == "torch-zip"
    out = python_process("-m", "ckptlint", "convert", str(good), str(tmp_path / "good.safetensors"), cwd=tmp_path,
                         env=env)
    assert out.returncode == 0, out.stderr
    from safetensors.torch import load_file

    assert torch.equal(load_file(str(tmp_path / "good.safetensors"))["w"], torch.arange(6.0))
    assert list(env_tmp.iterdir()) == []  # the spooled copy of standard input was removed
