"""``python -m tests.fuzz run -n 100000 --seed 1 -j 2 --out benchmarks/fuzz/run.json`` (see docs/fuzzing.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .report import print_summary, write_disagreements


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run N generated inputs and summarise")
    r.add_argument("-n", type=int, default=1000, help="number of inputs")
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--start", type=int, default=0, help="first input index")
    r.add_argument("-j", "--jobs", type=int, default=2, help="worker processes")
    r.add_argument("--families", nargs="*", help="zip pickle legacy tar (default: all)")
    r.add_argument("--exclude", nargs="*", default=[], help="generator features to leave out (docs/fuzzing.md)")
    r.add_argument("--timeout", type=float, default=60.0, help="seconds per input before the worker is killed")
    r.add_argument("--shrink", type=int, default=0, metavar="STEPS", help="shrink each class's smallest input")
    r.add_argument("--out", type=Path, help="write the summary JSON here")
    r.add_argument("--disagreements", type=Path, help="write the per-family disagreement report (markdown) here")
    s = sub.add_parser("show", help="both readings of one input, and the input as a bytes literal")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--index", type=int)
    s.add_argument("--file", type=Path, help="an input file instead of a generated one")
    s.add_argument("--family", default="bytes")
    s.add_argument("--exclude", nargs="*", default=[])
    s.add_argument("--families", nargs="*", help="as given to the run that produced the index")
    rec = sub.add_parser("record", help="write a run's summary into docs/fuzzing.md and benchmarks/fuzz/")
    rec.add_argument("summary", type=Path)
    rec.add_argument("--json-out", type=Path, default=Path("benchmarks/fuzz/run-100k.json"))
    rec.add_argument("--docs", type=Path, default=Path("docs/fuzzing.md"))
    args = ap.parse_args(argv)
    if args.cmd == "record":
        from .report import record

        record(json.loads(args.summary.read_text()), args.json_out, args.docs)
        return 0
    if args.cmd == "run":
        from .run import run

        summary = run(args.n, args.seed, args.jobs, args.families, args.start, args.timeout, args.shrink,
                      progress=True, exclude=args.exclude)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(summary, indent=1) + "\n")
        if args.disagreements:
            write_disagreements(summary, args.disagreements)
        print_summary(summary)
        return 1 if summary["disagreements"] or summary["crashes"] or summary["worker_failures"] else 0
    from .pool import Pool

    pool = Pool(1, 120.0)
    try:
        if args.file:
            req = {"data": args.file.read_bytes().hex(), "family": args.family, "full": True}
        else:
            req = {"seed": args.seed, "index": args.index, "full": True, "exclude": args.exclude,
                   "families": args.families}
        reply = pool.one(req)
    finally:
        pool.close()
    data = bytes.fromhex(reply.pop("input", ""))
    json.dump(reply, sys.stdout, indent=1)
    print(f"\ninput ({len(data)} bytes): {data!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
