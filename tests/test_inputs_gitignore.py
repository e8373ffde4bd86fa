"""Inside a git work tree a folder walk skips what git ignores; git itself is the oracle.

A real repository (``git init``) with a root and a nested ``.gitignore``, a negation,
``.git/info/exclude`` and a force-added ignored file: the files ckptlint walks are exactly
the checkpoint-named files ``git check-ignore`` does not ignore (tracked files never are).
Outside git no ``.gitignore`` applies.
"""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration  # starts git

PICKLE = pickle.dumps({"a": 1}, protocol=2)
FILES = ["a.pt", "ignored/b.pt", "c.tmp.pt", "keep.tmp.pt", "sub/local.pt", "sub/d.pt", "secret.pt",
         "forced.tmp.pt", "notes.txt"]


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False, timeout=60)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for name in FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(PICKLE)
    (root / ".gitignore").write_text("ignored/\n*.tmp.pt\n!keep.tmp.pt\n")
    (root / "sub" / ".gitignore").write_text("local.pt\n")
    assert _git(root, "init", "-q").returncode == 0
    (root / ".git" / "info" / "exclude").write_text("secret.pt\n")
    assert _git(root, "add", "-f", "forced.tmp.pt").returncode == 0  # tracked, though its pattern is ignored
    return root


def _walked(cli: Any, cwd: Path, *args: str) -> list[str]:
    result = cli("check", *args, "--format", "json", cwd=cwd)
    return [f["path"] for f in json.loads(result.stdout)["files"]]


def test_the_walk_is_what_git_does_not_ignore(repo: Path, cli: Any) -> None:
    oracle = sorted(f"repo/{n}" for n in FILES if n.endswith(".pt") and _git(repo, "check-ignore", "-q", n).returncode)
    assert oracle == ["repo/a.pt", "repo/forced.tmp.pt", "repo/keep.tmp.pt", "repo/sub/d.pt"]  # the fixture is sane
    assert _walked(cli, repo.parent, "repo") == oracle
    assert _walked(cli, repo, "sub") == ["sub/d.pt"]  # a folder inside the work tree


def test_named_ignored_files_are_still_checked(repo: Path, cli: Any) -> None:
    assert _walked(cli, repo, "ignored/b.pt", "secret.pt", ".") == [
        "ignored/b.pt", "secret.pt", "a.pt", "forced.tmp.pt", "keep.tmp.pt", "sub/d.pt"]


def test_outside_git_no_gitignore_applies(repo: Path, cli: Any, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    shutil.copytree(repo, plain, ignore=shutil.ignore_patterns(".git"))
    assert _walked(cli, tmp_path, "plain") == sorted(f"plain/{n}" for n in FILES if n.endswith(".pt"))


def test_untracked_files_count_and_deleted_tracked_ones_do_not(repo: Path, cli: Any) -> None:
    assert _git(repo, "add", "a.pt").returncode == 0
    (repo / "a.pt").unlink()  # still in the index, gone from disk
    (repo / "new.pt").write_bytes(PICKLE)
    assert _walked(cli, repo.parent, "repo") == ["repo/forced.tmp.pt", "repo/keep.tmp.pt", "repo/new.pt",
                                                 "repo/sub/d.pt"]


def test_a_nested_repository_is_walked_with_its_own_rules(repo: Path, cli: Any) -> None:
    nested = repo / "vendor"
    nested.mkdir()
    assert _git(nested, "init", "-q").returncode == 0
    (nested / ".gitignore").write_text("x.pt\n")
    for name in ("x.pt", "y.pt", "z.tmp.pt"):
        (nested / name).write_bytes(PICKLE)
    assert _git(repo, "ls-files", "--others", "--exclude-standard", "vendor").stdout.splitlines() == ["vendor/"]
    walked = [p for p in _walked(cli, repo.parent, "repo") if p.startswith("repo/vendor/")]
    oracle = sorted(f"repo/vendor/{n}" for n in ("x.pt", "y.pt", "z.tmp.pt")
                    if _git(nested, "check-ignore", "-q", n).returncode)
    assert walked == oracle == ["repo/vendor/y.pt", "repo/vendor/z.tmp.pt"]
