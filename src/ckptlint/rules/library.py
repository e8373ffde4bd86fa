"""CK212: what the library's own loader (transformers, peft, timm) does with the checkpoint."""

from __future__ import annotations

from ..findings import Finding
from ..plugin import FileContext, hookimpl
from ..rule import Rule

LIBRARY = Rule("CK212", "library-loader", "info",
               "what the library's own loader does: keys it maps, ties or ignores, its verdict, how to call it")


@hookimpl
def ckptlint_rules() -> list[Rule]:
    return [LIBRARY]


@hookimpl
def ckptlint_check_file(context: FileContext) -> list[Finding] | None:
    compat = context.compat
    lib = None if compat is None else compat.library
    if compat is None or lib is None:
        return None
    where = "/".join(map(str, compat.state_dict.path)) or None
    parts = [f"{lib.loader} {'loads it' if lib.loads else 'raises'}"]
    if lib.missing:
        parts.append(f"leaves {len(lib.missing)} key{'s' if len(lib.missing) != 1 else ''} initialised: "
                     + ", ".join(lib.missing[:5]) + (", …" if len(lib.missing) > 5 else ""))
    if lib.unexpected:
        parts.append(f"reports {len(lib.unexpected)} unexpected key{'s' if len(lib.unexpected) != 1 else ''} "
                     "(left unused): "
                     + ", ".join(lib.unexpected[:5]) + (", …" if len(lib.unexpected) > 5 else ""))
    parts += [*lib.ignored, *lib.notes]
    fix = "; ".join(line for line in lib.snippet.splitlines() if line.strip()) if lib.snippet else None
    return [LIBRARY.finding("; ".join(parts), location=where, fix=fix)]
