"""The built-in hooks run without building pluggy's manager, exactly as pluggy would run them (pluggy is the oracle)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _cli_files import safetensors
from ckptlint.plugin import manager

from plugin_example.make_dist import install

HOOKS = ("ckptlint_rules", "ckptlint_check_file", "ckptlint_reporters", "ckptlint_resolve_target")


@pytest.fixture
def fresh() -> None:
    """No manager built and no registry cached yet, as in a new process."""
    manager.plugin_manager.cache_clear()
    manager.builtin_hooks.cache_clear()
    manager.all_rules.cache_clear()


@pytest.mark.usefixtures("fresh")
def test_the_builtin_registry_is_pluggys_order() -> None:
    builtins = manager.builtin_hooks()
    assert builtins is not None  # no ckptlint plugin distribution in the test environment
    pm = manager.plugin_manager()
    for hook in HOOKS:
        oracle = [(i.plugin_name, i.function, tuple(i.argnames)) for i in getattr(pm.hook, hook).get_hookimpls()]
        ours = [(i.plugin_name, i.function, tuple(i.argnames)) for i in builtins.get(hook, [])]
        assert ours == oracle, hook
    assert [i.plugin_name for i in builtins["ckptlint_resolve_target"]] == [
        "ckptlint.targets.plugin", "ckptlint.targets.libraries"]  # trylast first, tryfirst last: not registration order


@pytest.mark.usefixtures("fresh")
def test_rules_and_reporters_are_the_same_either_way() -> None:
    rules, formats = manager.all_rules(), manager.reporters()
    assert manager.plugin_manager.cache_info().currsize == 0  # answered without building pluggy's manager
    manager.all_rules.cache_clear()
    manager.plugin_manager()  # once built, pluggy's manager is the one asked
    assert manager.all_rules() == rules
    assert manager.reporters() == formats
    assert manager.hookimpls("ckptlint_rules") == manager.plugin_manager().hook.ckptlint_rules.get_hookimpls()


@pytest.mark.integration  # the package.module:callable resolver imports torch before it looks for the module
@pytest.mark.usefixtures("fresh")
def test_the_first_resolver_that_answers_wins_either_way() -> None:
    """ckptlint_resolve_target is firstresult: the tryfirst (transformers) resolver refuses a spec it does not own,
    the trylast one (package.module:callable) is asked next; both paths give the same error for an unknown module."""
    from ckptlint.errors import TargetError

    with pytest.raises(TargetError) as fast:
        manager.resolve_spec("no_such_module_xyz:Net", {})
    manager.plugin_manager()
    with pytest.raises(TargetError) as oracle:
        manager.resolve_spec("no_such_module_xyz:Net", {})
    assert str(fast.value) == str(oracle.value)


@pytest.mark.parametrize("options", [{}, {"tryfirst": True}, {"trylast": True}, {"specname": "ckptlint_rules"},
                                     {"optionalhook": True, "hookwrapper": True}, {"wrapper": True}])
def test_the_marker_leaves_pluggys_mark(options: dict[str, Any]) -> None:
    import pluggy

    from ckptlint.plugin import hookimpl

    def ours() -> None: ...

    def theirs() -> None: ...

    marked = hookimpl(**options)(ours) if options else hookimpl(ours)
    assert marked is ours
    pluggy.HookimplMarker("ckptlint")(theirs, **options)
    assert ours.ckptlint_impl == theirs.ckptlint_impl  # type: ignore[attr-defined]


def test_a_check_without_plugins_imports_no_pluggy(tmp_path: Path, run_python: Callable[..., Any]) -> None:
    probe = ("import sys\nfrom ckptlint.cli import main\nmain(sys.argv[1:])\n"
             "print('pluggy' in sys.modules, 'ckptlint.plugin.spec' in sys.modules)\n")
    path = safetensors(tmp_path / "a.safetensors")
    proc = run_python("-c", probe, "check", path, "-qq", cwd=tmp_path)
    assert proc.stdout.split() == ["False", "False"], proc.stderr
    install(tmp_path / "site")  # a plugin distribution on the path: pluggy's manager runs the hooks
    proc = run_python("-c", probe, "check", path, "-qq", cwd=tmp_path, pythonpath=[tmp_path / "site"])
    assert proc.stdout.split() == ["True", "True"], proc.stderr
