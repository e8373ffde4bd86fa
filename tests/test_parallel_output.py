"""``check -j 2`` prints what ``check -j 1`` prints (every built-in format), byte for byte, in the
same order, with the same exit code; plugins run in the workers; a plugin's error and a dead worker
stay where a serial run has them. The files are written byte by byte (no torch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from _cli_files import broken, full_model, safetensors, safetensors_file, snapshot, su, system_call, torch_zip
from ckptlint import parallel

from conftest import CliRunner
from plugin_example.make_dist import install

pytestmark = pytest.mark.integration  # starts worker processes


def _mixed(d: Path) -> list[str]:
    """Clean, failing, unreadable and hostile files, interleaved, under names that do not sort like this."""
    d.mkdir(parents=True, exist_ok=True)
    nested = b"\x80\x02" + b"(" * 5000 + b"."  # a deep mark stack: a bound, never a crash
    made = [
        safetensors(d / "z_clean.safetensors", ("w", "b")),
        torch_zip(d / "a_evil.pt", system_call()),
        broken(d / "m_broken.safetensors"),
        torch_zip(d / "b_model.pt", full_model()),
        d / "y_empty.pt",
        torch_zip(d / "c_clean.pt", b"\x80\x02}(" + su("w") + b"K\x01u."),
        d / "x_text.bin",
        d / "d_proto0.pkl",
        d / "n_nested.pkl",
        safetensors_file(d / "e_big.safetensors", {f"layer{i}.w": [i + 1] for i in range(50)}),
        d / "f_truncated.pt",
    ]
    (d / "y_empty.pt").write_bytes(b"")
    (d / "x_text.bin").write_text("hello\n")
    (d / "d_proto0.pkl").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    (d / "n_nested.pkl").write_bytes(nested)
    (d / "f_truncated.pt").write_bytes((d / "a_evil.pt").read_bytes()[:-40])
    return [str(p.relative_to(d)) for p in made]


@pytest.fixture
def files(tmp_path: Path) -> list[str]:
    return _mixed(tmp_path)


@pytest.fixture(params=["fork", "spawn"])
def method(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(parallel, "start_method", lambda: request.param)
    return str(request.param)


@pytest.fixture
def pooled(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many pools ``check`` started, and with how many workers (so -j 2 is not quietly serial)."""
    started: list[int] = []
    real = parallel._pooled

    def spy(fn: Callable[..., object], items: object, workers: int, *rest: object) -> object:
        started.append(workers)
        return real(fn, items, workers, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(parallel, "_pooled", spy)
    return started


@pytest.mark.parametrize("fmt", ["text", "concise", "json", "sarif", "github", "markdown"])
def test_two_jobs_print_what_one_prints(fmt: str, files: list[str], tmp_path: Path, cli: CliRunner,
                                        method: str, pooled: list[int]) -> None:
    one = cli("check", "-j", "1", "--format", fmt, *files, cwd=tmp_path)
    assert pooled == []
    two = cli("check", "-j", "2", "--format", fmt, *files, cwd=tmp_path)
    assert pooled == [2]
    assert (two.returncode, two.stdout, two.stderr) == (one.returncode, one.stdout, one.stderr)
    assert one.returncode == 2 and "Traceback" not in one.stderr
    if fmt == "json":
        assert [f["path"] for f in json.loads(two.stdout)["files"]] == files  # the order given, not sorted
        codes = {f["path"]: {x["code"] for x in f["findings"]} for f in json.loads(two.stdout)["files"]}
        assert "CK101" in codes["a_evil.pt"] and "CK101" in codes["d_proto0.pkl"]
        assert codes["z_clean.safetensors"] == set() and codes["m_broken.safetensors"] & {"CK901", "CK902"}


def test_the_default_uses_a_pool_and_prints_the_same(files: list[str], tmp_path: Path, cli: CliRunner,
                                                     pooled: list[int]) -> None:
    one = cli("check", "-j", "1", "--format", "json", *files, cwd=tmp_path)
    default = cli("check", "--format", "json", *files, cwd=tmp_path)
    assert pooled == ([parallel.default_jobs(len(files))] if parallel.available_cpus() > 1 else [])
    assert (default.returncode, default.stdout, default.stderr) == (one.returncode, one.stdout, one.stderr)


def test_walks_quiet_output_selection_and_configuration_are_the_same(files: list[str], tmp_path: Path,
                                                                     cli: CliRunner, pooled: list[int]) -> None:
    config = '[tool.ckptlint]\nignore = ["CK4"]\n[tool.ckptlint.severity]\nCK102 = "info"\n'
    (tmp_path / "pyproject.toml").write_text(config)
    for args in (["."], ["-q", "."], ["-qq", "."], ["--skip-non-checkpoints", *files], ["--select", "CK1", *files],
                 ["--fail-on", "warning", "--exit-zero", *files], ["--isolated", *files]):
        one = cli("check", "-j", "1", *args, cwd=tmp_path)
        three = cli("check", "-j", "3", *args, cwd=tmp_path)
        assert (three.returncode, three.stdout, three.stderr) == (one.returncode, one.stdout, one.stderr), args
    assert pooled and set(pooled) == {3}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("site")
    install(d)
    return d


def test_plugins_run_in_the_workers(site: Path, tmp_path: Path, cli: CliRunner, method: str,
                                    pooled: list[int]) -> None:
    names = [str(safetensors(tmp_path / f"s{i}.safetensors", ("w", f"debug_{i}")).name) for i in range(4)]
    one = cli("check", "-j", "1", "--format", "json", *names, cwd=tmp_path, pythonpath=[site])
    two = cli("check", "-j", "2", "--format", "json", *names, cwd=tmp_path, pythonpath=[site])
    assert pooled == [2]
    found = [[x["code"] for x in f["findings"]] for f in json.loads(two.stdout)["files"]]
    assert found == [["EX001"]] * 4  # the example plugin's rule, found by each worker
    assert (two.returncode, two.stdout, two.stderr) == (one.returncode, one.stdout, one.stderr)


def _plugin_site(tmp_path: Path, name: str, body: str) -> Path:
    site = tmp_path / f"site_{name}"
    pkg = site / f"ckptlint_{name}"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        "import os\nfrom ckptlint.hookspecs import hookimpl\nfrom ckptlint.rule import Rule\n\n"
        f"@hookimpl\ndef ckptlint_rules():\n    return [Rule('ZZ001', '{name}', 'error', 'test')]\n\n"
        f"@hookimpl\ndef ckptlint_check_file(context):\n{body}")
    info = site / f"ckptlint_{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: ckptlint-{name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[ckptlint]\n{name} = ckptlint_{name}\n")
    return site


def test_a_plugin_error_is_the_line_a_serial_run_prints(tmp_path: Path, cli: CliRunner, method: str,
                                                        pooled: list[int]) -> None:
    site = _plugin_site(tmp_path, "picky", "    if 'boom' in context.path:\n"
                                           "        raise RuntimeError('boom ' + context.path)\n    return []\n")
    names = [safetensors(tmp_path / n).name for n in ("a.safetensors", "boom1.safetensors", "c.safetensors",
                                                     "boom2.safetensors")]
    one = cli("check", "-j", "1", *names, cwd=tmp_path, pythonpath=[site])
    two = cli("check", "-j", "2", *names, cwd=tmp_path, pythonpath=[site])
    assert pooled == [2]
    assert one.stderr.strip() == ("ckptlint: plugin picky: ckptlint_check_file failed on boom1.safetensors: "
                                  "RuntimeError: boom boom1.safetensors")
    assert (two.returncode, two.stdout, two.stderr) == (one.returncode, one.stdout, one.stderr) == (2, "", one.stderr)


def test_a_worker_that_dies_is_that_files_line(tmp_path: Path, cli: CliRunner, method: str,
                                               pooled: list[int]) -> None:
    """Only a pool can survive this (a serial run would die with the worker): the file is unreadable,
    one line, and every other file is checked and reported in its place."""
    body = "    if 'die' in context.path and os.getpid() != int(os.environ['PARENT']):\n        os._exit(9)\n"
    site = _plugin_site(tmp_path, "killer", body + "    return []\n")
    names = [safetensors(tmp_path / n).name for n in ("a.safetensors", "die.safetensors", "c.safetensors")]
    names.append(torch_zip(tmp_path / "evil.pt", system_call()).name)
    two = cli("check", "-j", "2", "--format", "json", *names, cwd=tmp_path, pythonpath=[site],
              env={"PARENT": str(os.getpid())})
    assert pooled == [2]
    report = json.loads(two.stdout)["files"]
    assert [f["path"] for f in report] == names
    assert report[1]["error"].startswith("internal error: the worker process checking it ended abruptly")
    assert [f["error"] for f in report[:1] + report[2:]] == [None, None, None]
    assert "CK101" in {x["code"] for x in report[3]["findings"]}
    assert two.returncode == 2
    assert two.stderr.splitlines() == [f"ckptlint: die.safetensors: {report[1]['error']}"]


def test_jobs_must_be_a_whole_number(tmp_path: Path, cli: CliRunner) -> None:
    path = safetensors(tmp_path / "a.safetensors").name
    for bad in ("-1", "two", "1.5", ""):
        proc = cli("check", "-j", bad, path, cwd=tmp_path)
        assert proc.returncode == 2 and "whole number" in proc.stderr and proc.stderr.count("\n") == 1, bad


def test_bytes_in_the_pickle_never_reach_a_worker_as_code(tmp_path: Path, cli: CliRunner) -> None:
    """A hostile pickle checked in a worker runs nothing there either: its marker file never appears."""
    marker = tmp_path / "ran.marker"
    payload = b"\x80\x02cos\nsystem\n" + su(f"touch {marker}") + b"\x85R."
    names = []
    for i in range(4):
        (tmp_path / f"p{i}.pkl").write_bytes(payload)
        names.append(f"p{i}.pkl")
    proc = cli("check", "-j", "2", *names, cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout.count("CK101") >= 4
    assert not marker.exists()


def test_the_api_returns_equal_typed_reports(files: list[str], tmp_path: Path, method: str, pooled: list[int],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """``check(jobs=2)``: FileReport objects equal to a serial run's, inventories (tensors, storages) included."""
    import ckptlint
    from ckptlint.inventory import StorageRecord, TensorRecord

    monkeypatch.chdir(tmp_path)
    serial = ckptlint.check(files, jobs=1)
    pooled_report = ckptlint.check(files, jobs=2)
    assert pooled == [2]
    assert pooled_report == serial
    tensors = [t for fr in pooled_report.files if fr.inventory for t in fr.inventory.tensors]
    assert len(tensors) >= 52 and all(type(t) is TensorRecord for t in tensors)
    assert all(type(s) is StorageRecord for fr in pooled_report.files if fr.inventory for s in fr.inventory.storages)


def test_python_m_ckptlint_with_spawned_workers(files: list[str], tmp_path: Path,
                                                run_python: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    """A parent with another thread (here one started by sitecustomize) spawns its workers instead of
    forking: fresh interpreters that find ckptlint, the working directory and the inputs on their own."""
    site = tmp_path / "threaded_site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import threading, time\nthreading.Thread(target=time.sleep, args=(600,), daemon=True).start()\n")
    probe = run_python("-c", "import threading; from ckptlint.parallel import start_method; "
                       "print(threading.active_count(), start_method())", pythonpath=[site])
    assert probe.stdout.split() == ["2", "spawn"]
    one = run_python("-m", "ckptlint", "check", "-j", "1", "--format", "json", *files, cwd=tmp_path,
                     pythonpath=[site])
    two = run_python("-m", "ckptlint", "check", "-j", "2", "--format", "json", *files, cwd=tmp_path,
                     pythonpath=[site])
    assert (two.returncode, two.stdout, two.stderr) == (one.returncode, one.stdout, one.stderr)
    assert one.returncode == 2 and [f["path"] for f in json.loads(two.stdout)["files"]] == files


def test_standard_input_among_the_files(files: list[str], tmp_path: Path) -> None:
    """``-`` is copied to a temporary file that stays until every worker is done with it."""
    evil = (tmp_path / "a_evil.pt").read_bytes()
    args = [files[0], "-", *files[1:]]  # the first file is this process's, the next chunk a worker's
    runs = [subprocess.run([sys.executable, "-m", "ckptlint", "check", "-j", j, "--format", "json", *args],
                           input=evil, capture_output=True, cwd=tmp_path, check=False, timeout=300)
            for j in ("1", "2")]
    assert (runs[1].returncode, runs[1].stdout, runs[1].stderr) == (runs[0].returncode, runs[0].stdout, runs[0].stderr)
    report = json.loads(runs[1].stdout)["files"]
    assert [f["path"] for f in report] == args
    assert "CK101" in {x["code"] for x in report[1]["findings"]}


def test_a_snapshot_target_travels_to_the_workers(tmp_path: Path, cli: CliRunner, pooled: list[int]) -> None:
    """A snapshot target (no torch) is sent with each file: compatibility findings as in a serial run."""
    snap = snapshot(tmp_path / "snap.json")
    names = [safetensors(tmp_path / f"s{i}.safetensors", ("w",) if i % 2 else ("w", "extra")).name for i in range(5)]
    one = cli("check", "-j", "1", "--snapshot", snap.name, "--format", "json", *names, cwd=tmp_path)
    two = cli("check", "-j", "2", "--snapshot", snap.name, "--format", "json", *names, cwd=tmp_path)
    assert pooled == [2]
    assert (two.returncode, two.stdout, two.stderr) == (one.returncode, one.stdout, one.stderr)
    compat = [f["compat"] for f in json.loads(two.stdout)["files"]]
    assert [c["strict_ok"] for c in compat] == [False, True, False, True, False]  # "extra" is unexpected


def test_a_live_model_target_checks_serially(tmp_path: Path, cli: CliRunner, pooled: list[int],
                                             torch: ModuleType) -> None:
    """A model built in this process (on meta) stays here: the files are checked one after another.
    A target whose signature came from the target cache has no live model: it goes to the workers."""
    names = []
    for i in range(4):
        torch.save(torch.nn.Linear(2, 2 + i % 2).state_dict(), tmp_path / f"l{i}.pt")
        names.append(f"l{i}.pt")
    args = ["--model", "torch.nn:Linear", "--model-kwargs", '{"in_features": 2, "out_features": 2}',
            "--format", "json", *names]
    live = {"CKPTLINT_NO_CACHE": "1", "CKPTLINT_CACHE_DIR": str(tmp_path / "cache")}
    one = cli("check", "-j", "1", *args, cwd=tmp_path, env=live)
    two = cli("check", "-j", "2", *args, cwd=tmp_path, env=live)
    assert pooled == []
    assert (two.returncode, two.stdout) == (one.returncode, one.stdout)
    assert [f["compat"]["strict_ok"] for f in json.loads(two.stdout)["files"]] == [True, False, True, False]
    cached = {"CKPTLINT_NO_CACHE": None, "CKPTLINT_CACHE_DIR": str(tmp_path / "cache")}
    cli("check", "-j", "1", *args, cwd=tmp_path, env=cached)  # fills the cache
    from_cache = cli("check", "-j", "2", *args, cwd=tmp_path, env=cached)
    assert pooled == [2]
    assert (from_cache.returncode, from_cache.stdout) == (one.returncode, one.stdout)
