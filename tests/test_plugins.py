"""Plugins: a third-party package found through its entry point works exactly like the built-ins."""

from __future__ import annotations

import inspect as pyinspect
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from ckptlint import hookspecs
from ckptlint.plugins import BUILTIN_PLUGINS, all_rules, plugin_manager, rule_doc

from conftest import CliResult, CliRunner
from plugin_example.make_dist import install

DOCS = Path(__file__).parent.parent / "docs"
Ckptlint = Callable[..., CliResult]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("site")
    install(d)
    return d


@pytest.fixture
def ckptlint_with(cli: CliRunner) -> Ckptlint:
    """``ckptlint_with(site, *args, cwd=)``: ckptlint (in-process) with ``site`` on its path.

    The runner rebuilds the plugin registry on each call, as a new process would, so the
    plugin is found through its entry point exactly like an installed one, and gone afterwards.
    """
    def run(site: Path, *args: str, cwd: Path | None = None) -> CliResult:
        return cli(*args, cwd=cwd, pythonpath=[site])
    return run


def test_entry_point_plugin_rule_is_listed(site: Path, ckptlint_with: Ckptlint) -> None:
    proc = ckptlint_with(site, "rules", "--format", "json")
    rules = {r["code"]: r for r in json.loads(proc.stdout)}
    assert rules["EX001"]["plugin"] == "example" and rules["EX001"]["severity"] == "warning"
    assert rules["CK101"]["plugin"] == "ckptlint.rules.safety"
    assert "EX001" not in ckptlint_with(Path("/nonexistent"), "rules").stdout  # absent without the plugin
    page = ckptlint_with(site, "rules", "EX001").stdout
    assert "EX001 debug-tensor" in page


def test_entry_point_plugin_finds_select_and_report(site: Path, tmp_path: Path, ckptlint_with: Ckptlint,
                                                    torch: ModuleType) -> None:
    torch.save({"w": torch.ones(2), "debug_activations": torch.zeros(3)}, tmp_path / "a.pt")
    proc = ckptlint_with(site, "check", "--format", "json", "a.pt", cwd=tmp_path)
    (finding,) = json.loads(proc.stdout)["files"][0]["findings"]
    assert finding["code"] == "EX001" and finding["severity"] == "warning"  # default severity filled in
    assert finding["key"] == "debug_activations"
    assert ckptlint_with(site, "check", "--ignore", "EX", "--format", "json", "a.pt",
                     cwd=tmp_path).stdout.count("EX001") == 0
    (tmp_path / "ckptlint.toml").write_text('[severity]\nEX001 = "error"\n')
    assert ckptlint_with(site, "check", "a.pt", cwd=tmp_path).returncode == 1
    assert ckptlint_with(site, "check", "--format", "count", "a.pt", cwd=tmp_path).stdout.strip() == "1 findings"


def test_entry_point_target_resolver(site: Path, tmp_path: Path, ckptlint_with: Ckptlint,
                                     torch: ModuleType) -> None:
    torch.save({"weight": torch.ones(3, 3)}, tmp_path / "a.pt")
    proc = ckptlint_with(site, "check", "--format", "json", "--model", "example:tiny", "--model-kwargs",
                     '{"width": 2}', "a.pt", cwd=tmp_path)
    compat = json.loads(proc.stdout)["files"][0]["compat"]
    assert compat["target"] == "example:tiny"
    assert compat["shape_mismatch"] == {"weight": [[3, 3], [2, 2]]}


def test_builtins_use_the_same_hooks() -> None:
    pm = plugin_manager()
    names = {name for name, _ in pm.list_name_plugin()}
    assert set(BUILTIN_PLUGINS) <= names
    for rule in all_rules().values():
        if rule.code.startswith("CK"):
            assert rule.plugin in BUILTIN_PLUGINS
            assert rule_doc(rule).startswith(f"# {rule.code} {rule.name}")


def test_every_hook_is_documented() -> None:
    guide = (DOCS / "plugins.md").read_text()
    specs = [n for n, f in vars(hookspecs).items() if n.startswith("ckptlint_") and callable(f)]
    assert len(specs) == 4
    for name in specs:
        assert pyinspect.getdoc(getattr(hookspecs, name)), name
        assert f"`{name}" in guide, f"{name} missing from docs/plugins.md"


def test_every_rule_has_a_page() -> None:
    index = (DOCS / "rules" / "index.md").read_text()
    for code in all_rules():
        if code.startswith("CK"):
            assert (DOCS / "rules" / f"{code}.md").is_file(), code
            assert f"[{code}]({code}.md)" in index


def test_a_crashing_plugin_is_one_line(tmp_path: Path, ckptlint_with: Ckptlint, torch: ModuleType) -> None:
    site = tmp_path / "site"
    pkg = site / "ckptlint_broken"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        "from ckptlint.hookspecs import hookimpl\n"
        "from ckptlint.rule import Rule\n\n"
        "@hookimpl\ndef ckptlint_rules():\n    return [Rule('BR001', 'broken', 'error', 'always raises')]\n\n"
        "@hookimpl\ndef ckptlint_check_file(context):\n    raise RuntimeError('boom')\n")
    info = site / "ckptlint_broken-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ckptlint-broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[ckptlint]\nbroken = ckptlint_broken\n")
    torch.save({"w": torch.ones(2)}, tmp_path / "a.pt")
    proc = ckptlint_with(site, "check", "a.pt", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == ("ckptlint: plugin broken: ckptlint_check_file failed on a.pt: "
                                   "RuntimeError: boom")
