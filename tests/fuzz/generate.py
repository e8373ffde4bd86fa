"""Input ``index`` of a run with ``seed``: the same bytes on every machine, for every worker."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from . import features, gen_legacy, gen_pickle, gen_tar, gen_zip

Generator = Callable[[random.Random], tuple[bytes, str]]


def _pickle(rng: random.Random) -> tuple[bytes, str]:
    return gen_pickle.generate(rng)


FAMILIES: dict[str, Generator] = {
    "zip": gen_zip.generate,
    "pickle": _pickle,
    "legacy": gen_legacy.generate,
    "tar": gen_tar.generate,
}
WEIGHTS = {"zip": 35, "pickle": 30, "legacy": 20, "tar": 15}


def generate(seed: int, index: int, families: Sequence[str] | None = None,
             exclude: Sequence[str] = ()) -> tuple[bytes, str, str]:
    """``(bytes, family, description)``; ``families`` restricts the draw, ``exclude`` names features to leave out."""
    features.reset(list(exclude))
    rng = random.Random(f"{seed}:{index}")
    names = [f for f in FAMILIES if not families or f in families]
    family = rng.choices(names, weights=[WEIGHTS[f] for f in names])[0]
    data, desc = FAMILIES[family](rng)
    return data, family, desc
