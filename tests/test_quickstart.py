"""The README's first Quickstart command does what the README shows, with no torch imported."""

from __future__ import annotations

import glob
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_readme_quickstart_output_is_real(run_python: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    # A process: the point includes that the quickstart never imports torch.
    readme = (ROOT / "README.md").read_text()
    command = "ckptlint check examples/*.pt examples/*.safetensors"
    assert f"pip install . && {command}" in readme
    shown = re.search(r"```\n\$ " + re.escape(command) + r"\n(.*?)```", readme, re.S)
    assert shown, "the README shows the command's output"
    files = sorted(glob.glob("examples/*.pt", root_dir=ROOT)) + sorted(glob.glob("examples/*.safetensors",
                                                                                  root_dir=ROOT))
    code = ("import sys, ckptlint.cli; rc = ckptlint.cli.main(['check', *sys.argv[1:]]); "
            "assert 'torch' not in sys.modules; sys.exit(rc)")
    proc = run_python("-c", code, *files, cwd=ROOT)
    assert proc.returncode == 1, proc.stderr  # two examples do not fit the model: that is the point
    assert proc.stdout == shown.group(1)
    assert "CK203" in proc.stdout and "CK201" in proc.stdout and "model.load_state_dict(fixed" in proc.stdout
