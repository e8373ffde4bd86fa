"""ckptlint.installed answers what importlib.metadata answers (the oracle), without importing it."""

from __future__ import annotations

import importlib.metadata as metadata
import re
import sys
from pathlib import Path

import pytest

from ckptlint import installed

from plugin_example.make_dist import install


def _oracle_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@pytest.mark.parametrize("name", ["torch", "Torch", "pluggy", "pytest", "typing_extensions", "typing-extensions",
                                  "no-such-distribution"])
def test_version_is_importlib_metadata_version(name: str) -> None:
    assert installed.version(name) == _oracle_version(name)


@pytest.mark.parametrize("group", ["ckptlint", "pytest11", "console_scripts", "no_such_group"])
def test_declared_entry_points_agree_with_importlib_metadata(group: str) -> None:
    assert installed.declares_entry_points(group) == bool(metadata.entry_points(group=group))


def test_a_plugin_distribution_on_the_path_is_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install(tmp_path)
    assert not installed.declares_entry_points("ckptlint")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert installed.declares_entry_points("ckptlint")
    assert bool(metadata.entry_points(group="ckptlint"))
    assert installed.version("ckptlint-example") == _oracle_version("ckptlint-example") == "0.1"


def test_what_the_plain_look_cannot_see_counts_as_maybe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    egg = tmp_path / "some.egg"
    egg.write_bytes(b"PK\x05\x06" + bytes(18))  # an (empty) zip on the path: importlib.metadata reads inside it
    monkeypatch.syspath_prepend(str(egg))
    assert installed.declares_entry_points("ckptlint")

    class Finder:
        """A meta-path finder that lists distributions of its own."""

        @staticmethod
        def find_distributions(*args: object, **kwargs: object) -> list[object]:
            return []

    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(egg)])
    assert not installed.declares_entry_points("ckptlint")
    monkeypatch.setattr(sys, "meta_path", [Finder(), *sys.meta_path])
    assert installed.declares_entry_points("ckptlint")
    assert installed.version("pluggy") == _oracle_version("pluggy")


@pytest.mark.parametrize("name", ["torch", "Torch", "typing_extensions", "typing-extensions", "a__b", "a._-b",
                                  "zope.interface", "A-B_C.D", "_private", "x_", "ÄB", ""])
def test_normalize_is_the_regex_one(name: str) -> None:
    assert installed._normalize(name) == re.sub(r"[-_.]+", "_", name).lower()


@pytest.mark.parametrize("text", [b"[ckptlint]\nx = y\n", b"[ ckptlint ]\r\nx = y\r\n", b"\xff\xfe[ckptlint]\n",
                                  b"[console_scripts]\nckptlint = a:b\n", b"# [ckptlint]\n", b"[ckptlint.x]\n",
                                  b"\t[ckptlint]\t\n", b"[ckptlint]", b"[ckptl\xc3int]\n", b""])
def test_a_section_is_found_as_in_the_decoded_lines(tmp_path: Path, text: bytes) -> None:
    path = tmp_path / "entry_points.txt"
    path.write_bytes(text)
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    expected = any(s.startswith("[") and s.endswith("]") and s.strip("[]").strip() == "ckptlint"
                   for s in map(str.strip, lines))
    assert installed._has_section(str(path), "ckptlint") == expected
