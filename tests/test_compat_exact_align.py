"""Rename inference without torch: the module alignment, the order of its rules, historical renames,
and the plain values handed to ``set_extra_state`` (the torch-backed checks are in
tests/differential/test_compat_exact_*.py)."""

from __future__ import annotations

from typing import Any

import pytest

from ckptlint.compat.align import align, groups, module_rules
from ckptlint.compat.fixes import rename_key
from ckptlint.compat.history import rename_history
from ckptlint.compat.plain import Opaque, rebuild
from ckptlint.targets.signature import TensorSig


def _conv(i: str, o: int, n: int) -> dict[str, tuple[int, ...]]:
    return {f"{i}.weight": (o, n, 3, 3), f"{i}.bias": (o,)}


def _bn(i: str, c: int) -> dict[str, tuple[int, ...]]:
    return {f"{i}.{leaf}": (c,) for leaf in ("weight", "bias", "running_mean", "running_var")}


def test_index_shift_aligns_every_conv_even_where_a_name_and_shape_coincide() -> None:
    # vgg-like: convs at 0, 3, 6, 8 -> with BatchNorm after each conv: 0, 4, 8, 11
    ckpt = {**_conv("f.0", 8, 3), **_conv("f.3", 16, 8), **_conv("f.6", 16, 16), **_conv("f.8", 16, 16)}
    model = {**_conv("f.0", 8, 3), **_bn("f.1", 8), **_conv("f.4", 16, 8), **_bn("f.5", 16),
             **_conv("f.8", 16, 16), **_bn("f.9", 16), **_conv("f.11", 16, 16), **_bn("f.12", 16)}
    pairs = align(groups(dict(ckpt)), groups(dict(model)))
    assert pairs == [("f.0", "f.0"), ("f.3", "f.4"), ("f.6", "f.8"), ("f.8", "f.11")]
    rules = module_rules(pairs)
    moved = {rename_key(k, rules): k for k in ckpt}
    assert moved["f.8.weight"] == "f.6.weight" and moved["f.11.weight"] == "f.8.weight"
    assert moved["f.4.bias"] == "f.3.bias" and moved["f.0.weight"] == "f.0.weight"


def test_equal_names_win_ties() -> None:
    # resnet18-like checkpoint into a deeper model with identical blocks: no shifting
    ckpt = {**_bn("l.0", 4), **_bn("l.1", 4)}
    model = {**_bn("l.0", 4), **_bn("l.1", 4), **_bn("l.2", 4)}
    assert align(groups(dict(ckpt)), groups(dict(model))) == [("l.0", "l.0"), ("l.1", "l.1")]


@pytest.mark.parametrize("n", [2, 3])
def test_a_cycle_of_moves_goes_through_a_temporary_name(n: int) -> None:
    pairs = [(f"m{i}", f"m{(i + 1) % n}") for i in range(n)]
    rules = module_rules(pairs)
    for i in range(n):
        assert rename_key(f"m{i}.weight", rules) == f"m{(i + 1) % n}.weight"
    assert rename_key("m0.sub.weight", rules) == "m0.sub.weight"  # only the module's own keys move


def test_history_renames_only_keys_that_then_load() -> None:
    expected = {"ln.weight": TensorSig((4,), "float32", "parameter"),
                "ln.bias": TensorSig((4,), "float32", "parameter"),
                "other.gamma": TensorSig((2,), "float32", "parameter")}
    keys: dict[str, Any] = {"ln.gamma": (4,), "ln.beta": (4,), "other.gamma": (2,)}
    rules, said = rename_history(keys, expected)
    moved = {rename_key(k, rules) for k in keys}
    assert moved == {"ln.weight", "ln.bias", "other.gamma"}  # other.gamma already loads: untouched
    assert said and "gamma" in said[0]


def test_history_needs_the_same_shape() -> None:
    expected = {"ln.weight": TensorSig((4,), "float32", "parameter")}
    assert rename_history({"ln.gamma": (5,)}, expected) == ([], [])


def test_plain_values_rebuild_only_what_is_unambiguous() -> None:
    def no_tensor(i: int) -> Any:
        raise Opaque("tensor")
    assert rebuild({"calls": 3, "name": "x", "scale": 0.5, "none": None}, no_tensor) == {
        "calls": 3, "name": "x", "scale": 0.5, "none": None}
    for node in ([1, 2], {"5": 1}, {"__object__": "argparse.Namespace"}, {"__bytes__": 3}, {"t": {"__tensor__": 0}}):
        with pytest.raises(Opaque):
            rebuild(node, no_tensor)


def test_sorted_keys_align_only_within_index_families() -> None:
    from ckptlint.compat.align import align_by_names

    # BERT-like, keys sorted by name (safetensors): three same-shaped LayerNorms per layer
    ln = {"weight": (8,), "bias": (8,)}
    ckpt = {f"{m}.{leaf}": s for m in ("embeddings.LayerNorm", "encoder.layer.0.attention.output.LayerNorm",
                                        "encoder.layer.0.output.LayerNorm") for leaf, s in ln.items()}
    model = {f"bert.{k}": s for k, s in ckpt.items()}
    assert align_by_names(groups(dict(sorted(ckpt.items()))), groups(model)) == []
    # the vgg index shift is stated by the names themselves: aligned in numeric order
    vgg = {**_conv("f.0", 8, 3), **_conv("f.3", 16, 8), **_conv("f.6", 16, 16), **_conv("f.8", 16, 16)}
    bn = {**_conv("f.0", 8, 3), **_bn("f.1", 8), **_conv("f.4", 16, 8), **_bn("f.5", 16),
          **_conv("f.8", 16, 16), **_bn("f.9", 16), **_conv("f.11", 16, 16), **_bn("f.12", 16)}
    pairs = align_by_names(groups(dict(sorted(vgg.items()))), groups(bn))
    assert sorted(pairs) == sorted([("f.0", "f.0"), ("f.3", "f.4"), ("f.6", "f.8"), ("f.8", "f.11")])


def test_a_name_sorted_pickle_is_not_saving_order() -> None:
    from ckptlint.compat.unwrap import _sorted_by_name

    assert _sorted_by_name(["a.bias", "a.weight", "b.bias"])
    assert not _sorted_by_name(["a.weight", "a.bias"])  # torch's own order: weight before bias
