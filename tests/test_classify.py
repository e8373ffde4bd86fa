"""Global classification by exact name: the five categories, on names from real checkpoints and payloads.

Torch-free: classification never imports what it classifies (the data-list proof
below imports numpy and the standard library in a child process, never a checkpoint).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ckptlint.safety.allowlist import static_allowed_globals
from ckptlint.safety.classify import classify, import_effect, is_model
from ckptlint.safety.modsource import defines_class, find_source
from ckptlint.safety.names import DANGEROUS_NAMES, DATA

ALLOWED = static_allowed_globals()


def cat(module: str, name: str, **kw: frozenset[str]) -> str:
    return classify(f"{module}.{name}", module, allowed=ALLOWED, **kw)


@pytest.mark.parametrize("qualname,category", [
    ("collections.OrderedDict", "allowed"),
    ("torch._utils._rebuild_tensor_v2", "allowed"),
    ("torch.FloatStorage", "allowed"),
    ("numpy.core.multiarray._reconstruct", "data"),
    ("numpy._core.multiarray.scalar", "data"),
    ("numpy.float64", "data"),
    ("numpy.dtypes.Float64DType", "data"),
    ("argparse.Namespace", "data"),
    ("collections.defaultdict", "data"),
    # harmless pure names: no error (data, with a written reason)
    ("builtins.len", "data"),
    ("__future__.annotations", "data"),
    ("collections.abc.Iterable", "data"),
    ("torch.nn.modules.linear.Linear", "model"),
    ("torchvision.models.resnet.ResNet", "model"),
    ("posix.system", "dangerous"),
    ("nt.system", "dangerous"),
    ("os.system", "dangerous"),
    ("os.path.join", "dangerous"),
    ("subprocess.Popen", "dangerous"),
    ("builtins.eval", "dangerous"),
    ("builtins.exec", "dangerous"),
    ("builtins.getattr", "dangerous"),
    ("builtins.__import__", "dangerous"),
    ("runpy._run_code", "dangerous"),
    ("importlib.import_module", "dangerous"),
    ("pickle.loads", "dangerous"),
    ("dill.loads", "dangerous"),
    ("torch.load", "dangerous"),
    ("numpy.load", "dangerous"),
    # the numpy callables that used to pass as "data" because they are lower case
    ("numpy.savetxt", "dangerous"),
    ("numpy.memmap", "dangerous"),
    ("numpy.save", "dangerous"),
    ("numpy.fromfile", "dangerous"),
    ("numpy.ctypeslib.load_library", "dangerous"),
    ("numpy.testing._private.utils.runstring", "dangerous"),
    ("numpy.testing.assert_equal", "dangerous"),
    ("numpy.lib.npyio.load", "dangerous"),
    ("shutil.rmtree", "dangerous"),
    ("socket.create_connection", "dangerous"),
    ("webbrowser.open", "dangerous"),
    ("functools.partial", "dangerous"),
    ("operator.attrgetter", "dangerous"),
    ("operator.methodcaller", "dangerous"),
    ("copyreg._reconstructor", "dangerous"),
    ("types.FunctionType", "dangerous"),
    ("ctypes.CDLL", "dangerous"),
    ("torch.serialization.os", "dangerous"),
    ("mylab.config.TrainConfig", "unknown"),
    ("lightning_fabric.utilities.data.AttributeDict", "unknown"),
    # lower-case numpy names that are not on the list are not data
    ("numpy.sum", "unknown"),
    ("numpy.random._pickle.__generator_ctor", "unknown"),
])
def test_category(qualname: str, category: str) -> None:
    module, name = qualname.rsplit(".", 1)
    assert cat(module, name) == category


@pytest.mark.parametrize("module,name", [
    ("torchvision.models.resnet", "torch.os.system"),       # STACK_GLOBAL attribute chain
    ("torchvision.models.resnet.torch.os", "system"),       # the same chain spelled as a module
    ("torch.nn.modules.linear", "torch.nn.modules.module.os.system"),
    ("torchvision.models", "resnet.torch.serialization.pickle.loads"),
])
def test_attribute_chains_under_model_packages_are_dangerous(module: str, name: str) -> None:
    assert cat(module, name) == "dangerous"


@pytest.mark.integration  # reads torch's and torchvision's installed sources (never imports them)
@pytest.mark.parametrize("module,name", [
    ("torchvision.models", "resnet.ResNet"),                 # a chain, even to a real class
    ("torch.nn.modules", "Linear"),                          # re-exported, not defined there
    ("torch.nn.modules.linear", "F"),                        # torch.nn.functional imported as F
    ("torchvision.models.resnet", "load_state_dict_from_url"),
    ("torchvision.models.resnet", "conv3x3"),                # a function, not a class
])
def test_names_not_defined_as_classes_at_their_module_are_not_models(module: str, name: str) -> None:
    assert cat(module, name) == "unknown"
    assert not is_model(module, name, has_module_state=True) or ("." not in name and defines_class(module, name))


def test_model_class_found_in_source_without_importing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "ckl_models_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise SystemExit('imported!')\n")
    (pkg / "nets.py").write_text(textwrap.dedent("""
        raise SystemExit('imported!')
        import os as system
        try:
            class Net(object): pass
        except Exception:
            pass
        def build(): pass
        Alias = Net
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert find_source("ckl_models_pkg.nets", [str(tmp_path)]) == str(pkg / "nets.py")
    assert defines_class("ckl_models_pkg.nets", "Net") is True
    assert defines_class("ckl_models_pkg.nets", "Alias") is False
    assert "ckl_models_pkg" not in sys.modules
    models = frozenset({"ckl_models_pkg.nets.Net", "ckl_models_pkg.nets.Alias", "ckl_models_pkg.nets.build"})
    assert cat("ckl_models_pkg.nets", "Net", model_classes=models) == "model"
    assert cat("ckl_models_pkg.nets", "Alias", model_classes=models) == "unknown"
    assert cat("ckl_models_pkg.nets", "build", model_classes=models) == "unknown"
    assert cat("ckl_models_pkg.nets", "system", model_classes=models) == "dangerous"
    assert cat("ckl_models_pkg.nets", "Net") == "unknown"   # a class, but nothing says it is a model


def test_user_model_class_recognised_by_structure_without_source() -> None:
    assert cat("mylab.nets", "Net", model_classes=frozenset({"mylab.nets.Net"})) == "model"
    assert cat("__main__", "Net", model_classes=frozenset({"__main__.Net"})) == "model"
    assert cat("mylab.nets", "Net.inner", model_classes=frozenset({"mylab.nets.Net.inner"})) == "unknown"


def test_blocklisted_module_stays_dangerous_even_if_allowlisted() -> None:
    assert classify("os.getcwd", "os", allowed=ALLOWED | {"os.getcwd"}) == "dangerous"


def test_import_effect_says_what_importing_does() -> None:
    assert import_effect("builtins") == "importing builtins runs nothing (it is always loaded)"
    assert "standard-library" in import_effect("collections.abc")
    assert "standard-library" in import_effect("__future__")
    assert "top-level code" in import_effect("mylab.config")


def test_every_data_entry_is_exact_and_has_a_reason() -> None:
    assert len(DATA) < 150, "the data list is meant to stay short"
    for q, reason in DATA.items():
        assert len(reason) > 20, q
        assert q not in DANGEROUS_NAMES, q
        assert classify(q, q.rsplit(".", 1)[0], allowed=frozenset()) == "data", q


PROBE = r"""
import importlib, json, os, sys, warnings
warnings.simplefilter("ignore")
names, marker_dir = json.loads(sys.argv[1]), sys.argv[2]
objs = {}
for q in names:
    mod, _, attr = q.rpartition(".")
    objs[q] = getattr(importlib.import_module(mod), attr)
BAD = ("open", "os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
       "exec", "compile", "ctypes.dlopen", "ctypes.addressof", "ctypes.cdata", "ctypes.string_at",
       "mmap.__new__", "socket.", "os.remove", "os.unlink", "os.rename", "os.chmod", "os.mkdir",
       "shutil.", "os.truncate", "os.listdir", "os.scandir", "import", "marshal.loads", "pickle.find_class")
hits = []
current = [None]
def hook(event, args):
    if current[0] and event.startswith(BAD):
        if event == "import" and str(args[0]).startswith("encodings"):
            return  # str/bytes with an encoding name look up a codec, as torch's allowed _codecs.encode does
        hits.append((current[0], event))
sys.addaudithook(hook)
m = os.path.join(marker_dir, "MARKER")
ARGS = [(), (m,), (m, [1.0]), (0,), (b"x",), ("f8",), ((2,),), ([1, 2],), (m, "w+"), (m, "w+", 0, (1,))]
import numpy
ARGS.append((numpy.ndarray, (0,), b"b"))
for q, obj in objs.items():
    if not callable(obj):
        continue
    current[0] = q
    for a in ARGS:
        try:
            obj(*a)
        except BaseException:
            pass
        try:
            if isinstance(obj, type):
                obj.__new__(obj, *a)
        except BaseException:
            pass
    current[0] = None
print(json.dumps({"hits": hits, "files": os.listdir(marker_dir)}))
"""


def _probe(names: list[str], tmp_path: Path) -> dict[str, list[object]]:
    marker_dir = tmp_path / "probe"
    marker_dir.mkdir()
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(names), str(marker_dir)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.integration  # a child process imports numpy, torch.distributed.checkpoint and the stdlib
def test_no_data_entry_touches_files_processes_memory_or_code(tmp_path: Path) -> None:
    """Every data entry, called the ways a pickle can call it (REDUCE, NEWOBJ) with plausible
    arguments, under an audit hook: no file, process, socket, mmap, ctypes, exec or import event."""
    result = _probe(sorted(DATA), tmp_path)
    assert result["hits"] == [] and result["files"] == [], result


@pytest.mark.integration  # a child process imports numpy
def test_the_probe_catches_what_the_old_prefix_rule_let_through(tmp_path: Path) -> None:
    """The same probe on the callables the old ``numpy.*`` lower-case rule called data: each trips it."""
    old = ["numpy.savetxt", "numpy.memmap", "numpy.save", "numpy.fromfile", "numpy.load"]
    result = _probe(old, tmp_path)
    tripped = {name for name, _ in result["hits"]}  # type: ignore[misc]
    assert tripped == set(old), result
    assert all(cat(*q.rsplit(".", 1)) == "dangerous" for q in old)


def test_find_source_follows_import_rules_without_importing(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    (first / "regpkg").mkdir(parents=True)
    (first / "regpkg" / "__init__.py").write_text("")
    (second / "regpkg").mkdir(parents=True)
    (second / "regpkg" / "mod.py").write_text("class Net: pass\n")
    (first / "nspkg").mkdir()
    (second / "nspkg").mkdir()
    (second / "nspkg" / "mod.py").write_text("class Net: pass\n")
    path = [str(first), str(second)]
    # a regular package is not merged across sys.path entries: regpkg.mod does not exist for import
    assert find_source("regpkg.mod", path) is None
    # a namespace package is: nspkg.mod is found in the second entry
    assert find_source("nspkg.mod", path) == str(second / "nspkg" / "mod.py")
    assert find_source("bad-name.mod", path) is None
