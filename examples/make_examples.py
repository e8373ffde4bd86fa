"""Regenerate the bundled example checkpoints (needs torch and torchvision).

    python examples/make_examples.py

Writes, next to this file:

- ``tiny_cnn.pt``         ``torch.save(TinyCNN().state_dict())`` (zip format, the default)
- ``tiny_cnn_legacy.pt``  a training-style dict saved in the legacy non-zip format
                          (``_use_new_zipfile_serialization=False``)
- ``tiny_cnn.safetensors`` the same weights as safetensors (only if ``safetensors`` is installed)
- ``tiny_cnn_ddp.pt``     a training dict saved from a DistributedDataParallel wrapper
                          (every key starts with ``module.``)
- ``tiny_cnn_5cls.pt``    a TinyCNN trained for 5 classes (its head does not fit the 10-class model)
- ``snapshots/tiny_cnn.json`` the target snapshot ``ckptlint.toml`` points at

Weights come from a fixed seed, but the files are not byte-for-byte reproducible
(torch records a serialization id, legacy files record storage addresses).
"""

from __future__ import annotations

import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from models import TinyCNN  # noqa: E402


def main() -> None:
    import torchvision  # noqa: F401  (the examples are made with the stack users have)

    torch.manual_seed(0)
    model = TinyCNN().eval()
    torch.save(model.state_dict(), os.path.join(HERE, "tiny_cnn.pt"))
    training = {
        "epoch": 3,
        "state_dict": model.state_dict(),
        "best_acc": 0.5,
        "arch": "TinyCNN",
    }
    torch.save(training, os.path.join(HERE, "tiny_cnn_legacy.pt"), _use_new_zipfile_serialization=False)
    # weights_only=True reads both back: they hold nothing but tensors and plain data.
    for name in ("tiny_cnn.pt", "tiny_cnn_legacy.pt"):
        torch.load(os.path.join(HERE, name), weights_only=True)
    try:
        from safetensors.torch import save_file
    except ImportError:
        pass
    else:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                  os.path.join(HERE, "tiny_cnn.safetensors"))
    ddp = {"module." + k: v for k, v in model.state_dict().items()}
    torch.save({"epoch": 7, "model": ddp}, os.path.join(HERE, "tiny_cnn_ddp.pt"))
    torch.save(TinyCNN(num_classes=5).state_dict(), os.path.join(HERE, "tiny_cnn_5cls.pt"))
    import subprocess

    subprocess.run([sys.executable, "-m", "ckptlint", "snapshot", "examples.models:TinyCNN",
                    "-o", os.path.join(HERE, "snapshots", "tiny_cnn.json")], check=True, cwd=os.path.dirname(HERE))
    for name in sorted(os.listdir(HERE)):
        if name.startswith("tiny_cnn"):
            print(f"{name}: {os.path.getsize(os.path.join(HERE, name))} bytes")


if __name__ == "__main__":
    main()
