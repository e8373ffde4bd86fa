"""The API is typed for callers: real ``mypy --strict`` on small caller snippets (a new process each).

The positive snippet must pass with no error (no ``no-untyped-call``, ``check`` returns ``Report``);
the negative ones prove mypy really checks the signature (wrong input types, unknown options).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

CALLER = '''\
import io
import os
from pathlib import Path

import ckptlint
from ckptlint import CheckInput, FileReport, Finding, Report, Verdict

inputs: list[CheckInput] = ["a.pt", Path("w"), b"\\x80\\x02}.", io.BytesIO(b""), open(os.devnull, "rb")]
report: Report = ckptlint.check(inputs, trusted=["m.C"], exclude=["*.tmp"], use_config=False,
                                limits=ckptlint.Limits(max_spool_bytes=1 << 20), targets="none")
reveal_type(ckptlint.check("a.pt"))
fr: FileReport = report.files[0]
verdict: Verdict | None = fr.verdict
pairs: list[tuple[str, Finding]] = report.findings()
code: int = report.exit_code("warning")
inv: ckptlint.Inventory = ckptlint.inspect(Path("a.pt"))
'''


def _mypy(run_python: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path, source: str) -> str:
    (tmp_path / "caller.py").write_text(source)
    done = run_python("-m", "mypy", "--strict", "--no-error-summary", "--cache-dir", str(tmp_path / ".cache"),
                      "caller.py", cwd=tmp_path)
    return done.stdout + done.stderr


def test_a_strict_caller_type_checks(run_python: Callable[..., subprocess.CompletedProcess[str]],
                                     tmp_path: Path) -> None:
    out = _mypy(run_python, tmp_path, CALLER)
    assert out.splitlines() == ['caller.py:11: note: Revealed type is "ckptlint.results.Report"'], out


def test_mypy_rejects_wrong_inputs_and_unknown_options(run_python: Callable[..., subprocess.CompletedProcess[str]],
                                                       tmp_path: Path) -> None:
    out = _mypy(run_python, tmp_path, "import ckptlint\nckptlint.check(1)\nckptlint.check('a.pt', colour=True)\n")
    assert "caller.py:2: error: Argument 1 to \"check\" has incompatible type \"int\"" in out, out
    assert "caller.py:3: error: Unexpected keyword argument \"colour\" for \"check\"" in out, out
