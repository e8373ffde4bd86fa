"""Write the plugin's installed-distribution metadata next to it (what pip would write)."""

from __future__ import annotations

import sys
from pathlib import Path


def install(site: Path) -> None:
    import shutil

    shutil.copytree(Path(__file__).parent / "ckptlint_example", site / "ckptlint_example")
    info = site / "ckptlint_example-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ckptlint-example\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[ckptlint]\nexample = ckptlint_example\n")
    (info / "RECORD").write_text("")


if __name__ == "__main__":
    install(Path(sys.argv[1]))
