"""One error boundary: every exception type lives in errors.py, and ``cli.main`` alone turns one
into its line and exit status 2."""

from __future__ import annotations

import ast
from pathlib import Path

import ckptlint
from ckptlint import errors

SRC = Path(ckptlint.__file__).parent
ERROR_NAMES = {n for n, v in vars(errors).items() if isinstance(v, type) and issubclass(v, errors.CkptlintError)}


def test_every_public_ckptlint_error_is_defined_in_errors_py() -> None:
    outside = set()
    for path in SRC.rglob("*.py"):
        if path.name == "errors.py" and path.parent == SRC:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                if bases & ERROR_NAMES:
                    outside.add(f"{path.relative_to(SRC)}:{node.name}")
    assert outside == set()


def test_errors_carry_their_fields() -> None:
    e = errors.PluginError("ckptlint_rules failed", plugin="acme")
    assert (str(e), e.plugin, e.detail) == ("plugin acme: ckptlint_rules failed", "acme", "ckptlint_rules failed")
    assert str(errors.PluginError("loading plugins failed")) == "loading plugins failed"
    c = errors.CheckpointError("a.pt", "empty file, not a checkpoint", "empty")
    assert (str(c), c.path, c.reason, c.format) == ("a.pt: empty file, not a checkpoint", "a.pt",
                                                    "empty file, not a checkpoint", "empty")
    assert errors.ConfigError("bad", path="pyproject.toml").path == "pyproject.toml"
    assert errors.TargetError("no", spec="x:y").spec == "x:y"


def _catchers(module: str) -> list[str]:
    tree = ast.parse((SRC / module).read_text(encoding="utf-8"))
    catchers = []
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef):
            for node in ast.walk(fn):
                if isinstance(node, ast.ExceptHandler) and node.type is not None:
                    names = {getattr(n, "id", getattr(n, "attr", "")) for n in ast.walk(node.type)}
                    if names & (ERROR_NAMES - {"CheckpointError"}):  # a per-file reading error is per file
                        catchers.append(fn.name)
    return catchers


def test_only_main_catches_ckptlint_errors() -> None:
    assert _catchers("cli.py") == ["main"]
    # read_one: a file inspect (or diff) cannot read is that file's line; inspect goes on with the next file
    assert _catchers("cli_inspect.py") == ["read_one"]


def test_usage_errors_are_one_line(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "x.pt"
    path.write_bytes(b"")
    cases = [
        (("check", path, "--format", "xml"), "ckptlint: unknown format 'xml' (available: "),
        (("check", path, "--model-kwargs", "{}"), "ckptlint: --model-kwargs and --model-config need --model"),
        (("rules", "CK999"), "ckptlint: no rule 'CK999' (see `ckptlint rules`)"),
        (("check", path, "-o", tmp_path / "missing" / "out.txt"),
         f"ckptlint: {tmp_path / 'missing' / 'out.txt'}: cannot write: "),
    ]
    for args, start in cases:
        r = cli(*args)
        assert r.returncode == 2, args
        lines = r.stderr.splitlines()
        assert lines[-1].startswith(start), (args, r.stderr)
        assert "Traceback" not in r.stderr
