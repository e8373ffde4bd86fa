"""The README's first Quickstart command does what the README shows, with no torch imported."""

from __future__ import annotations

import glob
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_readme_quickstart_output_is_real() -> None:
    readme = (ROOT / "README.md").read_text()
    command = "ckptlint check examples/*.pt examples/*.safetensors"
    assert f"pip install . && {command}" in readme
    shown = re.search(r"```\n\$ " + re.escape(command) + r"\n(.*?)```", readme, re.S)
    assert shown, "the README shows the command's output"
    files = sorted(glob.glob("examples/*.pt", root_dir=ROOT)) + sorted(glob.glob("examples/*.safetensors",
                                                                                  root_dir=ROOT))
    code = ("import sys, ckptlint.cli; rc = ckptlint.cli.main(['check', *sys.argv[1:]]); "
            "assert 'torch' not in sys.modules; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, *files], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 1, proc.stderr  # two examples do not fit the model: that is the point
    assert proc.stdout == shown.group(1)
    assert "CK203" in proc.stdout and "CK201" in proc.stdout and "model.load_state_dict(fixed" in proc.stdout
