"""The pre-commit hooks, run by the real ``pre-commit`` against this repository.

pre-commit builds the hook's virtualenv and ``pip install``s ckptlint into it (pluggy and
tabulate come from PyPI or pip's cache; torch must not be installed). ``try-repo`` uses a
throwaway store, so it builds an environment on every call; the other tests point a
``.pre-commit-config.yaml`` at a snapshot commit of this working tree (what ``try-repo``
does) with ``PRE_COMMIT_HOME`` shared by the module, so that environment is built once.
"""

from __future__ import annotations

import configparser
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from conftest import CliRunner

pytestmark = pytest.mark.integration  # git and the real pre-commit, in processes

ROOT = Path(__file__).resolve().parents[1]
PRE_COMMIT = [sys.executable, "-m", "pre_commit"]
GIT_ENV = {
    "GIT_AUTHOR_NAME": "ckptlint tests", "GIT_AUTHOR_EMAIL": "tests@example.invalid",
    "GIT_COMMITTER_NAME": "ckptlint tests", "GIT_COMMITTER_EMAIL": "tests@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}

PYPROJECT = """
[tool.ckptlint]
[[tool.ckptlint.targets]]
files = ["weights/*.pt"]
snapshot = "snapshots/squeezenet1_1.json"
"""

# A protocol-0 pickle is plain ASCII: identify tags it `text`, and it still runs os.system.
TEXT_PAYLOAD = b"cos\nsystem\n(S'echo pwned > marker.txt'\ntR."


class Boom:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("echo pwned > marker.txt",))


def _git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **GIT_ENV, **(env or {})})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, torch: ModuleType) -> Path:
    """A git repository with committed checkpoints, a snapshot target and a site .pth file."""
    import torchvision

    d = tmp_path_factory.mktemp("userrepo")
    for sub in ("weights", "incoming", "snapshots", "site"):
        (d / sub).mkdir()
    torch.manual_seed(0)
    torch.save(torchvision.models.squeezenet1_1().state_dict(), d / "weights" / "good.pt")
    torch.save(torchvision.models.squeezenet1_1(num_classes=10).state_dict(), d / "weights" / "head10.pt")
    torch.save(torch.nn.Sequential(torch.nn.Linear(4, 2)).state_dict(), d / "incoming" / "clean.pt")
    torch.save(torch.nn.Sequential(torch.nn.Linear(4, 2)), d / "incoming" / "full.pt")
    torch.save({"w": torch.zeros(2), "x": Boom()}, d / "incoming" / "evil.PT")
    (d / "incoming" / "payload.pth").write_bytes(TEXT_PAYLOAD)
    (d / "site" / "extra.pth").write_text("import sys; sys.path.append('/opt/x')\n/opt/lib\n")
    _other_checkpoints(d, torch)
    (d / "pyproject.toml").write_text(PYPROJECT)
    proc = CliRunner()("snapshot", "torchvision.models:squeezenet1_1", "-o", d / "snapshots" / "squeezenet1_1.json")
    assert proc.returncode == 0, proc.stderr
    _git("init", "-q", cwd=d)
    _git("add", ".", cwd=d)
    _git("commit", "-q", "-m", "checkpoints", cwd=d)
    return d


# Not checkpoints that share the extensions: an ELF firmware image and a sentencepiece-style protobuf.
FIRMWARE = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 16
TOKENIZER = b"\n\x0b\n\x05<unk>\x15\x00\x00\x00\x00\x18\x02\n\x07\n\x03the\x15\xcd\xcc\xcc\xbd" * 40


def _other_checkpoints(d: Path, torch: ModuleType) -> None:
    """What people commit besides *.pt (issue #13), plus files that only share a checkpoint's extension."""
    import numpy as np
    from safetensors.torch import save_file

    for sub in ("hf", "shards", "vendor"):
        (d / sub).mkdir()
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    torch.save(model, d / "weights" / "checkpoint.pth.tar")  # a whole model under the classic name
    whole = (d / "weights" / "checkpoint.pth.tar").read_bytes()
    (d / "weights" / "broken.bin").write_bytes(whole[: len(whole) // 2])  # a torch zip cut short
    (d / "weights" / "evil.pkl").write_bytes(pickle.dumps({"step": 1, "callback": Boom()}, protocol=2))
    np.save(d / "weights" / "objects.npy", np.array([Boom(), 1.5], dtype=object), allow_pickle=True)
    save_file({"w": torch.zeros(2)}, str(d / "hf" / "model-00001-of-00001.safetensors"))
    (d / "hf" / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": 8}, "weight_map": {"w": "model-00001-of-00001.safetensors"}}))
    torch.save({"w": torch.zeros(2), "x": Boom()}, d / "shards" / "pytorch_model-00001-of-00001.bin")
    (d / "shards" / "pytorch_model.bin.index.json").write_text(json.dumps(
        {"metadata": {"total_size": 8}, "weight_map": {"w": "pytorch_model-00001-of-00001.bin"}}))
    (d / "vendor" / "firmware.bin").write_bytes(FIRMWARE)
    (d / "vendor" / "tokenizer.bin").write_bytes(TOKENIZER)


@pytest.fixture(scope="module")
def try_all(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    """``pre-commit try-repo <this repo> ckptlint --all-files`` on the user repository, run once."""
    return _pre_commit(repo, tmp_path_factory.mktemp("home"), "try-repo", str(ROOT), "ckptlint", "--all-files")


def _block(out: str, path: str) -> str:
    """The report of one file in the hook's text output."""
    assert f"\n{path} [" in out, f"{path} was not checked:\n{out}"
    return out.split(f"\n{path} [")[1].split("\n\n")[0]


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """This repository's HEAD plus its uncommitted changes, committed in a clone (as try-repo does)."""
    shadow = tmp_path_factory.mktemp("hookrepo") / "ckptlint"
    _git("clone", "-q", str(ROOT), str(shadow), cwd=ROOT)
    git_dir = Path(_git("rev-parse", "--absolute-git-dir", cwd=shadow).strip())
    env = {"GIT_INDEX_FILE": str(git_dir / "index"), "GIT_OBJECT_DIRECTORY": str(git_dir / "objects")}
    staged = [f for f in _git("diff", "--cached", "--name-only", "-z", cwd=ROOT).split("\0") if f]
    if staged:
        _git("add", "--", *staged, cwd=ROOT, env=env)
    _git("add", "-u", cwd=ROOT, env=env)
    _git("commit", "-q", "--allow-empty", "-m", "working tree", cwd=shadow)
    return shadow, _git("rev-parse", "HEAD", cwd=shadow).strip()


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pre-commit-home")


def _pre_commit(repo: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **GIT_ENV, "PRE_COMMIT_HOME": str(home), "PRE_COMMIT_COLOR": "never"}
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run([*PRE_COMMIT, *args], cwd=repo, capture_output=True, text=True, timeout=600, env=env)


def _run_hook(repo: Path, home: Path, hook_repo: tuple[Path, str], hook: str,
              *files: str) -> subprocess.CompletedProcess[str]:
    path, rev = hook_repo
    config = repo.parent / f"{repo.name}-{hook}.yaml"
    config.write_text(f"repos:\n-   repo: {path}\n    rev: {rev}\n    hooks:\n    -   id: {hook}\n")
    return _pre_commit(repo, home, "run", "--config", str(config), "--files", *files)


def test_manifest_is_valid() -> None:
    proc = subprocess.run([*PRE_COMMIT, "validate-manifest", str(ROOT / ".pre-commit-hooks.yaml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_own_config_is_valid_and_runs_the_lint_gate() -> None:
    """The project's .pre-commit-config.yaml is valid and pins the same ruff and mypy as `tox -e lint`."""
    import yaml  # pre-commit's own dependency

    config = ROOT / ".pre-commit-config.yaml"
    proc = subprocess.run([*PRE_COMMIT, "validate-config", str(config)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    hooks = {h["id"]: h for r in yaml.safe_load(config.read_text())["repos"] for h in r["hooks"]}
    assert set(hooks) == {"ruff", "mypy"}
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    lint = tox["testenv:lint"]
    pins = {d.strip() for d in lint["deps"].split()}
    for hook, tool in (("ruff", "ruff"), ("mypy", "mypy")):
        (pin,) = (d for d in hooks[hook]["additional_dependencies"] if d.startswith(tool + "=="))
        assert pin in pins, f"{pin} (pre-commit) is not what tox -e lint installs: {sorted(pins)}"
    assert set(hooks["mypy"]["additional_dependencies"]) == pins - {pin for pin in pins if pin.startswith("ruff")}
    assert "ruff check src tests" in lint["commands"] and hooks["ruff"]["entry"].startswith("ruff check")
    assert hooks["mypy"]["entry"] == "mypy" and "mypy" in lint["commands"].split()


def test_try_repo_blocks_unsafe_checkpoints(repo: Path, try_all: subprocess.CompletedProcess[str]) -> None:
    proc = try_all
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "ckptlint (checkpoint safety)" in out and "Failed" in out
    # The full-model pickle and both payloads (zip, and a protocol-0 text pickle) with their findings.
    assert "incoming/full.pt [torch-zip] — weights_only=True FAILS" in out
    assert "CK102" in out.split("incoming/full.pt [")[1].split("\n\n")[0]
    assert "CK101" in out.split("incoming/evil.PT [")[1].split("\n\n")[0]
    assert "CK101" in out.split("incoming/payload.pth [")[1].split("\n\n")[0]
    assert "incoming/clean.pt [torch-zip] — loads with weights_only=True\n  no findings" in out
    assert "weights/good.pt [torch-zip] — loads with weights_only=True\n  no findings" in out
    # The site-packages path file is skipped, not reported as a broken checkpoint.
    assert "site/extra.pth: skipped: a Python site-packages path configuration (.pth) file" in out
    assert "pyproject.toml" not in out.split("Failed")[1]  # only checkpoint extensions were passed
    assert not (repo / "marker.txt").exists()


def test_try_repo_checks_every_checkpoint_name(repo: Path, try_all: subprocess.CompletedProcess[str]) -> None:
    """.pth.tar, .pkl, .npy object arrays and shard indexes are checked (none "(no files to check)"), and fail
    where they should; a torch zip cut short still fails (exit 2); firmware and tokenizer blobs are a note."""
    out = try_all.stdout
    assert try_all.returncode == 1, out + try_all.stderr
    assert "(no files to check)" not in out and "- exit code: 2" in out  # the broken checkpoint
    assert "weights/checkpoint.pth.tar [torch-zip] — weights_only=True FAILS" in out
    assert "CK102" in _block(out, "weights/checkpoint.pth.tar")
    for path in ("weights/evil.pkl", "weights/objects.npy", "shards/pytorch_model.bin.index.json",
                 "shards/pytorch_model-00001-of-00001.bin"):
        block = _block(out, path)
        assert "CK101" in block and "system" in block, block
    assert "hf/model.safetensors.index.json [sharded-index]" in out
    assert "no findings" in _block(out, "hf/model-00001-of-00001.safetensors")
    assert "ckptlint: weights/broken.bin: torch.load refuses it" in out
    assert "weights/broken.bin: skipped" not in out
    for path in ("vendor/firmware.bin", "vendor/tokenizer.bin"):
        assert f"ckptlint: {path}: skipped: unrecognised content, not a checkpoint" in out
    assert not (repo / "marker.txt").exists()


def test_try_repo_passes_files_that_are_not_checkpoints(repo: Path, tmp_path: Path) -> None:
    proc = _pre_commit(repo, tmp_path / "home", "try-repo", str(ROOT), "ckptlint", "--verbose",
                       "--files", "vendor/firmware.bin", "vendor/tokenizer.bin", "site/extra.pth")
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "ckptlint (checkpoint safety)" in out and "Passed" in out
    assert "ckptlint: vendor/firmware.bin: skipped: unrecognised content, not a checkpoint" in out
    assert "ckptlint: vendor/tokenizer.bin: skipped: unrecognised content, not a checkpoint" in out
    assert "site/extra.pth: skipped: a Python site-packages path configuration (.pth) file" in out


def test_safety_hook_passes_clean_files_without_torch(repo: Path, pre_commit_home: Path,
                                                      hook_repo: tuple[Path, str]) -> None:
    proc = _run_hook(repo, pre_commit_home, hook_repo, "ckptlint",
                     "incoming/clean.pt", "weights/good.pt", "site/extra.pth")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ckptlint (checkpoint safety)" in proc.stdout and "Passed" in proc.stdout
    # The hook's environment holds ckptlint and its small dependencies, no torch.
    site_packages = list(pre_commit_home.glob("repo*/py_env-*/lib/python*/site-packages"))
    assert site_packages
    installed = {p.name.lower() for sp in site_packages for p in sp.iterdir()}
    assert any(n.startswith("ckptlint") for n in installed)
    assert "pluggy" in installed and "tabulate" in installed
    assert not any(n == "torch" or n.startswith("torch-") for n in installed)


def test_safety_hook_blocks_full_model_and_payload(repo: Path, pre_commit_home: Path,
                                                   hook_repo: tuple[Path, str]) -> None:
    proc = _run_hook(repo, pre_commit_home, hook_repo, "ckptlint",
                     "incoming/clean.pt", "incoming/full.pt", "incoming/evil.PT")
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "- hook id: ckptlint" in out and "- exit code: 1" in out
    assert "CK102   error" in out and "full-model pickle" in out
    assert "CK101   error" in out and "system can run code" in out
    assert not (repo / "marker.txt").exists()


def test_compat_hook_fails_a_mismatched_checkpoint(repo: Path, pre_commit_home: Path,
                                                   hook_repo: tuple[Path, str], tmp_path: Path) -> None:
    proc = _pre_commit(repo, tmp_path / "home", "try-repo", str(ROOT), "ckptlint-compat",
                       "--files", "weights/good.pt", "weights/head10.pt")
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "ckptlint (checkpoint compatibility)" in out and "Failed" in out
    assert "weights/good.pt [torch-zip] — loads with weights_only=True\n  no findings" in out
    head10 = out.split("weights/head10.pt [")[1]
    assert "CK203   error" in head10 and "2 shape mismatches" in head10
    assert "(classifier.1.weight: [10, 512, 1, 1] vs [1000, 512, 1, 1]" in " ".join(head10.split())
    assert "load_state_dict(strict=False)" in head10
    # The snapshot target needs no torch: the same environment as the safety hook.
    proc = _run_hook(repo, pre_commit_home, hook_repo, "ckptlint-compat", "weights/good.pt")
    assert proc.returncode == 0, proc.stdout + proc.stderr
