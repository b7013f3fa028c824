"""Generators and the PatchGAN discriminator, built by name from one registry.

Every model is a plain nn.Module with a builder function registered by name where it is
defined (`@generator`, `@discriminator`); `build(name, **kwargs)` looks it up, and the CLI, the
benchmarks and the tests read the registry: a new generator is one builder here plus its test.

Every generator maps NCHW float images in [-1, 1] to the same shape and range. Its height and
width must be multiples of `model.multiple`; `vidgan.core.padding` pads any other size
(reflection) and crops back, so callers never see that rule.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def _norm(channels: int, affine: bool = False) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=affine)


def _conv_block(cin: int, cout: int, kernel: int, stride: int = 1,
                down_pad: str = "zeros") -> list[nn.Module]:
    """Reflection-padded conv, InstanceNorm, ReLU (the paper's c7s1-k and dk blocks).

    The paper's stride-2 convolutions pad with zeros, which only their top and left outputs
    see: a flat image comes back with streaks along those two borders. `down_pad="reflect"`
    gives them the image's own pixels instead.
    """
    pad = kernel // 2
    if stride == 1:
        return [nn.ReflectionPad2d(pad), nn.Conv2d(cin, cout, kernel), _norm(cout), nn.ReLU(True)]
    conv = nn.Conv2d(cin, cout, kernel, stride, padding=pad, padding_mode=down_pad)
    return [conv, _norm(cout), nn.ReLU(True)]


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            *_conv_block(channels, channels, 3),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """The paper's generator: c7s1-ngf, two stride-2 downs, residual blocks, two ups, c7s1-3.

    `upsample="transpose"` is the paper's fractionally-strided convolution; `"resize"` is
    nearest-neighbour upsampling then a convolution, which avoids checkerboard artefacts.
    """

    multiple = 4

    def __init__(self, ngf: int = 64, n_blocks: int = 9, upsample: str = "transpose",
                 down_pad: str = "zeros"):
        super().__init__()
        layers = _conv_block(3, ngf, 7)
        layers += _conv_block(ngf, ngf * 2, 3, stride=2, down_pad=down_pad)
        layers += _conv_block(ngf * 2, ngf * 4, 3, stride=2, down_pad=down_pad)
        layers += [ResidualBlock(ngf * 4) for _ in range(n_blocks)]
        layers += _up_block(ngf * 4, ngf * 2, upsample)
        layers += _up_block(ngf * 2, ngf, upsample)
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _up_block(cin: int, cout: int, upsample: str) -> list[nn.Module]:
    if upsample == "transpose":
        conv = nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)
        return [conv, _norm(cout), nn.ReLU(True)]
    if upsample == "resize":
        return [nn.Upsample(scale_factor=2, mode="nearest"), *_conv_block(cin, cout, 3)]
    raise ValueError(f"upsample must be 'transpose' or 'resize', not {upsample!r}")


class UnetGenerator(nn.Module):
    """The TensorFlow pix2pix/CycleGAN tutorial's U-Net (the original vidgan project's model).

    8 stride-2 downs (4x4 convs, LeakyReLU) and 7 ups (4x4 transposed convs, ReLU, dropout 0.5 in
    the first three) with skip connections, InstanceNorm with learned scale and offset.
    The innermost down has no norm: at 256x256 its output is 1x1, where InstanceNorm would zero it.
    """

    multiple = 256

    def __init__(self, ngf: int = 64):
        super().__init__()
        downs = [ngf, ngf * 2, ngf * 4] + [ngf * 8] * 5
        ups = [ngf * 8] * 4 + [ngf * 4, ngf * 2, ngf]
        self.downs = nn.ModuleList()
        cin = 3
        for i, cout in enumerate(downs):
            norm = 0 < i < len(downs) - 1
            self.downs.append(_unet_down(cin, cout, norm))
            cin = cout
        self.ups = nn.ModuleList()
        for i, cout in enumerate(ups):
            skip = downs[len(downs) - 2 - i]
            self.ups.append(_unet_up(cin, cout, dropout=i < 3))
            cin = cout + skip
        self.last = nn.Sequential(nn.ConvTranspose2d(cin, 3, 4, 2, 1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
        for up, skip in zip(self.ups, reversed(skips[:-1])):
            x = torch.cat([up(x), skip], dim=1)
        return self.last(x)


def _unet_down(cin: int, cout: int, norm: bool) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 4, 2, 1, bias=not norm)]
    if norm:
        layers.append(_norm(cout, affine=True))
    return nn.Sequential(*layers, nn.LeakyReLU(0.2, True))


def _unet_up(cin: int, cout: int, dropout: bool) -> nn.Sequential:
    layers = [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), _norm(cout, affine=True)]
    if dropout:
        layers.append(nn.Dropout(0.5))
    return nn.Sequential(*layers, nn.ReLU(True))


class InvertedResidual(nn.Module):
    """MobileNetV2's block without normalization: 1x1 expand, 3x3 depthwise, 1x1 project, + x.

    No InstanceNorm: its per-frame statistics shift with the content and make video flicker,
    and on a CPU the reductions cost as much as the convolutions of so small a network. The
    depthwise convolution pads with zeros: reflection there (128 channels) cost 20% of the fps.
    """

    def __init__(self, channels: int, expand: int):
        super().__init__()
        hidden = channels * expand
        self.body = nn.Sequential(
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(True),
            nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden),
            nn.ReLU(True),
            nn.Conv2d(hidden, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class GlobalModulation(nn.Module):
    """Scales and shifts every channel by an amount computed from the whole frame's mean.

    What the teacher's InstanceNorm gives it: a colour shift that depends on the image (a dark
    cliff turns green, a blue sky yellow), for the cost of one mean and two 1x1 convolutions.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, channels, 1),
                                 nn.ReLU(True), nn.Conv2d(channels, 2 * channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, shift = self.mlp(x).chunk(2, dim=1)
        return x * (1 + scale) + shift


class RealtimeGenerator(nn.Module):
    """The distilled CPU generator: pixel-unshuffle down to 1/4, inverted residuals at 1/4 and
    1/8 (the context a stroke needs) with a frame-wide modulation, pixel-shuffle back up with a
    1/2-resolution skip.

    Space-to-depth instead of strided convolutions keeps every pixel at a fraction of the
    cost; it learns from a teacher's outputs (`vidgan distill`), not from a CycleGAN. The ONNX
    export folds the shuffles into the convolutions beside them (runtime/export/folding.py).
    """

    multiple = 8

    def __init__(self, width: int = 32, n_blocks: int = 2, n_context: int = 3, expand: int = 4,
                 skip: int = 16):
        super().__init__()
        self.stem = nn.Sequential(
            nn.PixelUnshuffle(2), nn.Conv2d(12, skip, 3, padding=1, padding_mode="reflect"),
            nn.ReLU(True),
        )
        self.down = nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(skip * 4, width, 1), nn.ReLU(True))
        self.blocks = nn.Sequential(*[InvertedResidual(width, expand) for _ in range(n_blocks)])
        self.context = nn.Sequential(
            nn.PixelUnshuffle(2), nn.Conv2d(width * 4, width * 2, 1), nn.ReLU(True),
            GlobalModulation(width * 2),
            *[InvertedResidual(width * 2, expand) for _ in range(n_context)],
            nn.Conv2d(width * 2, width * 4, 1), nn.PixelShuffle(2),
        )
        self.up = nn.Sequential(nn.Conv2d(width, skip * 4, 1), nn.PixelShuffle(2))
        self.head = nn.Sequential(
            nn.ReLU(True), nn.Conv2d(skip, 12, 3, padding=1, padding_mode="reflect"),
            nn.PixelShuffle(2), nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.stem(x)
        quarter = self.blocks(self.down(half))
        quarter = quarter + self.context(quarter)
        return self.head(self.up(quarter) + half)


class PatchDiscriminator(nn.Module):
    """The 70x70 PatchGAN: C64-C128-C256-C512, then one logit per overlapping 70x70 patch."""

    def __init__(self, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        cin = ndf
        for i in range(1, n_layers + 1):
            cout = ndf * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(cin, cout, 4, stride, 1), _norm(cout), nn.LeakyReLU(0.2, True)]
            cin = cout
        layers.append(nn.Conv2d(cin, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every LeakyReLU's output, then the logits (for a feature-matching loss)."""
        out = []
        for layer in self.net:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                out.append(x)
        return out + [x]


# --- the registry: builders by name, filled where each is defined ----------------------------


@dataclass(frozen=True)
class GeneratorEntry:
    build: Callable[..., nn.Module]
    trainer: str  # the command that trains it: "train" (CycleGAN) or "distill" (from a teacher)
    benched: bool  # measured by `vidgan bench model` and the GPU check by default


REGISTRY: dict[str, Callable[..., nn.Module]] = {}  # every model: generators and discriminators
GENERATORS: dict[str, GeneratorEntry] = {}  # the generators, in the order they are defined


def generator(trainer: str = "train", benched: bool = True):
    """Register a generator builder under its function's name."""
    def add(build):
        REGISTRY[build.__name__] = build
        GENERATORS[build.__name__] = GeneratorEntry(build, trainer, benched)
        return build

    return add


def discriminator(build):
    """Register a discriminator builder under its function's name."""
    REGISTRY[build.__name__] = build
    return build


@generator()
def fast(ngf: int = 32, n_blocks: int = 6, down_pad: str = "zeros") -> ResnetGenerator:
    """vidgan's real-time generator: the paper's layout at half width, 6 blocks, resize-convs.

    About a fifth of `resnet`'s compute at any resolution, and no checkerboard artefacts.
    """
    return ResnetGenerator(ngf, n_blocks, "resize", down_pad)


@generator()
def resnet(ngf: int = 64, n_blocks: int = 9) -> ResnetGenerator:
    """The paper's generator: 11.38 M parameters, 99 GFLOP at 256x256."""
    return ResnetGenerator(ngf, n_blocks, upsample="transpose")


@generator(benched=False)  # the original project's model, not a real-time candidate
def unet(ngf: int = 64) -> UnetGenerator:
    return UnetGenerator(ngf)


@generator(trainer="distill")
def realtime(width: int = 32, n_blocks: int = 2, n_context: int = 3, expand: int = 4,
             skip: int = 16) -> RealtimeGenerator:
    """The distilled real-time generator for CPUs (see RealtimeGenerator). The defaults are
    those of the first student: model files written before `skip` existed rely on them."""
    return RealtimeGenerator(width, n_blocks, n_context, expand, skip)


@discriminator
def patchgan(ndf: int = 64, n_layers: int = 3) -> PatchDiscriminator:
    return PatchDiscriminator(ndf, n_layers)


def generators(trainer: str | None = None, benched: bool | None = None) -> tuple[str, ...]:
    """Names of the registered generators, optionally only those of a trainer or benched."""
    return tuple(name for name, entry in GENERATORS.items()
                 if trainer in (None, entry.trainer) and benched in (None, entry.benched))


def build(name: str, **kwargs) -> nn.Module:
    """Build a registered model by name with its constructor keyword arguments."""
    if name not in REGISTRY:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name](**kwargs)


def default_kwargs(name: str) -> dict:
    """A builder's keyword arguments and their defaults, e.g. {"ngf": 32, "n_blocks": 6}."""
    params = inspect.signature(REGISTRY[name]).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def gflops(model: nn.Module, height: int = 256, width: int = 256) -> float:
    """Forward-pass GFLOP (2 x multiply-accumulates) for one 3-channel frame of height x width.

    Counted on a copy on the meta device: no arithmetic runs, so even 4K costs milliseconds.
    """
    meta = copy.deepcopy(model).to("meta").eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        meta(torch.zeros(1, 3, height, width, device="meta"))
    return counter.get_total_flops() / 1e9


def activation_bytes(model: nn.Module, height: int, width: int) -> int:
    """Bytes of float32 activations a forward pass of one frame holds at its peak, roughly.

    The largest input + output of any one layer, counted on a meta-device copy like `gflops`:
    in inference each layer's input is freed once its output exists, so this pair is what must
    fit at once. Linear in the number of pixels: `vidgan.runtime.frames.check_memory` scales it.
    """
    meta = copy.deepcopy(model).to("meta").eval()
    peak = 0

    def record(module, inputs, output):
        nonlocal peak
        peak = max(peak, sum(t.numel() for t in inputs if isinstance(t, torch.Tensor)) + output.numel())

    hooks = [m.register_forward_hook(record) for m in meta.modules() if not list(m.children())]
    with torch.no_grad():
        meta(torch.zeros(1, 3, height, width, device="meta"))
    for hook in hooks:
        hook.remove()
    return 4 * peak
