"""Resolver for transformers targets built from a config: ``transformers:CLASS`` with a ``config``.

``--model transformers:BertForSequenceClassification --model-kwargs '{"config": "path/config.json"}'``
(a config file or a ``save_pretrained`` folder; other kwargs override config fields, e.g. ``num_labels``).
The class is built from the config alone, on the meta device: no weights are read. Auto classes go
through ``from_config``. Such targets are never cached: the build read a config file, which the
source-file cache does not track.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..errors import TargetError
from ..plugin import hookimpl

if TYPE_CHECKING:  # loaded when a target is resolved, not by every check (startup)
    from .signature import Signature


@hookimpl(tryfirst=True)
def ckptlint_resolve_target(spec: str, kwargs: dict[str, Any]) -> tuple[Signature, Any] | None:
    from .signature import signature_of

    module, _, attr = spec.partition(":")
    if spec == "peft:PeftModel":
        model = build_peft_model(kwargs)
        return signature_of(model, spec, kwargs, "meta"), model
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
    from .signature import _skip_init

    try:
        with torch.device("meta"), _skip_init(torch):
            if hasattr(cls, "from_config") and not hasattr(cls, "_from_config"):
                return cls.from_config(config)  # an Auto class
            return cls(config)
    except Exception as e:  # noqa: BLE001 - the class refused this config
        raise TargetError(f"transformers:{attr}: building it from {config_path} failed: "
                          f"{type(e).__name__}: {e}".splitlines()[0]) from None


def build_peft_model(kwargs: dict[str, Any]) -> Any:
    """``peft:PeftModel`` with ``{"base": SPEC, "adapter": FOLDER, ...the base's kwargs}``: the base target
    (a transformers class takes ``config``) wrapped by ``get_peft_model`` with the adapter's own
    ``adapter_config.json``, on the meta device."""
    base_spec, adapter = kwargs.get("base"), kwargs.get("adapter")
    if not isinstance(base_spec, str) or not isinstance(adapter, str):
        raise TargetError('peft:PeftModel needs --model-kwargs \'{"base": "transformers:CLASS", "config": PATH, '
                          '"adapter": ADAPTER_FOLDER}\'')
    if not os.path.isfile(os.path.join(adapter, "adapter_config.json")):
        raise TargetError(f"peft adapter {adapter}: no adapter_config.json there")
    rest = {k: v for k, v in kwargs.items() if k not in ("base", "adapter")}
    try:
        import peft
        import torch
    except ImportError as e:
        raise TargetError(f"peft:PeftModel needs peft and torch installed ({e})") from None
    module, _, attr = base_spec.partition(":")
    if module.split(".")[0] == "transformers":
        if not isinstance(rest.get("config"), str):
            raise TargetError(f"{base_spec} is built from a config: add \"config\": PATH")
        base = build_from_config(attr, rest)
    else:
        from .signature import build_model
        from .spec import parse_spec

        base = build_model(parse_spec(base_spec, rest))[0]
    from .signature import _skip_init

    try:
        config = peft.PeftConfig.from_pretrained(adapter)
        with torch.device("meta"), _skip_init(torch):
            return peft.get_peft_model(base, config)
    except Exception as e:  # noqa: BLE001 - peft's own message says why the adapter does not fit the base
        raise TargetError(f"peft:PeftModel from {adapter}: {type(e).__name__}: {e}".splitlines()[0]) from None
