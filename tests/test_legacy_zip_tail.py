"""A pickle followed by a zip local header at byte 512: torch.load's tar probe reads one 512-byte
block, fails, and ``_is_zipfile`` then sees ``PK\\x03\\x04`` at byte 512, so torch raises "is a zip
archive" before unpickling anything. pickle.load still runs the pickle at byte 0."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

import ckptlint
from _pickle_attack import reaches, system_call
from ckptlint.checker import check_file


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    return buf.getvalue()


def _file(tmp_path: Path, marker: Path, pad_to: int) -> Path:
    head = b"\x80\x02" + system_call(marker) + b"."
    p = tmp_path / f"tail{pad_to}.pt"
    p.write_bytes(head + b"\0" * (pad_to - len(head)) + _zip())
    return p


def test_zip_at_byte_512_makes_torch_refuse_before_unpickling(torch: ModuleType, tmp_path: Path) -> None:
    marker = tmp_path / "ran.marker"
    p = _file(tmp_path, marker, 512)
    with pytest.raises(RuntimeError, match="is a zip archive"):
        torch.load(p, weights_only=False)
    assert not marker.exists()  # torch ran nothing
    assert reaches(p, marker, loader="pickle")  # pickle.load runs the payload
    inv = ckptlint.inspect(p)
    assert inv.facts.loaded_streams == ()
    assert "zip archive" in inv.facts.extra["torch_refuses"]
    assert any(g.qualname in ("os.system", "posix.system") and g.stream == "pickle#0" for g in inv.globals)
    with pytest.raises(RuntimeError, match="is a zip archive"):
        torch.load(p, weights_only=True)
    fr = check_file(p)
    assert fr.verdict is not None and fr.verdict.loads is False


def test_zip_elsewhere_is_no_refusal(torch: ModuleType, tmp_path: Path) -> None:
    # Only byte 512 counts: a zip at byte 600 leaves torch's legacy reader running the pickle.
    marker = tmp_path / "ran.marker"
    p = _file(tmp_path, marker, 600)
    assert reaches(p, marker, loader="torch")
    inv = ckptlint.inspect(p)
    assert "pickle#0" in inv.facts.loaded_streams
    assert "torch_refuses" not in inv.facts.extra
