"""Pixel shuffles folded into convolutions before export: the same function, no shuffle left."""

from __future__ import annotations

import copy

import onnx
import pytest
import torch
from torch import nn

from vidgan.core import models
from vidgan.core.modelfile import save_model
from vidgan.runtime.export.folding import fold_shuffles
from vidgan.runtime.export.onnx import export_onnx

SHUFFLES = (nn.PixelShuffle, nn.PixelUnshuffle)


def shuffles(module: nn.Module) -> int:
    return sum(isinstance(m, SHUFFLES) for m in module.modules())


def assert_same_function(module: nn.Module, x: torch.Tensor) -> nn.Module:
    folded = fold_shuffles(copy.deepcopy(module))
    with torch.no_grad():
        torch.testing.assert_close(folded(x), module(x), rtol=1e-4, atol=1e-5)
    return folded


@pytest.mark.parametrize("kernel, pad, mode", [(1, 0, "zeros"), (3, 1, "zeros"), (3, 1, "reflect"),
                                               (5, 2, "reflect")])
def test_an_unshuffle_then_a_convolution_becomes_one_strided_convolution(kernel, pad, mode):
    torch.manual_seed(0)
    module = nn.Sequential(nn.PixelUnshuffle(2),
                           nn.Conv2d(12, 5, kernel, padding=pad, padding_mode=mode))
    folded = assert_same_function(module, torch.randn(2, 3, 24, 40))
    assert shuffles(folded) == 0


@pytest.mark.parametrize("bias", [True, False])
def test_a_pointwise_convolution_then_a_shuffle_becomes_one_transposed_convolution(bias):
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(6, 20, 1, bias=bias), nn.PixelShuffle(2))
    if bias:  # each of the four positions its own bias, as training leaves them
        nn.init.normal_(module[0].bias)
    folded = assert_same_function(module, torch.randn(2, 6, 5, 7))
    assert shuffles(folded) == 0


def test_what_cannot_fold_is_left_as_it_is():
    module = nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(12, 12, 3, padding=1, groups=3),
                           nn.Conv2d(12, 8, 3, padding=1), nn.PixelShuffle(2))
    folded = assert_same_function(module, torch.randn(1, 3, 16, 16))
    assert shuffles(folded) == 2


def test_the_real_time_generator_folds_whole_but_its_head():
    torch.manual_seed(0)
    generator = models.build("realtime").eval()
    for p in generator.parameters():  # trained biases are not zero
        nn.init.normal_(p, std=0.1)
    folded = assert_same_function(generator, torch.rand(1, 3, 40, 72) * 2 - 1)
    assert shuffles(folded) == 1  # the head's 3x3 convolution, then the shuffle to RGB


def test_the_exported_student_has_no_transpose(tmp_path):
    path = save_model(tmp_path / "student.safetensors", models.build("realtime"), "realtime", {})
    graph = onnx.load(str(export_onnx(path, tmp_path / "student.onnx"))).graph
    ops = [node.op_type for node in graph.node]
    assert "Transpose" not in ops and ops.count("DepthToSpace") == 1
