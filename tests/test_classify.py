"""Global classification: the five categories, on names from real checkpoints and payloads."""

from __future__ import annotations

import pytest

from ckptlint.safety.allowlist import static_allowed_globals
from ckptlint.safety.classify import classify

ALLOWED = static_allowed_globals()


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
    ("omegaconf.listconfig.ListConfig", "data"),
    ("torch.nn.modules.linear.Linear", "model"),
    ("torchvision.models.resnet.ResNet", "model"),
    ("posix.system", "dangerous"),
    ("nt.system", "dangerous"),
    ("os.system", "dangerous"),
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
])
def test_category(qualname: str, category: str) -> None:
    module = qualname.rsplit(".", 1)[0]
    assert classify(qualname, module, allowed=ALLOWED) == category


def test_user_model_class_recognised_by_structure() -> None:
    assert classify("mylab.nets.Net", "mylab.nets", allowed=ALLOWED,
                    model_classes=frozenset({"mylab.nets.Net"})) == "model"


def test_blocklisted_module_stays_dangerous_even_if_allowlisted() -> None:
    assert classify("os.getcwd", "os", allowed=ALLOWED | {"os.getcwd"}) == "dangerous"
