"""Rules own their identity: the built-in plugin list is complete, every code the source can emit is a
registered rule with a page (and every page a rule), findings are made through their rule, and a
plugin emitting a code nobody declared is told so in one line."""

from __future__ import annotations

import ast
import json
import re
import types
from pathlib import Path

import pytest

import ckptlint
from ckptlint.errors import PluginError
from ckptlint.findings import Finding
from ckptlint.plugin import FileContext, Rule, hookimpl
from ckptlint.plugin.manager import BUILTIN_PLUGINS, all_rules, plugin_manager, run_check_file_hooks

SRC = Path(ckptlint.__file__).parent
DOCS = Path(__file__).resolve().parents[1] / "docs" / "rules"  # the repository's pages, also under tox
CODE = re.compile(r"^CK[0-9]{3}$")


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        out[name] = ast.parse(path.read_text(encoding="utf-8"))
    return out


def _implements_a_hook(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            for d in node.decorator_list:
                target = d.func if isinstance(d, ast.Call) else d
                if getattr(target, "id", getattr(target, "attr", None)) == "hookimpl":
                    return True
    return False


def test_builtin_plugin_list_is_every_module_that_implements_a_hook() -> None:
    implementing = {name for name, tree in _modules().items() if _implements_a_hook(tree)}
    assert "ckptlint.rules.input" in implementing  # CK901/CK902: the module the old hand list lost
    assert implementing == set(BUILTIN_PLUGINS)


def _declared_codes() -> set[str]:
    """Codes in ``Rule("CKnnn", ...)`` declarations anywhere in the source."""
    return {n.args[0].value for tree in _modules().values() for n in ast.walk(tree)
            if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "Rule" and n.args
            and isinstance(n.args[0], ast.Constant) and isinstance(n.args[0].value, str)
            and CODE.match(n.args[0].value)}


def _code_literals() -> set[str]:
    """Every string constant in the source that is exactly a code (``"CK209"`` compared in assertions …)."""
    return {n.value for tree in _modules().values() for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and CODE.match(n.value)}


def test_every_code_in_the_source_is_a_registered_rule() -> None:
    registered = set(all_rules())
    assert {"CK101", "CK201", "CK901", "CK902"} <= _declared_codes()
    assert _declared_codes() - registered == set()
    assert _code_literals() - registered == set()


def test_every_code_answers_ckptlint_rules(cli) -> None:  # type: ignore[no-untyped-def]
    for code, rule in all_rules().items():
        r = cli("rules", code, "--format", "json")
        assert r.returncode == 0, (code, r.stderr)
        page = json.loads(r.stdout)
        assert page["code"] == code and page["name"] == rule.name and page["doc"].startswith(f"# {code} ")


def test_rule_pages_and_registry_agree_both_ways() -> None:
    pages = {p.stem for p in DOCS.glob("CK*.md")}
    builtin = {c for c, r in all_rules().items() if r.plugin in BUILTIN_PLUGINS}
    assert pages - builtin == set(), "pages without a rule"
    assert builtin - pages == set(), "rules without a page"
    for code in builtin:
        name = all_rules()[code].name
        assert (DOCS / f"{code}.md").read_text(encoding="utf-8").startswith(f"# {code} {name}\n"), code


def test_a_finding_is_made_through_its_rule() -> None:
    rule = Rule("ZZ001", "example", "warning", "an example")
    f = rule.finding("seen", key="a/b", fix="drop it")
    assert (f.code, f.severity, f.message, f.key, f.location, f.fix) == ("ZZ001", "warning", "seen", "a/b", None,
                                                                         "drop it")
    assert rule.finding("worse", severity="error").severity == "error"
    with pytest.raises(TypeError):
        Finding("ZZ001", "warning", "positional")  # type: ignore[misc]


def _context(tmp_path: Path) -> FileContext:
    """A real file, read and judged as check_file does."""
    import pickle

    from ckptlint.safety.weights_only import predict

    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=2))  # written, never loaded
    inv = ckptlint.inspect(path)
    return FileContext(str(path), inv, predict(inv, frozenset()))


def test_an_undeclared_code_is_a_plugin_error_naming_the_plugin(tmp_path: Path) -> None:
    plugin = types.ModuleType("rogue_plugin")

    @hookimpl
    def ckptlint_check_file(context: FileContext) -> list[Finding]:
        return [Finding(code="ZZ999", severity="error", message="from nowhere")]

    plugin.ckptlint_check_file = ckptlint_check_file  # type: ignore[attr-defined]
    context = _context(tmp_path)
    assert all(f.code in all_rules() for f in run_check_file_hooks(context))
    pm = plugin_manager()
    pm.register(plugin, name="rogue_plugin")
    try:
        with pytest.raises(PluginError) as e:
            run_check_file_hooks(context)
    finally:
        pm.unregister(plugin)
    message = str(e.value)
    assert message.startswith("plugin rogue_plugin: ") and "ZZ999" in message and "\n" not in message
    assert e.value.plugin == "rogue_plugin"


@pytest.mark.parametrize(("content", "code", "name"), [
    (b"PK\x03\x04" + b"\x00" * 40, "CK901", "unreadable-file"),
    (b"", "CK902", "not-a-checkpoint"),
])
def test_sarif_has_a_real_rule_for_unreadable_input(tmp_path: Path, cli, content: bytes, code: str,  # type: ignore[no-untyped-def]
                                                     name: str) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    r = cli("check", path, "--format", "sarif")
    assert r.returncode == 2
    run = json.loads(r.stdout)["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    (result,) = run["results"]
    rule = rules[result["ruleIndex"]]
    assert (result["ruleId"], rule["id"], rule["name"]) == (code, code, name)
    assert result["level"] == rule["defaultConfiguration"]["level"] == "error"
