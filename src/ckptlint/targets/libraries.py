"""Resolver for transformers targets built from a config: ``transformers:CLASS`` with a ``config``.

``--model transformers:BertForSequenceClassification --model-kwargs '{"config": "path/config.json"}'``
(a config file or a ``save_pretrained`` folder; other kwargs override config fields, e.g. ``num_labels``).
The class is built from the config alone, on the meta device: no weights are read. Auto classes go
through ``from_config``. Such targets are never cached: the build read a config file, which the
source-file cache does not track.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import TargetError
from ..plugin import hookimpl
from .signature import Signature, _skip_init, signature_of


@hookimpl(tryfirst=True)
def ckptlint_resolve_target(spec: str, kwargs: dict[str, Any]) -> tuple[Signature, Any] | None:
    module, _, attr = spec.partition(":")
    if module.split(".")[0] != "transformers":
        return None
    if not isinstance(kwargs.get("config"), str):
        raise TargetError(f"transformers:{attr} is built from a config: --model-config PATH (a config.json "
                          "or save_pretrained folder; no weights are read)")
    model = build_from_config(attr, kwargs)
    return signature_of(model, f"transformers:{attr}", kwargs, "meta"), model


def build_from_config(attr: str, kwargs: dict[str, Any]) -> Any:
    """The transformers model class ``attr`` from the config file or folder in ``kwargs['config']``."""
    config_path = str(kwargs["config"])
    if not os.path.exists(config_path):
        raise TargetError(f"transformers config {config_path}: no such file or folder")
    try:
        import torch
        import transformers
    except ImportError as e:
        raise TargetError(f"transformers:{attr} needs transformers and torch installed ({e})") from None
    cls = getattr(transformers, attr, None)
    if cls is None or not isinstance(cls, type):
        raise TargetError(f"transformers:{attr}: transformers has no class {attr!r}")
    overrides = {k: v for k, v in kwargs.items() if k != "config"}
    try:
        config = transformers.AutoConfig.from_pretrained(config_path, **overrides)
    except Exception as e:  # noqa: BLE001 - transformers' own message says what is wrong with the config
        raise TargetError(f"transformers config {config_path}: {type(e).__name__}: {e}".splitlines()[0]) from None
    try:
        with torch.device("meta"), _skip_init(torch):
            if hasattr(cls, "from_config") and not hasattr(cls, "_from_config"):
                return cls.from_config(config)  # an Auto class
            return cls(config)
    except Exception as e:  # noqa: BLE001 - the class refused this config
        raise TargetError(f"transformers:{attr}: building it from {config_path} failed: "
                          f"{type(e).__name__}: {e}".splitlines()[0]) from None
