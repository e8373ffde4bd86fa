"""peft LoRA adapters: recognised by ``adapter_config.json`` beside the file or ``lora_A``/``lora_B`` keys.

An adapter file (``save_pretrained`` / ``get_peft_model_state_dict``) holds keys
``base_model.model.<module>.lora_A.weight`` without the adapter name. Against the **base model** it is not a
state_dict for ``load_state_dict`` (no generic fix: it would drop every adapter key): each target module
must exist with a ``weight`` whose shape fits ``lora_A [r, in]`` / ``lora_B [out, r]``. Against a
**PeftModel**, ``set_peft_model_state_dict`` inserts the adapter name (``lora_A.default.weight``, as
``_insert_adapter_name_into_state_dict`` does) and loads with ``strict=False``: the base weights are
expected to be missing. A **full** PeftModel state_dict into the base model maps ``base_layer.weight`` to
``weight`` and discards the adapter (named), which only ``merge_and_unload`` would keep.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any

from ...inventory import Inventory
from ...targets.signature import Signature
from ..compare import CompatResult
from ..fixes import Fix, apply_fix
from ..unwrap import NonTensor, StateDict
from .view import LibraryView, library_snippet, listing

LORA = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>A|B)(?:\.(?P<name>[^.]+))?\.weight$")
PREFIX = "base_model.model."


def adapter_config(path: str) -> dict[str, Any] | None:
    cfg = os.path.join(os.path.dirname(os.path.abspath(path)), "adapter_config.json")
    try:
        with open(cfg, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def view(inv: Inventory, sig: Signature, sd: StateDict, result: CompatResult, model: Any,
         run: Callable[[StateDict], CompatResult]) -> LibraryView | None:
    lora = {k: m for k in sd.entries if (m := LORA.match(k)) is not None}
    if not lora:
        return None
    expected = sig.expected()
    if any(".lora_A." in k for k in expected):
        return _against_peft_model(inv.path, sig, sd, lora, run)
    if any(".base_layer." in k for k in sd.entries):
        return _full_into_base(inv, sig, sd, run)
    return _adapter_against_base(inv, sig, sd, lora, result)


def _adapter_against_base(inv: Inventory, sig: Signature, sd: StateDict,
                          lora: dict[str, re.Match[str]], result: CompatResult) -> LibraryView:
    config = adapter_config(inv.path) or {}
    rank = config.get("r")
    expected = sig.expected()
    problems: list[str] = []
    modules: dict[str, dict[str, tuple[int, ...]]] = {}
    for key, m in lora.items():
        value = sd.entries[key]
        if isinstance(value, NonTensor):
            problems.append(f"{key} is not a tensor")
            continue
        modules.setdefault(m["module"].removeprefix(PREFIX), {})[m["ab"]] = tuple(value.shape)
    for module, ab in sorted(modules.items()):
        weight = expected.get(module + ".weight")
        if weight is None:
            problems.append(f"target module {module} does not exist in {sig.target}")
            continue
        shape = weight.shape
        out_f, in_f = (shape[0], shape[1]) if len(shape) == 2 else (shape[0], None)
        a, b = ab.get("A"), ab.get("B")
        if a is None or b is None:
            problems.append(f"{module}: lora_{'A' if a is None else 'B'} is missing")
            continue
        if a[0] != b[1] or (rank is not None and a[0] != rank):
            problems.append(f"{module}: rank {a[0]} (lora_A) / {b[1]} (lora_B)"
                            + (f" vs r={rank} in adapter_config.json" if rank is not None else ""))
        if in_f is not None and (len(a) < 2 or a[1] != in_f):
            problems.append(f"{module}: lora_A {list(a)} does not fit the layer's input {in_f} (weight {list(shape)})")
        if b[0] != out_f:
            problems.append(f"{module}: lora_B {list(b)} does not fit the layer's output {out_f} "
                            f"(weight {list(shape)})")
    wanted = config.get("target_modules")
    if isinstance(wanted, list):
        names = {m.rsplit(".", 1)[-1] for m in modules}
        absent = sorted(t for t in wanted if isinstance(t, str) and t not in names)
        if absent:
            problems.append(f"adapter_config.json targets {', '.join(absent)}, which have no adapter weights here")
    r = rank if rank is not None else next((ab["A"][0] for ab in modules.values() if "A" in ab), "?")
    notes = [(f"a LoRA adapter (rank {r}, {len(modules)} module{'s' if len(modules) != 1 else ''}) for "
              f"{sig.target}: not a state_dict for load_state_dict; attach it with peft")]
    notes += problems
    folder = os.path.dirname(inv.path) or "."
    snippet = "\n".join(["from peft import PeftModel", *_base_lines(sig),
                          f"model = PeftModel.from_pretrained(model, {folder!r})", ""])
    return LibraryView("peft", "PeftModel.from_pretrained", not problems, notes=notes, snippet=snippet,
                       no_generic_fix=True, explained_unexpected=tuple(lora) if not problems else (),
                       explained_missing=tuple(result.missing) if not problems else ())


def _base_lines(sig: Signature) -> list[str]:
    """Build the base model: ``from_pretrained`` on a transformers config folder that holds weights."""
    from .transformers_view import STANDARD_NAMES

    module, _, attr = sig.target.partition(":")
    config = sig.kwargs.get("config")
    if module == "transformers" and isinstance(config, str):
        folder = config if os.path.isdir(config) else os.path.dirname(config) or "."
        overrides = "".join(f", {k}={v!r}" for k, v in sig.kwargs.items() if k != "config")
        if any(os.path.isfile(os.path.join(folder, n)) for n in STANDARD_NAMES):
            return ["import transformers", "", f"model = transformers.{attr}.from_pretrained({folder!r}{overrides})"]
        method = "from_config" if attr.startswith("Auto") else "_from_config"
        return ["import transformers", "",
                f"model = transformers.{attr}.{method}(transformers.AutoConfig.from_pretrained({config!r}{overrides}))",
                "# (load the base model's own weights here)"]
    call = f"{attr}(**{sig.kwargs!r})" if sig.kwargs else f"{attr}()"
    return [f"from {module} import {attr.split('.')[0]}", "", f"model = {call}",
            "# (load the base model's own weights here)"]


def _insert_name(key: str, adapter: str = "default") -> str:
    """peft's ``_insert_adapter_name_into_state_dict`` for LoRA (parameter prefix ``lora_``)."""
    if "lora_" not in key:
        return key
    _, _, suffix = key.rpartition("lora_")
    if "." in suffix:
        tail = ".".join(suffix.split(".")[1:])
        return re.sub(re.escape(tail) + r"$", f"{adapter}.{tail}", key)
    return f"{key}.{adapter}"


def _peft_model_lines(sig: Signature) -> list[str]:
    """Build the PeftModel of a ``peft:PeftModel`` target; otherwise ``model`` is the user's PeftModel."""
    base, adapter = sig.kwargs.get("base"), sig.kwargs.get("adapter")
    if sig.target != "peft:PeftModel" or not isinstance(base, str) or not isinstance(adapter, str):
        return ["# model: your PeftModel (with this adapter's LoRA layers)"]
    rest = {k: v for k, v in sig.kwargs.items() if k not in ("base", "adapter")}
    return [*_base_lines(Signature(base, rest, ())), "import peft",
            f"model = peft.get_peft_model(model, peft.PeftConfig.from_pretrained({adapter!r}))"]


def _against_peft_model(path: str, sig: Signature, sd: StateDict, lora: dict[str, re.Match[str]],
                        run: Callable[[StateDict], CompatResult]) -> LibraryView:
    named = StateDict(sd.path, {_insert_name(k): v for k, v in sd.entries.items()}, None, sd.how,
                      sd.ordered)
    res = run(named)
    adapter_missing = [k for k in res.missing if ".lora_" in k]
    notes = [("set_peft_model_state_dict inserts the adapter name ('default'): "
              f"{next(iter(lora))} -> {_insert_name(next(iter(lora)))}; it loads with strict=False, "
              "so the base model's weights (not in an adapter file) stay as they are")]
    if adapter_missing:
        notes.append(f"adapter weights the PeftModel has but the file lacks: {listing(adapter_missing, 4)}")
    renamed = {k for k in sd.entries if _insert_name(k) != k and _insert_name(k) not in res.unexpected}
    snippet = "\n".join([
        "import torch", "from peft import set_peft_model_state_dict", "", *_peft_model_lines(sig),
        f"state_dict = {_reader(path, sd)}",
        "result = set_peft_model_state_dict(model, state_dict)", ""])
    return LibraryView("peft", "set_peft_model_state_dict", res.nonstrict_ok, tuple(adapter_missing),
                       res.unexpected, dict(res.shape_mismatch), (), notes, snippet, no_generic_fix=False,
                       explained_missing=tuple(k for k in res.missing if ".lora_" not in k) + tuple(
                           _insert_name(k) for k in renamed),
                       explained_unexpected=tuple(renamed))


def _reader(path: str, sd: StateDict) -> str:
    if path.endswith(".safetensors"):
        return f"__import__('safetensors.torch').torch.load_file({path!r})"
    access = "".join(f"[{p!r}]" for p in sd.path)
    return f"torch.load({path!r}, map_location='cpu', weights_only=True){access}"


def _full_into_base(inv: Inventory, sig: Signature, sd: StateDict,
                    run: Callable[[StateDict], CompatResult]) -> LibraryView:
    renames = [(f"^{re.escape(PREFIX)}", ""), (r"\.base_layer\.", ".")]
    adapter = sorted(k for k in sd.entries if ".lora_" in k)
    drop = sorted(re.sub(r"\.base_layer\.", ".", k.removeprefix(PREFIX)) for k in adapter)
    res = run(apply_fix(sd, renames, drop))
    notes = [(f"a full PeftModel state_dict: 'base_layer' weights map onto the base model's (rename "
              f"s/^base_model.model.// and s/.base_layer././); the adapter ({len(adapter)} tensors: "
              f"{listing(adapter, 3)}) is discarded: its effect is lost unless merged first "
              "(PeftModel.merge_and_unload() before saving)")]
    fix = None
    if res.nonstrict_ok:
        fix = Fix(renames=renames, drop=drop, random_init=sorted(res.missing), strict=res.strict_ok,
                  diagnosis=[*notes, f"discarded from the checkpoint ({len(adapter)}): {listing(adapter)}"])
        fix.snippet = library_snippet(inv.path, sig, sd, fix)
    return LibraryView("peft", "load_state_dict after peft's base_layer rename", res.nonstrict_ok, res.missing,
                       res.unexpected, dict(res.shape_mismatch), (), notes, no_generic_fix=True, fix=fix,
                       explained_unexpected=tuple(sd.entries))
