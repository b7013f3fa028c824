"""Generators and discriminator: shape rules, sizes, compute, U-Net specifics."""

from __future__ import annotations

import pytest
import torch

from vidgan.core import models, padding

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"fast": {"ngf": 4, "n_blocks": 1}, "resnet": {"ngf": 4, "n_blocks": 2}, "unet": {"ngf": 4},
        "realtime": {"width": 8, "n_blocks": 1, "n_context": 1, "expand": 2}}


def _stylize(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    padded, size = padding.pad_to_multiple(x, net.multiple)
    return padding.crop(net(padded), size)


@pytest.mark.parametrize("name", models.GENERATORS)
@pytest.mark.parametrize("hw", [(37, 53), (64, 64)])
def test_generator_keeps_any_shape(name, hw):
    torch.manual_seed(0)
    net = models.build(name, **TINY[name]).eval()
    x = torch.rand(2, 3, *hw) * 2 - 1
    with torch.no_grad():
        y = _stylize(net, x)
    assert y.shape == x.shape
    assert y.abs().max() <= 1.0  # tanh output, the model range
    assert not torch.allclose(y[0], y[1])  # each image its own output, not a constant


def test_unet_at_256_and_no_instance_norm_on_one_pixel():
    net = models.build("unet", ngf=4).eval()
    sizes = []
    for m in net.modules():
        if isinstance(m, torch.nn.InstanceNorm2d):
            m.register_forward_pre_hook(lambda _m, args: sizes.append(args[0].shape[-2:].numel()))
    with torch.no_grad():
        y = net(torch.rand(1, 3, 256, 256) * 2 - 1)
    assert y.shape == (1, 3, 256, 256)
    assert sizes and min(sizes) > 1  # InstanceNorm of one pixel outputs a constant


def test_unet_dropout_only_in_training_mode():
    torch.manual_seed(0)
    net = models.build("unet", ngf=4)
    assert sum(isinstance(m, torch.nn.Dropout) for m in net.modules()) == 3
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        assert not torch.equal(net.train()(x), net(x))
        assert torch.equal(net.eval()(x), net(x))


def test_patchgan_scores_70px_patches():
    d = models.build("patchgan", ndf=8)
    assert d(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)  # the paper's 30x30 grid


def test_resnet_size_matches_the_paper():
    with torch.device("meta"):
        assert models.count_parameters(models.build("resnet", ngf=64, n_blocks=9)) == 11_378_179


def test_fast_generator_keeps_its_layout():
    # The bundled model and running training checkpoints hold these exact tensors.
    with torch.device("meta"):
        net = models.build("fast")
    assert models.default_kwargs("fast") == {"ngf": 32, "n_blocks": 6, "down_pad": "zeros"}
    assert models.count_parameters(net) == 1_965_059
    assert net.multiple == 4


def test_reflect_padded_downsampling_leaves_no_streaks_on_a_flat_image():
    # zero padding reaches only the top and left outputs of a stride-2 convolution
    torch.manual_seed(0)
    zeros = models.build("fast", ngf=8, n_blocks=1).eval()
    reflect = models.build("fast", ngf=8, n_blocks=1, down_pad="reflect").eval()
    reflect.load_state_dict(zeros.state_dict())  # the same weights: a warm start carries over
    flat = torch.full((1, 3, 64, 64), 0.4)
    with torch.no_grad():
        streaked, clean = zeros(flat), reflect(flat)
    # InstanceNorm spreads the borders' difference over the whole picture
    assert streaked.std() > 0.1
    assert clean.std() < 0.01


@pytest.mark.parametrize("hw", [(256, 256), (720, 1280)])
def test_fast_is_at_least_4x_cheaper_than_resnet(hw):
    with torch.device("meta"):
        fast, resnet = models.build("fast"), models.build("resnet")
    assert models.gflops(resnet, *hw) >= 4 * models.gflops(fast, *hw)


def test_realtime_student_keeps_its_layout_and_is_at_least_25x_cheaper_than_fast():
    # The bundled student holds these exact tensors; its cost is what makes a CPU real time.
    with torch.device("meta"):
        student, fast = models.build("realtime"), models.build("fast")
    assert models.count_parameters(student) == 162_940
    assert student.multiple == 8
    assert models.gflops(fast, 360, 640) >= 25 * models.gflops(student, 360, 640)


def test_gflops_counts_convolutions_and_leaves_the_model_alone():
    net = models.build("resnet", ngf=8, n_blocks=1).train()
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    assert models.gflops(conv, 32, 32) == pytest.approx(2 * 32 * 32 * 8 * 3 * 9 / 1e9)
    assert models.gflops(net, 64, 64) * 4 == pytest.approx(models.gflops(net, 128, 128))
    assert net.training and next(net.parameters()).device.type == "cpu"


def test_unknown_model_name():
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        models.build("nope")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", models.GENERATORS)
def test_generator_on_cuda_channels_last_autocast(name):
    net = models.build(name, **TINY[name]).cuda().to(memory_format=torch.channels_last).eval()
    x = (torch.rand(2, 3, 37, 53, device="cuda") * 2 - 1).contiguous(
        memory_format=torch.channels_last
    )
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        y = _stylize(net, x)
    assert y.shape == x.shape and torch.isfinite(y).all()
