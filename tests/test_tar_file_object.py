"""A legacy torch file whose first 512 bytes are also a tar header: ``torch.load(path)`` takes the tar
path (and fails), ``torch.load`` of a file object without ``fileno`` (``io.BytesIO``) never tries
tarfile and runs the legacy file's pickles. Found by the fuzzer (seed 6 index 32): ckptlint called the
file "a tar archive with no checkpoint, not a checkpoint" and the hook skipped it."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import tarcraft as tc
from ckptlint.formats import read_inventory
from fuzz.gen_legacy import ustar_sys_info

from conftest import CliRunner

PAYLOAD = b"cos\nsystem\n(S'echo owned'\ntR"


def polyglot(body: bytes = PAYLOAD) -> bytes:
    prefix = tc.p2(tc.pint(tc.MAGIC)) + tc.p2(tc.pint(1001))
    return tc.legacy_file(body, sys_info=ustar_sys_info(prefix, valid_checksum=True))


def test_the_file_is_a_tar_to_tarfile() -> None:
    with tarfile.open(fileobj=io.BytesIO(polyglot()), mode="r:") as tar:  # what torch.load(path) tries first
        assert len(tar.getmembers()) == 1


def test_the_file_object_reading_is_reported(tmp_path: Path) -> None:
    p = tmp_path / "poly.pt"
    p.write_bytes(polyglot())
    inv = read_inventory(p)
    system = [g for g in inv.globals if g.qualname == "os.system"]
    assert system, inv.globals
    assert system[0].stream in inv.facts.extra["file_object_streams"]
    assert system[0].stream not in inv.facts.loaded_streams  # torch.load(path) reads the tar
    assert any("torch.load of a file object" in a for a in inv.anomalies)


def test_the_hook_does_not_skip_it(tmp_path: Path, cli: CliRunner) -> None:
    p = tmp_path / "poly.pt"
    p.write_bytes(polyglot())
    res = cli("check", "--skip-non-checkpoints", "--format", "concise", p)
    assert res.returncode == 1, res
    assert "CK101" in res.stdout and "os.system" in res.stdout and "io.BytesIO" in res.stdout
    assert "skipped" not in res.stderr
