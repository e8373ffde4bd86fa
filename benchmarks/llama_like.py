"""A llama-shaped ``nn.Module`` tree for the compatibility benchmark.

Only the module structure matters (parameter names, shapes, dtypes): there is
no forward pass. The keys match the usual Hugging Face llama state_dict::

    model.embed_tokens.weight
    model.layers.{i}.self_attn.{q,k,v,o}_proj.weight
    model.layers.{i}.mlp.{gate,up,down}_proj.weight
    model.layers.{i}.input_layernorm.weight
    model.layers.{i}.post_attention_layernorm.weight
    model.norm.weight
    lm_head.weight

Use it as a target with ``PYTHONPATH=<repo root>``::

    ckptlint check llama.pt --model benchmarks.llama_like:LlamaLike \\
        --model-kwargs '{"n_layers": 17}'
"""

from __future__ import annotations

import torch
from torch import nn


class RMSNormLike(nn.Module):
    def __init__(self, dim: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim, dtype=dtype))


class Attention(nn.Module):
    def __init__(self, hidden: int, dtype: torch.dtype) -> None:
        super().__init__()
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            setattr(self, name, nn.Linear(hidden, hidden, bias=False, dtype=dtype))


class MLP(nn.Module):
    def __init__(self, hidden: int, intermediate: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=False, dtype=dtype)
        self.up_proj = nn.Linear(hidden, intermediate, bias=False, dtype=dtype)
        self.down_proj = nn.Linear(intermediate, hidden, bias=False, dtype=dtype)


class DecoderLayer(nn.Module):
    def __init__(self, hidden: int, intermediate: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.self_attn = Attention(hidden, dtype)
        self.mlp = MLP(hidden, intermediate, dtype)
        self.input_layernorm = RMSNormLike(hidden, dtype)
        self.post_attention_layernorm = RMSNormLike(hidden, dtype)


class Decoder(nn.Module):
    def __init__(self, vocab: int, hidden: int, intermediate: int, n_layers: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, hidden, dtype=dtype)
        self.layers = nn.ModuleList(DecoderLayer(hidden, intermediate, dtype) for _ in range(n_layers))
        self.norm = RMSNormLike(hidden, dtype)


class LlamaLike(nn.Module):
    """Defaults: 17 layers of width 2048 in bfloat16, about 2.0 GB of weights."""

    def __init__(self, vocab_size: int = 32000, hidden_size: int = 2048, intermediate_size: int = 5632,
                 n_layers: int = 17, dtype: str = "bfloat16") -> None:
        super().__init__()
        dt = getattr(torch, dtype)
        self.model = Decoder(vocab_size, hidden_size, intermediate_size, n_layers, dt)
        self.lm_head = nn.Linear(hidden_size, vocab_size, bias=False, dtype=dt)


def layer_bytes(hidden_size: int = 2048, intermediate_size: int = 5632, itemsize: int = 2) -> int:
    return (4 * hidden_size * hidden_size + 3 * hidden_size * intermediate_size + 2 * hidden_size) * itemsize


def fixed_bytes(vocab_size: int = 32000, hidden_size: int = 2048, itemsize: int = 2) -> int:
    return (2 * vocab_size * hidden_size + hidden_size) * itemsize


def layers_for(size_bytes: float, **dims: int) -> int:
    """How many layers make a checkpoint of about ``size_bytes`` (at least 1)."""
    per = layer_bytes(dims.get("hidden_size", 2048), dims.get("intermediate_size", 5632))
    fixed = fixed_bytes(dims.get("vocab_size", 32000), dims.get("hidden_size", 2048))
    return max(1, round((size_bytes - fixed) / per))
