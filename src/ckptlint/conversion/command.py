"""The ``ckptlint convert`` subcommand: its arguments and the lines it prints (the work is in ``api``).

Importing this module imports nothing but argparse: ``cli.build_parser`` declares every subcommand on
every run, and a conversion's modules load only when ``convert`` runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .result import ConvertResult

LIST_LIMIT = 12


def add_convert(sub: Any) -> None:
    p = sub.add_parser(
        "convert",
        help="write a checkpoint's state_dict as safetensors, without loading it",
        description="Convert any checkpoint ckptlint reads (torch zip, legacy, tar, TorchScript, raw pickles, "
                    "shards, safetensors) to safetensors: the state_dict as `check` finds it (a training "
                    "dictionary's model, a pickled module's state_dict()), each tensor's bytes copied exactly. "
                    "Nothing in the file is executed or imported; torch is not needed (only a live --model "
                    "target builds the model). See docs/convert.md.",
    )
    p.add_argument("src", metavar="SRC", help="the checkpoint to convert (a *.index.json converts the whole set)")
    p.add_argument("dest", metavar="DEST", help="the safetensors file to write, NAME.safetensors (with "
                   "--max-shard-size: shards NAME-00001-of-0000N.safetensors and NAME.safetensors.index.json)")
    p.add_argument("--key", metavar="PATH",
                   help="where the state_dict sits in the checkpoint, e.g. state_dict or ema/model "
                        "(default: found automatically, as check does)")
    p.add_argument("--overwrite", action="store_true", help="replace DEST (and its shards) if they exist")
    p.add_argument("--force", action="store_true",
                   help="convert a file that references dangerous globals, or a pickled module with state_dict "
                        "hooks (refused otherwise; nothing in the file runs either way)")
    p.add_argument("--skip-unsupported", action="store_true",
                   help="leave out tensors safetensors cannot hold (complex128, quantized, sparse …) and list "
                        "them, instead of failing")
    p.add_argument("--drop-tied", action="store_true",
                   help="write tied keys (one tensor under two names) once, as safetensors.torch.save_model "
                        "does; default: every key gets its copy, so load_state_dict(strict=True) works")
    p.add_argument("--max-shard-size", metavar="SIZE",
                   help="split into shards of at most SIZE (bytes or 500MB, 5GB …) with an index, as "
                        "transformers' save_pretrained does")
    p.add_argument("--model", metavar="SPEC",
                   help="target model (package.module:callable, e.g. torchvision.models:resnet18): report "
                        "whether the output loads; with --apply-fix, write the keys it expects")
    p.add_argument("--model-kwargs", metavar="JSON", help="keyword arguments for the target")
    p.add_argument("--model-config", metavar="PATH",
                   help="a transformers config.json or save_pretrained folder for a transformers:CLASS target")
    p.add_argument("--snapshot", metavar="FILE", help="target snapshot from `ckptlint snapshot` (no torch needed)")
    p.add_argument("--apply-fix", action="store_true",
                   help="rename and drop keys as check's verified fix says, so load_state_dict works on the "
                        "result (needs --model or --snapshot)")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="what to print about the conversion (default: text)")
    p.set_defaults(func=cmd_convert)


def cmd_convert(args: argparse.Namespace) -> int:
    from ..cli_support import input_files, output_dir_exists, target_kwargs
    from ..errors import UsageError
    from .api import convert

    kwargs = target_kwargs(args.model, args.model_kwargs, args.model_config)
    if args.apply_fix and not (args.model or args.snapshot):
        raise UsageError("--apply-fix needs a target: --model SPEC or --snapshot FILE")
    input_files(("--snapshot", args.snapshot), ("--model-config", args.model_config))
    output_dir_exists(args.dest)
    result = convert(args.src, args.dest, key=args.key, model=args.model, model_kwargs=kwargs,
                     snapshot=args.snapshot, apply_fix=args.apply_fix, force=args.force,
                     skip_unsupported=args.skip_unsupported, drop_tied=args.drop_tied,
                     max_shard_size=args.max_shard_size, overwrite=args.overwrite)
    text = render_json(result) if args.format == "json" else render_text(result)
    sys.stdout.write(text + "\n")
    return 0


def _listing(items: list[str]) -> str:
    more = f", …and {len(items) - LIST_LIMIT} more" if len(items) > LIST_LIMIT else ""
    return ", ".join(items[:LIST_LIMIT]) + more


def render_text(r: ConvertResult) -> str:
    from ..cli_support import printable

    files = r.files[0] if len(r.files) == 1 else f"{len(r.files)} shards + {r.index}"
    n = len(r.tensors)
    lines = [(f"{printable(r.source)} -> {printable(files)}: {n} tensor{'' if n == 1 else 's'}, "
              f"{r.nbytes:,} bytes ({printable(_found(r))})")]
    if r.dangerous:
        lines.append(f"  forced: the source references dangerous globals ({', '.join(r.dangerous)}); "
                     "none of them ran")
    if r.hooks_not_run:
        lines.append(f"  forced: state_dict hooks not run ({len(r.hooks_not_run)}): "
                     + printable(_listing([f"{m or '(the model)'}: {h}" for m, h in r.hooks_not_run])))
    if r.stringified:
        lines.append(f"  keys that were not strings, written as str(key) ({len(r.stringified)}): "
                     + printable(_listing(list(r.stringified))))
    if r.left_out:
        lines.append(f"  left out, not tensors ({len(r.left_out)}): "
                     + printable(_listing([f"{k} ({what})" for k, what in r.left_out])))
    if r.unsupported:
        lines.append(f"  skipped, safetensors cannot hold them ({len(r.unsupported)}): "
                     + printable(_listing([f"{k} ({why})" for k, why in r.unsupported])))
    if r.tied:
        how = "written once, recorded in __metadata__" if r.tied_dropped else "each written, recorded in __metadata__"
        lines.append(f"  tied keys ({how}): " + printable(_listing([f"{a} = {b}" for a, b in r.tied.items()])))
    if r.mapping:
        lines.append(f"  renamed by the fix ({len(r.mapping)}): "
                     + printable(_listing([f"{old} -> {new}" for new, old in r.mapping.items()])))
    if r.dropped:
        lines.append(f"  dropped by the fix ({len(r.dropped)}): " + printable(_listing(list(r.dropped))))
    if r.transposed:
        lines.append(f"  written transposed, as the target expects ({len(r.transposed)}): "
                     + printable(_listing(list(r.transposed))))
    if r.target is not None:
        refusal = next((d for d in r.diagnosis if d.startswith("refuses it")), None)
        if r.strict:
            lines.append(f"  loads into {r.target} with load_state_dict(strict=True)")
        elif refusal is not None:  # no fix applied
            lines.append(printable(f"  {r.target} {refusal}"))
        else:
            stay = f": {len(r.random_init)} key(s) stay initialised: " + _listing(list(r.random_init)) \
                if r.random_init else ""
            lines.append(printable(f"  loads into {r.target} only with load_state_dict(strict=False){stay}"))
        lines.extend(printable(f"  {d}") for d in r.diagnosis if "(--drop-tied)" in d)
    return "\n".join(lines)


def _found(r: ConvertResult) -> str:
    """Where the written state_dict came from, in words."""
    where = "/".join(map(str, r.state_dict_path))
    at = f" at {where}" if where else ""
    if r.state_dict_found_by == "top-level":
        return "the file is the state_dict"
    if r.state_dict_found_by == "module object":
        return f"state_dict() of the pickled module{at}"
    if r.state_dict_found_by == "torchscript module":
        return "state_dict() of the TorchScript module"
    return f"state_dict at {where or 'the top level'}, {r.state_dict_found_by}"


def render_json(r: ConvertResult) -> str:
    from dataclasses import asdict

    return json.dumps(asdict(r), indent=1, default=list)
