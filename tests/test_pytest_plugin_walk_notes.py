"""``pytest --ckpt DIR`` treats a file the walk found that is plainly not a checkpoint (a firmware or tokenizer
``.bin``) as ``ckptlint check DIR`` does: a note (a skipped item saying why), not a failure. A file named by
``--ckpt`` keeps failing, and so does a broken checkpoint the walk found. Real pytest through ``pytester``."""

from __future__ import annotations

import pickle

import pytest

pytest_plugins = ["pytester"]

FIRMWARE = b"\x7fFW\x00\x01\x02" + bytes(range(256)) * 4


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    weights = pytester.mkdir("weights")
    (weights / "model.pt").write_bytes(pickle.dumps({"a": 1}, protocol=2))
    (weights / "firmware.bin").write_bytes(FIRMWARE)
    pytester.makepyfile(test_plain="def test_one():\n    pass\n")
    return pytester


def test_a_walked_non_checkpoint_is_skipped_with_the_reason(project: pytest.Pytester) -> None:
    result = project.runpytest_inprocess("-p", "no:cacheprovider", "-rA", "--ckpt", "weights", "--ckpt-fail-on",
                                         "error", "test_plain.py")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED * weights/firmware.bin: skipped: unrecognised content, not a checkpoint"])
    assert result.ret == 0


def test_a_named_non_checkpoint_and_a_walked_broken_checkpoint_still_fail(project: pytest.Pytester) -> None:
    result = project.runpytest_inprocess("-p", "no:cacheprovider", "-rA", "--ckpt", "weights/firmware.bin",
                                         "test_plain.py")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["weights/firmware.bin: unreadable: unrecognised content, not a checkpoint"])
    (project.path / "weights" / "cut.pt").write_bytes(b"PK\x03\x04" + b"\x00" * 10)  # a zip cut short
    result = project.runpytest_inprocess("-p", "no:cacheprovider", "-rA", "--ckpt", "weights", "test_plain.py")
    result.assert_outcomes(failed=1, passed=2, skipped=1)
    result.stdout.fnmatch_lines(["FAILED weights/cut.pt::safety - *"])
