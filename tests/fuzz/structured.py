"""Valid torch.save outputs of small random objects: the starting points mutations work from."""

from __future__ import annotations

import io
import random
from collections import OrderedDict
from typing import Any

DTYPES = ("float32", "float16", "bfloat16", "int64", "int8", "uint8", "bool", "float64", "complex64",
          "float8_e4m3fn")


def random_object(rng: random.Random, *, legacy: bool = False) -> Any:
    """A state_dict, a training dict or a nested container of small tensors.

    float8 tensors are saved with an untyped storage, which the legacy format cannot
    load back (``legacy:float8``)."""
    import torch

    from .features import on

    def tensor() -> Any:
        name = rng.choice(DTYPES)
        if legacy and name.startswith("float8") and not on("legacy:float8"):
            name = "float32"
        dtype = getattr(torch, name)
        shape = tuple(rng.randint(0, 3) for _ in range(rng.randint(0, 3)))
        t = torch.zeros(shape, dtype=dtype)
        if rng.random() < 0.2 and t.dim() >= 1 and t.shape[0] > 1:
            t = t[1:]
        if rng.random() < 0.1 and t.dim() == 2:
            t = t.t()
        if rng.random() < 0.15 and dtype.is_floating_point:
            t = torch.nn.Parameter(t, requires_grad=rng.random() < 0.5)
        return t

    sd: OrderedDict[str, Any] = OrderedDict()
    for i in range(rng.randint(0, 5)):
        sd[f"layer{i}.weight"] = tensor()
    if sd and rng.random() < 0.3:
        first = next(iter(sd.values()))
        sd["tied"] = first
    if rng.random() < 0.3:
        sd._metadata = OrderedDict({"": {"version": 1}})  # type: ignore[attr-defined]
    shape = rng.random()
    if shape < 0.6:
        return sd
    if shape < 0.85:
        return {"epoch": rng.randint(0, 9), "model": sd, "lr": 0.1, "name": "run", "steps": [1, 2],
                "opt": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0]}]}}
    return [sd, (1, 2.5, None, True), {"x": b"bytes", "y": {1, 2}}]


def save(rng: random.Random, obj: Any, *, legacy: bool = False) -> bytes:
    import torch

    buf = io.BytesIO()
    proto = rng.choice((0, 1, 2, 2, 2, 3, 4, 5)) if not legacy else rng.choice((2, 2, 2, 3, 4, 5))
    torch.save(obj, buf, pickle_protocol=proto, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


def zip_members(data: bytes) -> list[tuple[str, bytes]]:
    """The (name, bytes) of a torch.save archive this process just wrote, in file order."""
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]
