"""The target cache keys on the files a build read: a factory that reads a config file rebuilds when the
config changes (before, only imported Python files were stamped, so the old config kept answering)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


@pytest.mark.integration  # builds a torch module in this process
def test_a_changed_config_file_rebuilds_the_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ckptlint.targets import resolve
    from ckptlint.targets.plugin import ckptlint_resolve_target

    monkeypatch.setenv("CKPTLINT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CKPTLINT_NO_CACHE", raising=False)
    pkg = tmp_path / "src"
    pkg.mkdir()
    (pkg / "h10_cfg_factory.py").write_text(
        "import json\nimport torch\n\n\ndef build(config):\n"
        "    with open(config) as f:\n        n = json.load(f)['n']\n    return torch.nn.Linear(n, 2)\n")
    monkeypatch.syspath_prepend(str(pkg))
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"n": 4}))
    spec, kwargs = "h10_cfg_factory:build", {"config": str(cfg)}

    def build() -> tuple[Any, Any]:
        got = ckptlint_resolve_target(spec=spec, kwargs=kwargs)
        assert got is not None
        return got

    sig, model = build()
    assert model is not None and sig.expected()["weight"].shape == (2, 4)
    sig, model = build()
    assert model is None and sig.expected()["weight"].shape == (2, 4)  # from the cache: no build

    cfg.write_text(json.dumps({"n": 6}))  # same path, same kwargs, new content
    monkeypatch.setattr(resolve, "_CACHE", {})  # a new process (the in-process memo is per process)
    sig, model = build()
    assert model is not None and sig.expected()["weight"].shape == (2, 6)


def test_reads_records_files_not_sources(tmp_path: Path) -> None:
    from ckptlint.targets.reads import data_files, recording

    data = tmp_path / "a.json"
    data.write_text("{}")
    (tmp_path / "m.py").write_text("")
    with recording() as seen:
        data.read_text()
        (tmp_path / "m.py").read_text()
    with open(tmp_path / "a.json", encoding="utf-8"):
        pass  # outside the recording: not seen twice, not seen at all
    assert data_files(seen) == [str(data)]
