"""The closed vocabularies in ckptlint.vocab match what the readers produce and what the JSON schema promises."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import ckptlint
from ckptlint import vocab

SRC = Path(ckptlint.__file__).parent


def _format_strings() -> set[str]:
    """Every string the readers hand out as a format: ``format=`` keywords, CheckpointError's third
    argument, ``fmt``/``kind`` assignments, the sniffer's returns and NOT_CHECKPOINT_REASONS keys."""
    found: set[str] = set()

    def consts(node: ast.AST) -> set[str]:
        return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}

    for path in sorted((SRC / "formats").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                found |= {s for kw in node.keywords if kw.arg == "format" for s in consts(kw.value)}
                if name == "CheckpointError" and len(node.args) >= 3:
                    found |= consts(node.args[2])
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in ("fmt", "kind")
                                                      for t in node.targets):
                found |= consts(node.value)
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "NOT_CHECKPOINT_REASONS"
                                                      for t in node.targets):
                assert isinstance(node.value, ast.Dict)
                found |= {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
            elif isinstance(node, ast.FunctionDef) and node.name in ("sniff", "classify_text"):
                found |= {s for r in ast.walk(node) if isinstance(r, ast.Return) and r.value is not None
                          for s in consts(r.value)}
    return found


def test_every_format_string_the_readers_produce_is_a_format_kind() -> None:
    produced = _format_strings()
    assert {"torch-zip", "safetensors", "empty"} <= produced  # the scan sees the readers at all
    assert produced - set(vocab.FORMAT_KINDS) == set()


def test_every_readable_format_is_produced_by_a_reader() -> None:
    assert set(vocab.READABLE_FORMATS) - _format_strings() == set()


def test_json_schema_enums_are_the_vocabularies() -> None:
    schema = json.loads((SRC / "schemas" / "report.schema.json").read_text(encoding="utf-8"))
    defs = schema["$defs"]
    assert tuple(defs["severity"]["enum"]) == vocab.SEVERITIES
    assert tuple(defs["global"]["properties"]["category"]["enum"]) == vocab.CATEGORIES
    assert tuple(defs["blocker"]["properties"]["kind"]["enum"]) == vocab.BLOCKER_KINDS


def test_severity_rank_orders_worst_first() -> None:
    ranks = [vocab.severity_rank(s) for s in vocab.SEVERITIES]
    assert ranks == sorted(ranks, reverse=True) and len(set(ranks)) == len(ranks)
    assert vocab.severity_rank("bogus") == 0
