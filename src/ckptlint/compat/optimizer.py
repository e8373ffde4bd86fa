"""An optimizer's state_dict is not a model's: say so instead of comparing its largest dict."""

from __future__ import annotations

from typing import Any


def optimizer_state(root: Any) -> str | None:
    """Why ``root`` is an optimizer's state_dict (``{"state": {id: ...}, "param_groups": [...]}``), not a
    model's: accelerate's ``optimizer.bin``, a ``torch.save(opt.state_dict())``."""
    if not isinstance(root, dict) or "__object__" in root or set(root) - {"state", "param_groups"}:
        return None
    groups = root.get("param_groups")
    if not isinstance(groups, list) or not all(isinstance(g, dict) and "params" in g for g in groups):
        return None
    return ("this is an optimizer state_dict (its 'state' and 'param_groups', e.g. accelerate's optimizer.bin): "
            "it holds no model weights; check the model's file (model.safetensors, pytorch_model.bin) instead")
