"""What ``convert`` returns and raises: plain data, so the command and the API render the same facts."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import ConvertError as ConvertError
from ..errors import Refused as Refused
from ..record import field, record


@record
class ConvertResult:
    """One conversion: what was written, from where, and everything left out or changed on the way."""

    source: str
    dest: str
    files: tuple[str, ...]
    """The safetensors files written (one, or the shards in order)."""
    index: str | None
    """The shard index (``*.safetensors.index.json``) when the output is sharded."""
    sha256: str
    """The source file's sha256 (a shard index: of the index file)."""
    state_dict_path: tuple[str | int, ...]
    """Where the state_dict sat in the checkpoint (``()``: the top level)."""
    state_dict_found_by: str
    """How it was found, as ``check`` reports it (``top-level``, ``well-known key``, ``module object`` …)."""
    tensors: tuple[str, ...]
    """Every key written, in the state_dict's order."""
    nbytes: int
    """Tensor bytes written (each tensor its own copy: safetensors has no aliasing)."""
    left_out: tuple[tuple[str, str], ...] = ()
    """(key, what it is) for non-tensor entries of the state_dict and the rest of the checkpoint around it."""
    unsupported: tuple[tuple[str, str], ...] = ()
    """(key, why) for tensors safetensors cannot hold, skipped with ``skip_unsupported``."""
    tied: Mapping[str, str] = field(default_factory=dict)
    """key -> the first key holding the same tensor (same storage, offset, shape, strides)."""
    tied_dropped: bool = False
    """True when the tied keys were left out (``drop_tied``), as ``safetensors.torch.save_model`` does."""
    mapping: Mapping[str, str] = field(default_factory=dict)
    """Written key -> checkpoint key, for every key the compat fix renamed."""
    dropped: tuple[str, ...] = ()
    """Checkpoint keys the compat fix leaves out (unexpected or shape-mismatched in the target)."""
    transposed: tuple[str, ...] = ()
    """Written keys stored transposed in the checkpoint (Conv1D-style) and written as the target expects."""
    target: str | None = None
    strict: bool | None = None
    """Whether ``load_state_dict(strict=True)`` of the written keys succeeds in the target (None: no target)."""
    random_init: tuple[str, ...] = ()
    """Target keys the written file does not fill: they stay initialised (``strict=False`` needed)."""
    diagnosis: tuple[str, ...] = ()
    """What the compat analysis found, as ``check`` says it."""
    dangerous: tuple[str, ...] = ()
    """Dangerous globals the source references (converted anyway with ``force``; none of them ran)."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    """The ``__metadata__`` written into every file."""
    stringified: tuple[str, ...] = ()
    """State_dict keys that were not strings (``0 (int)``), written as ``str(key)``: safetensors names are strings."""
    hooks_not_run: tuple[tuple[str, str], ...] = ()
    """(module, hook) state_dict hooks of a pickled module, left unrun with ``force`` (else ConvertError)."""
