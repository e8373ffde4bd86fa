"""Historical renames torch and torchvision made to state_dict keys, as (regex, replacement) rules.

Each family is tried on the keys that do not load yet; a rule is kept only for keys whose new
name is a model key the checkpoint lacks, with the same shape (``rename_history``), so a rule
never moves a key that already loads.
"""

from __future__ import annotations

import re
from typing import Any

FAMILIES: tuple[tuple[str, str, str], ...] = (
    # old LayerNorm/BatchNorm names (TF ports, BERT before transformers 2.x)
    (r"(^|\.)gamma$", r"\1weight", "LayerNorm 'gamma' is 'weight' now"),
    (r"(^|\.)beta$", r"\1bias", "LayerNorm 'beta' is 'bias' now"),
    (r"(^|\.)weight$", r"\1gamma", "the model still calls LayerNorm's weight 'gamma'"),
    (r"(^|\.)bias$", r"\1beta", "the model still calls LayerNorm's bias 'beta'"),
    # torch.nn.utils.weight_norm -> parametrizations.weight_norm, and back
    (r"(^|\.)(\w+)_g$", r"\1parametrizations.\2.original0", "old weight_norm '_g' is parametrizations' original0"),
    (r"(^|\.)(\w+)_v$", r"\1parametrizations.\2.original1", "old weight_norm '_v' is parametrizations' original1"),
    (r"(^|\.)parametrizations\.(\w+)\.original0$", r"\1\2_g", "parametrizations' original0 is old weight_norm '_g'"),
    (r"(^|\.)parametrizations\.(\w+)\.original1$", r"\1\2_v", "parametrizations' original1 is old weight_norm '_v'"),
    # torch.nn.utils.spectral_norm -> parametrizations.spectral_norm, and back
    (r"(^|\.)(\w+)_orig$", r"\1parametrizations.\2.original", "old spectral_norm '_orig' is 'original' now"),
    (r"(^|\.)(\w+)_u$", r"\1parametrizations.\2.0._u", "old spectral_norm '_u' is parametrizations' 0._u"),
    (r"(^|\.)(\w+)_v$", r"\1parametrizations.\2.0._v", "old spectral_norm '_v' is parametrizations' 0._v"),
    (r"(^|\.)parametrizations\.(\w+)\.original$", r"\1\2_orig", "'original' is old spectral_norm '_orig'"),
    (r"(^|\.)parametrizations\.(\w+)\.0\._u$", r"\1\2_u", "parametrizations' 0._u is old spectral_norm '_u'"),
    (r"(^|\.)parametrizations\.(\w+)\.0\._v$", r"\1\2_v", "parametrizations' 0._v is old spectral_norm '_v'"),
    # torchvision densenet before 0.3 (its own loader applies the same pattern)
    (r"(^|\.)(norm|relu|conv)\.([12])\.(weight|bias|running_mean|running_var)$", r"\1\2\3.\4",
     "densenet's legacy 'norm.1' names are 'norm1' now"),
)


def rename_history(keys: dict[str, Any], expected: dict[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    """Rules for historical renames that make unmatched keys land on missing model keys with the same
    shape; ``keys`` maps the (already prefix-renamed) checkpoint key to its shape or None."""
    current = dict(keys)
    rules: list[tuple[str, str]] = []
    said: list[str] = []
    for pattern, repl, why in FAMILIES:
        rx = re.compile(pattern)
        good: list[tuple[str, str]] = []
        bad = 0
        taken: set[str] = set()
        for key, shape in current.items():
            if not rx.search(key):
                continue
            new = rx.sub(repl, key)
            want = expected.get(new)
            loads_now = key in expected and shape is not None and tuple(expected[key].shape) == tuple(shape)
            if (want is not None and new not in current and new not in taken and not loads_now
                    and shape is not None and tuple(want.shape) == tuple(shape)):
                good.append((key, new))
                taken.add(new)
            else:
                bad += 1
        if not good:
            continue
        if bad == 0:
            rules.append((pattern, repl))
        else:  # only these keys: the family's other matches already load or have no place
            rules += [(f"^{re.escape(old)}$", new) for old, new in good]
        said.append(f"{why}: {len(good)} key{'s' if len(good) != 1 else ''} (e.g. {good[0][0]} -> {good[0][1]})")
        moved = dict(good)
        current = {moved.get(k, k): v for k, v in current.items()}
    return rules, said
