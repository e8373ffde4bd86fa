"""Which storage location tags ``torch.load`` restores without ``map_location``.

Every torch reader hands each new storage to ``restore_location(storage, location)``;
without ``map_location`` that is ``default_restore_location``, which asks the
deserializers ``torch.serialization`` registers, in priority order, and raises
``RuntimeError: don't know how to restore data location ...`` when none takes the
tag. Tags a registered backend takes (``cuda:0``, ``mps``, ``xpu1`` …) depend on the
machine's devices and are assumed present (CK301 reports them); any other tag fails
on every machine. With ``map_location`` the tag is never looked at, so the readers
keep reading past such a storage (a payload after it runs under
``torch.load(f, map_location="cpu")``); only the verdict, which is about
``torch.load(f, weights_only=True)``, counts it. Verified on torch 2.14.1.
"""

from __future__ import annotations

import re

from ..inventory import Inventory
from ..results import Blocker

EXACT = ("cpu", "meta")
"""``_cpu_deserialize`` / ``_meta_deserialize``: ``location == "cpu"`` / ``"meta"``."""
PREFIX = "mps"
"""``_mps_deserialize``: ``location.startswith("mps")``."""
BACKENDS = ("cuda", "privateuseone", "hpu", "xpu", "mtia")
"""``_deserialize(backend, ...)``: the name itself or ``re.match(f"{backend}(:|[0-9]+)", location)``
(``privateuseone`` is ``torch._C._get_privateuse1_backend_name()`` until a backend renames it)."""


def restorable(location: str) -> bool:
    """Whether one of torch's registered deserializers takes this tag (on a machine with that device)."""
    if location in EXACT or location.startswith(PREFIX):
        return True
    return any(location == b or re.match(f"{b}(:|[0-9]+)", location) for b in BACKENDS)


def location_blockers(inv: Inventory) -> list[Blocker]:
    """The first storage of a zip or legacy file whose tag no deserializer takes: torch raises there.

    The reader's ``device`` is the tag as torch compares it (bytes decoded as ASCII); a tag that
    was not a string reads as its ``str()``, which no deserializer takes either (torch raises
    TypeError for those)."""
    if inv.format not in ("torch-zip", "torch-legacy"):
        return []
    # one test per distinct tag (files hold 100,000s of storages and a handful of tags)
    if all(d == "unknown" or restorable(d) for d in {s.device for s in inv.storages}):
        return []
    for s in inv.storages:
        if s.device != "unknown" and not restorable(s.device):
            return [Blocker("format", "don't know how to restore data location of torch.storage.UntypedStorage "
                                      f"(tagged with {s.device[:40]!r}): torch.load without map_location raises "
                                      "on every machine", s.key)]
    return []
