"""``ckptlint convert`` of random pickled module trees and of torch.nn's own modules, against
``model.state_dict()`` (issue #15).

A hypothesis generator builds ``nn.Module`` trees from torch's own classes: ``Sequential``, ``ModuleList`` and
``ModuleDict`` containers, layers with parameters and buffers (``Linear`` with and without bias, ``Conv1d``,
``BatchNorm1d``, ``LayerNorm``, ``Embedding``, parameter-free ``ReLU``/``Identity``), a module placed twice in
the tree, parameters tied between layers, non-persistent buffers, ``None`` submodules, buffers that view a
parameter's storage. Each tree is pickled whole (``torch.save(model)``, zip and legacy) and converted where torch
cannot be imported: the output equals, bit for bit, ``state_dict()`` of the module ``torch.load`` rebuilds
(keys, order-independent; dtypes, shapes, bytes), and ``load_state_dict(strict=True)`` into it succeeds.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from _convert_oracle import assert_output_equals, convert_torchfree, state_dict_of, trusted_load
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file
from torch import nn

WIDTH = 4


@st.composite
def layers(draw: st.DrawFn) -> nn.Module:
    kind = draw(st.sampled_from(["linear", "linear-nobias", "conv", "bn", "ln", "emb", "relu", "identity"]))
    if kind == "linear":
        return nn.Linear(WIDTH, WIDTH)
    if kind == "linear-nobias":
        return nn.Linear(WIDTH, WIDTH, bias=False)
    if kind == "conv":
        return nn.Conv1d(WIDTH, WIDTH, 1)
    if kind == "bn":
        return nn.BatchNorm1d(WIDTH, track_running_stats=draw(st.booleans()))
    if kind == "ln":
        return nn.LayerNorm(WIDTH, elementwise_affine=draw(st.booleans()))
    if kind == "emb":
        return nn.Embedding(6, WIDTH)
    return nn.ReLU() if kind == "relu" else nn.Identity()


def _decorate(draw: st.DrawFn, m: nn.Module, placed: list[nn.Module]) -> nn.Module:
    """Extra state on a layer: a persistent or non-persistent buffer, a None submodule, a view of a weight."""
    choice = draw(st.integers(0, 5))
    if choice == 0:
        m.register_buffer("extra", torch.arange(3.0), persistent=draw(st.booleans()))
    elif choice == 1:
        m.register_module("absent", None)
    elif choice == 2 and isinstance(getattr(m, "weight", None), nn.Parameter):
        m.register_buffer("weight_row", m.weight.data[0])  # shares the parameter's storage
    elif choice == 3 and placed:
        return draw(st.sampled_from(placed))  # the same module object a second time
    return m


@st.composite
def trees(draw: st.DrawFn) -> nn.Module:
    placed: list[nn.Module] = []

    def node(d: int) -> nn.Module:
        if d >= 2 or draw(st.integers(0, 2)) == 0:
            m = _decorate(draw, draw(layers()), placed)
            placed.append(m)
            return m
        children = [node(d + 1) for _ in range(draw(st.integers(1, 3)))]
        kind = draw(st.sampled_from(["seq", "list", "dict"]))
        if kind == "seq":
            return nn.Sequential(*children)
        if kind == "list":
            return nn.ModuleList(children)
        return nn.ModuleDict({f"k{i}": c for i, c in enumerate(children)})

    root = nn.Sequential(node(0), node(0))
    weighted = [m for m in placed if isinstance(getattr(m, "weight", None), nn.Parameter)
                and not isinstance(m, nn.Embedding)]
    if len(weighted) >= 2 and draw(st.booleans()):  # tie two layers' weights (same shape: WIDTH x WIDTH [x 1])
        a, b = draw(st.sampled_from(weighted)), draw(st.sampled_from(weighted))
        if a is not b and a.weight.shape == b.weight.shape:
            b.weight = a.weight
    torch.manual_seed(draw(st.integers(0, 2**31)))
    for p in root.parameters():
        p.data.normal_()
    return root


@settings(max_examples=15, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(model=trees())
def test_pickled_module_tree_converts_to_its_state_dict(model: nn.Module,
                                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp = tmp_path_factory.mktemp("modules")
    jobs: list[list[str | Path]] = []
    for fmt in ("zip", "legacy"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.save(model, tmp / f"{fmt}.pt", _use_new_zipfile_serialization=(fmt == "zip"))
        jobs.append(["convert", tmp / f"{fmt}.pt", tmp / f"{fmt}.safetensors"])
    for fmt, r in zip(("zip", "legacy"), convert_torchfree(jobs, tmp / "run"), strict=True):
        assert r.code == 0, (fmt, repr(model), r.text[-3000:])
        loaded = trusted_load(tmp / f"{fmt}.pt")
        assert_output_equals(tmp / f"{fmt}.safetensors", state_dict_of(loaded))
        result = loaded.load_state_dict(load_file(str(tmp / f"{fmt}.safetensors")), strict=True)
        assert not result.missing_keys and not result.unexpected_keys


def _torch_nn_zoo() -> dict[str, nn.Module]:
    """torch.nn modules with their own state_dict shapes: RNN flat-weight lists (a plain attribute holding the
    parameters again), attention's packed projections, transformer stacks, lazy modules after materialising,
    norms with and without running stats, adaptive softmax's nested lists."""
    torch.manual_seed(11)
    lazy = nn.LazyLinear(3)
    lazy(torch.randn(2, 5))
    return {
        "lstm": nn.LSTM(4, 3, num_layers=2, bidirectional=True), "gru": nn.GRU(4, 3), "rnn": nn.RNN(4, 3, bias=False),
        "mha": nn.MultiheadAttention(8, 2), "mha_kv": nn.MultiheadAttention(8, 2, kdim=4, vdim=6),
        "encoder_layer": nn.TransformerEncoderLayer(8, 2, 16), "transformer": nn.Transformer(8, 2, 1, 1, 16),
        "embedding_bag": nn.EmbeddingBag(10, 3), "prelu": nn.PReLU(3), "group_norm": nn.GroupNorm(2, 4),
        "instance_norm": nn.InstanceNorm1d(4, affine=True, track_running_stats=True), "bilinear": nn.Bilinear(2, 3, 4),
        "conv_transpose": nn.ConvTranspose2d(2, 3, 3),
        "adaptive_softmax": nn.AdaptiveLogSoftmaxWithLoss(8, 20, [5, 10]), "sync_bn": nn.SyncBatchNorm(4),
        "lazy_linear": lazy, "rms_norm": nn.RMSNorm(4),
    }


def test_torch_nn_zoo_pickled_whole(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nn.Transformer warns about nested tensors; not the point here
        zoo = _torch_nn_zoo()
        for name, m in zoo.items():
            torch.save(m, tmp_path / f"{name}.pt")
    results = convert_torchfree([["convert", tmp_path / f"{n}.pt", tmp_path / f"{n}.safetensors"] for n in zoo],
                                tmp_path / "run")
    for name, r in zip(zoo, results, strict=True):
        assert r.code == 0, (name, r.text[-2000:])
        loaded = trusted_load(tmp_path / f"{name}.pt")
        assert_output_equals(tmp_path / f"{name}.safetensors", state_dict_of(loaded))
        loaded.load_state_dict(load_file(str(tmp_path / f"{name}.safetensors")), strict=True)
