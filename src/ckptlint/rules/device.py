"""CK3xx: where tensors were saved, and what loading them elsewhere needs."""

from __future__ import annotations

from ..findings import Finding
from ..inventory import Inventory
from ..plugin import FileContext, hookimpl
from ..rule import Rule

SAVED_ON_ACCELERATOR = Rule("CK301", "saved-on-accelerator", "warning",
                            "tensors saved on CUDA/MPS/…: loading elsewhere needs map_location")
RULES = [SAVED_ON_ACCELERATOR]


@hookimpl
def ckptlint_rules() -> list[Rule]:
    return RULES


@hookimpl
def ckptlint_check_file(context: FileContext) -> list[Finding]:
    return device_findings(context.inventory)


_HOST = ("cpu", "meta")


def device_findings(inv: Inventory) -> list[Finding]:
    devices: dict[str, list[str]] = {}
    for t in inv.tensors:
        if t.device not in _HOST:
            devices.setdefault(t.device, []).append("/".join(map(str, t.path)))
    out = []
    for dev, keys in devices.items():
        kind = dev.split(":")[0]
        out.append(SAVED_ON_ACCELERATOR.finding(
            f"{len(keys)} tensors were saved on {dev}: torch.load restores them there, which fails on a "
            f"machine without {kind}",
            key=keys[0], fix=f"torch.load({inv.path!r}, map_location=\"cpu\", weights_only=True)"))
    return out
