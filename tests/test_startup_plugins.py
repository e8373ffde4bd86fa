"""The built-in hooks run without building pluggy's manager, exactly as pluggy would run them (pluggy is the oracle)."""

from __future__ import annotations

import pytest

from ckptlint.plugin import manager

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
