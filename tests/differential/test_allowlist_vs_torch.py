"""ckptlint's copy of torch's weights_only allowlist cannot drift from the installed torch's."""

from __future__ import annotations

import subprocess
import sys

import torch
from torch import _weights_only_unpickler as wo

from ckptlint.safety.allowlist import (
    BLOCKLISTED_MODULES,
    allowed_globals,
    installed_torch_version,
    static_allowed_globals,
)
from ckptlint.safety.classify import classify


def test_static_table_equals_installed_torch() -> None:
    version = installed_torch_version()
    assert version is not None
    assert static_allowed_globals(version) == frozenset(wo._get_allowed_globals())


def test_blocklist_equals_torch() -> None:
    assert BLOCKLISTED_MODULES == frozenset(wo._blocklisted_modules)


def test_live_list_includes_user_safe_globals() -> None:
    class TrustedConfig:
        pass

    name = f"{TrustedConfig.__module__}.{TrustedConfig.__qualname__}"
    assert name not in allowed_globals()
    with torch.serialization.safe_globals([TrustedConfig]):
        assert name in allowed_globals()
    assert name not in allowed_globals()


def test_without_torch_imported_the_table_is_used() -> None:
    code = ("import sys; from ckptlint.safety.allowlist import allowed_globals, static_allowed_globals, "
            "installed_torch_version; a = allowed_globals(); assert 'torch' not in sys.modules; "
            "assert a == static_allowed_globals(installed_torch_version()); print(len(a))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == len(wo._get_allowed_globals())


def test_every_allowed_global_classifies_as_allowed() -> None:
    allowed = frozenset(wo._get_allowed_globals())
    for q in allowed:
        assert classify(q, q.rsplit(".", 1)[0], allowed=allowed) == "allowed", q
