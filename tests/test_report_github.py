"""GitHub annotations (``--format github``) read back the way the Actions runner reads them.

The oracle is a line-by-line transcription of actions/runner's ``ActionCommand.TryParseV2`` and its
``UnescapeProperty``/``UnescapeData`` (src/Runner.Common/ActionCommand.cs): the command ends at the first
``::`` after the leading one, properties split at ``,`` then at the first ``=``, and the escapes are undone
in the runner's order (``%25`` last). A path, key or message that survives the round trip intact, one
annotation per finding, is what the runner shows; one that does not is a forged or mangled annotation.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest

import ckptlint
from ckptlint.plugin.manager import all_rules
from ckptlint.report.github import escape_data, escape_property, render_github

RUNNER_COMMANDS = {"error", "warning", "notice", "debug", "group", "endgroup", "stop-commands", "add-mask"}
PROPERTY_ESCAPES = (("\r", "%0D"), ("\n", "%0A"), (":", "%3A"), (",", "%2C"), ("%", "%25"))
DATA_ESCAPES = (("\r", "%0D"), ("\n", "%0A"), ("%", "%25"))


class Command(NamedTuple):
    name: str
    properties: dict[str, str]
    data: str


def _unescape(text: str, mappings: tuple[tuple[str, str], ...]) -> str:
    for token, replacement in mappings:
        text = text.replace(replacement, token)
    return text


def runner_parse(line: str) -> Command | None:
    """actions/runner ``ActionCommand.TryParseV2`` (C#), transcribed."""
    message = line.lstrip()
    if not message.startswith("::"):
        return None
    end = message.find("::", 2)
    if end < 0:
        return None
    info = message[2:end]
    space = info.find(" ")
    name = info if space < 0 else info[:space]
    if name not in RUNNER_COMMANDS:
        return None
    properties: dict[str, str] = {}
    if space > 0:
        for prop in (p for p in info[space + 1:].strip().split(",") if p):
            pair = [x for x in prop.split("=", 1) if x]
            if len(pair) == 2:
                properties[pair[0]] = _unescape(pair[1], PROPERTY_ESCAPES)
    return Command(name, properties, _unescape(message[end + 2:], DATA_ESCAPES))


def _pickle_with_key(key: str) -> bytes:
    kb = key.encode()
    return b"\x80\x02}X" + len(kb).to_bytes(4, "little") + kb + b"cposix\nsystem\nX\x01\x00\x00\x00x\x85Rs."


HOSTILE = "a,b:c%0A%25 100%\r\n::error file=forged.py,line=9::forged,title=x"


@pytest.mark.parametrize("text", [HOSTILE, "%2C%3A%0D", "::", "plain", "trailing %"])
def test_escapes_round_trip_through_the_runner(text: str) -> None:
    parsed = runner_parse(f"::error file={escape_property(text)},title={escape_property(text)}::"
                          f"{escape_data(text)}")
    assert parsed == Command("error", {"file": text, "title": text}, text)


def test_every_finding_is_one_annotation_read_back_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    sub = repo / "sub"
    sub.mkdir(parents=True)
    (repo / ".git").mkdir()  # a repository's root, as source_root finds it (tests/test_report_sarif.py asks git)
    name = "odd, name: 100%.pkl"
    (sub / name).write_bytes(_pickle_with_key(HOSTILE))
    monkeypatch.chdir(sub)
    report = ckptlint.check([name])
    findings = report.files[0].findings
    assert any(f.key == HOSTILE for f in findings)
    rules = all_rules()
    out = render_github(report, {"rules": rules})
    lines = out.splitlines()
    assert len(lines) == len(findings)  # nothing in a key or message starts a line of its own
    for line, f in zip(lines, findings, strict=True):
        cmd = runner_parse(line)
        assert cmd is not None, line
        assert cmd.name == {"error": "error", "warning": "warning", "info": "notice"}[f.severity]
        # the runner shows annotations at paths relative to the repository root, wherever ckptlint ran
        assert cmd.properties["file"] == f"sub/{name}"
        assert cmd.properties["line"] == "1"
        assert cmd.properties["title"] == f"{f.code} {rules[f.code].name}" + (f" [{f.key}]" if f.key else "")
        assert cmd.data == f.message + (f"\nFix: {f.fix}" if f.fix else "")
        assert set(cmd.properties) == {"file", "line", "title"}


def test_a_file_given_twice_is_annotated_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "evil.pkl").write_bytes(_pickle_with_key("k"))
    monkeypatch.chdir(tmp_path)
    report = ckptlint.check(["evil.pkl"])
    doubled = type(report)([*report.files, *report.files])
    once = render_github(report, {"rules": all_rules()})
    assert render_github(doubled, {"rules": all_rules()}) == once and once


def test_bytes_input_is_a_plain_annotation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    report = ckptlint.check([_pickle_with_key("k")])
    lines = render_github(report, {"rules": all_rules()}).splitlines()
    assert len(lines) == len(report.files[0].findings) > 0
    for line in lines:
        cmd = runner_parse(line)
        assert cmd is not None and "file" not in cmd.properties and "line" not in cmd.properties
        assert cmd.properties["title"].startswith(f"{report.files[0].path}: CK")
